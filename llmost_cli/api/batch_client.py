"""The asynchronous HTTP client of ``batch``: one ``httpx.AsyncClient``, one attempt at a time.

``attempt(body)`` sends one request and reads the whole (bounded) response, then turns it into
events with the same parsers as the sync client (``parse_sse_bytes`` for a stream,
``events_from_body`` for a JSON answer): batch prints only complete answers. Retries and the
shared backoff are the batch engine's (``core/batch.py``); this module says whether an attempt
is worth retrying (HTTP 408/429/5xx with a ``Retry-After`` of at most MAX_RETRY_AFTER, or a
failure to connect) and never retries itself.

The rules of the sync client hold here too:

* the API key only travels in the Authorization header, never in a message or a debug line;
  redirects are not followed; a plain ``http://`` base URL never goes through a proxy, and an
  ``https://`` one only as a CONNECT tunnel (``transport.env_proxy``);
* sizes: a streamed answer up to STREAM_LIMIT, a JSON answer up to JSON_BODY_LIMIT, an
  error body up to ERROR_BODY_LIMIT, compressed bodies decoded in bounded steps with the
  decompression-bomb check (``limits.decoded``), events and JSON bounded by ``sse``/``safejson``;
* ``--timeout``: connecting within min(timeout, 15 s); the response headers within ``timeout``
  of the start of the attempt (name lookup included); then a streamed answer may go at most
  ``timeout`` without a complete SSE data event (keep-alive comments do not count; for a
  compressed stream, without any bytes), and a JSON answer must arrive whole within
  ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpcore
import httpx

from llmost_cli.api import limits, safejson
from llmost_cli.api import transport as _transport

# The sync client's pieces that the async side shares (private ones included, to keep one
# copy of the error-body parsing and of the error mapping): the wire facts live there.
from llmost_cli.api.client import (
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    _parse_error_body,
    _snippet,
    connect_reason,
    endpoint,
    events_from_body,
    network_error,
    parse_sse_bytes,
    redact,
    retry_after,
)
from llmost_cli.api.sse import fold
from llmost_cli.core.batch import Attempt
from llmost_cli.core.events import StreamEvent
from llmost_cli.errors import (
    APIError,
    ConfigError,
    LlmostError,
    StreamError,
    api_error_for_status,
)

Log = Callable[[str], None]
# A batch holds each answer whole until it is parsed (it prints complete answers only), with up
# to ``concurrency`` in flight: a stream is limited to this many bytes (the sync client, which
# parses as it reads, allows limits.SSE_STREAM_LIMIT). About 200,000 tokens of chunks.
STREAM_LIMIT = 32 * limits.MiB
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class BatchHTTPClient:
    """POST /chat/completions, concurrently, over one pool of ``concurrency`` connections."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 600.0,
        concurrency: int = 8,
        log: Log | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url, self._where, headers = endpoint(base_url, api_key)
        self._key = api_key or None
        self._timeout = timeout
        self._log = log
        self._url = url.join("chat/completions")  # parsed once, not per request
        if transport is None:
            _no_sniffio_search()
            transport = _async_transport(url, concurrency, log)
        connect = min(timeout, limits.CONNECT_TIMEOUT_CAP)
        self._http = httpx.AsyncClient(
            base_url=url,
            headers=headers,
            follow_redirects=False,  # a redirect must never carry the key to another host
            transport=transport,
            trust_env=False,  # env_proxy read the proxy variables, by the rule above
            timeout=httpx.Timeout(timeout, connect=connect, pool=None),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def attempt(self, body: dict[str, Any]) -> Attempt:
        stream = bool(body.get("stream"))
        headers = {"Content-Type": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
        content = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        request = self._http.build_request("POST", self._url, content=content, headers=headers)
        self._debug(f"> POST {request.url} ({len(content)} bytes)")
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.send(request, stream=True)
        except TimeoutError:
            deadline = limits.Deadline(self._timeout, self._where)
            return Attempt(error=deadline.error(limits.HEADERS))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            reason = self._connect_reason(exc)
            return Attempt(
                error=self._network_error(exc), retry=True, reason=reason, unreachable=True
            )
        except httpx.HTTPError as exc:
            return Attempt(error=self._network_error(exc))
        self._debug(f"< {response.status_code} {response.reason_phrase}")
        try:
            if response.status_code >= 300:
                return await self._http_error(response)
            return await self._answer(response)
        finally:
            await response.aclose()

    # --- a 2xx answer --------------------------------------------------------------------

    async def _answer(self, response: httpx.Response) -> Attempt:
        encoding = response.headers.get("content-encoding", "")
        sse = "text/event-stream" in response.headers.get("content-type", "")
        limit = STREAM_LIMIT if sse else limits.JSON_BODY_LIMIT
        name = "the stream" if sse else "the server's answer to chat/completions"
        raw: list[bytes] = []
        error: LlmostError | None = None
        try:
            await self._read(response, raw, limit, name, sse=sse)
        except LlmostError as exc:
            error = exc
        except httpx.HTTPError as exc:
            error = self._network_error(exc)
        events: list[StreamEvent] = []
        try:
            pieces = limits.decoded(raw, encoding, limit, name)
            if sse:
                for event in parse_sse_bytes(pieces):
                    events.append(event)
            elif error is None:
                events.extend(events_from_body(self._json(pieces, response)))
        except LlmostError as exc:
            error = error or exc  # what went wrong first is what is reported
        return Attempt(events=events, error=error)

    async def _read(
        self, response: httpx.Response, raw: list[bytes], limit: int, name: str, *, sse: bool
    ) -> None:
        """The raw body into ``raw``, within the size limit and the timeout rules."""
        loop = asyncio.get_running_loop()
        identity = response.headers.get("content-encoding", "").strip().lower() in ("", "identity")
        events = _EventClock() if sse and identity else None
        what = limits.NEXT_EVENT if sse else limits.BODY
        total = 0
        try:
            async with asyncio.timeout(self._timeout) as deadline:
                async for piece in response.aiter_raw():
                    total += len(piece)
                    if total > limit:
                        raise limits.too_large(name, limit)
                    raw.append(piece)
                    if sse and (events is None or events.feed(piece)):
                        deadline.reschedule(loop.time() + self._timeout)
        except TimeoutError:
            raise limits.Deadline(self._timeout, self._where).error(what) from None

    def _json(self, pieces: Any, response: httpx.Response) -> Any:
        body = limits.read_body(pieces, None)
        try:
            return safejson.loads(body)
        except safejson.Rejected as exc:
            ctype = response.headers.get("content-type", "?")
            raise StreamError(
                "the server's answer to chat/completions is not valid JSON "
                f"({exc.reason}; Content-Type {fold(ctype, 80)}): {self._redact(_snippet(body))}"
            ) from None

    # --- errors --------------------------------------------------------------------------

    async def _http_error(self, response: httpx.Response) -> Attempt:
        status = response.status_code
        if 300 <= status < 400:
            location = self._redact(fold(response.headers.get("location", "?"), 200))
            return Attempt(
                error=APIError(
                    f"HTTP {status}: the server redirects to {location}; not followed, so the "
                    "API key is not sent there",
                    status=status,
                    hint="set base_url to the final address",
                )
            )
        raw = b""
        pieces: list[bytes] = []
        try:
            async with asyncio.timeout(self._timeout):
                async for piece in response.aiter_raw():
                    pieces.append(piece)
                    if sum(map(len, pieces)) > limits.ERROR_BODY_LIMIT:
                        break
            encoding = response.headers.get("content-encoding", "")
            decoded = limits.decoded(pieces, encoding, 2**62, "the error body")
            kept = bytearray()
            limits.read_prefix(decoded, limits.ERROR_BODY_LIMIT, kept)
            raw = bytes(kept)
        except (httpx.HTTPError, StreamError, TimeoutError):
            pass  # the status says enough; a broken body must not hide it
        message, code, metadata = _parse_error_body(raw)
        if message:
            detail, shown = message, fold(message)
        else:
            shown = response.reason_phrase or "error"
            detail = _snippet(raw, limits.ERROR_BODY_LIMIT) if raw.strip() else ""
            if detail and detail != shown:
                shown += f": {_snippet(raw)}"
        error = api_error_for_status(
            status, f"HTTP {status}: {self._redact(shown)}", error_code=code, metadata=metadata
        )
        error.detail = self._redact(detail)
        delay = retry_after(response.headers.get("retry-after"))
        retry = status in RETRY_STATUSES and (delay is None or delay <= MAX_RETRY_AFTER)
        return Attempt(error=error, retry=retry, retry_after=delay, reason=f"HTTP {status}")

    def _network_error(self, exc: httpx.HTTPError) -> LlmostError:
        deadline = limits.Deadline(self._timeout, self._where)
        return network_error(
            exc, self._where, self._timeout, self._key, lambda _: deadline.error(limits.BODY)
        )

    def _connect_reason(self, exc: httpx.HTTPError) -> str:
        return connect_reason(exc, self._key)

    def _redact(self, text: str) -> str:
        return redact(text, self._key)

    def _debug(self, line: str) -> None:
        if self._log:
            self._log(self._redact(line))


class _EventClock:
    """Spots complete SSE events that carry data in raw (uncompressed) stream bytes, split
    anywhere: only those reset the stream's timeout, not keep-alive comments."""

    __slots__ = ("_carry", "_data")

    def __init__(self) -> None:
        self._carry = b""  # the last bytes seen: a "data" or an event end may straddle pieces
        self._data = False  # the unfinished event has a data line

    def feed(self, piece: bytes) -> bool:
        window = self._carry + piece
        blocks = _EVENT_END.split(window)
        progress = False
        for block in blocks[:-1]:
            if self._data or b"data" in block:
                progress = True
            self._data = False
        if b"data" in blocks[-1]:
            self._data = True
        self._carry = blocks[-1][-4:]
        return progress


def _no_sniffio_search() -> None:
    """httpcore's async locks ``import sniffio`` each time they are set up (several times a
    request); anyio >= 4.5 no longer installs it, and a failed import is not cached, so every
    attempt searches sys.path (~0.5 ms). Marking it absent makes the import fail at once, which
    httpcore handles ("asyncio")."""
    import importlib.util
    import sys

    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


# --- the transport ----------------------------------------------------------------------
#
# httpx's own AsyncHTTPTransport is one httpcore pool on anyio streams. At batch rates both
# cost more CPU than everything else llmost does: the pool's bookkeeping is quadratic in its
# number of connections (it walks them all, asking each socket whether it is readable, whenever
# a request starts or ends), and anyio wraps every read in a cancel scope and rebuilds a
# mapping for every ``get_extra_info``. So: several small pools (SHARD connections each, a
# request goes to the least busy), on plain asyncio streams. The proxy rule is the sync
# transport's (``transport.env_proxy``), with httpcore's own proxy classes, as there.

SHARD = 4  # connections per httpcore pool


def _async_transport(url: httpx.URL, concurrency: int, log: Log | None) -> _Shards:
    """``concurrency`` connections in all, through the proxy the rule allows."""
    proxy = _transport.env_proxy(url)  # None for plain http: the key never goes in clear
    ssl_context = httpx.create_ssl_context() if url.scheme == "https" else None
    backend = _AsyncioBackend()

    def pool(size: int) -> httpcore.AsyncConnectionInterface | Any:
        common: dict[str, Any] = {
            "ssl_context": ssl_context,
            "max_connections": size,
            "max_keepalive_connections": size,
            "keepalive_expiry": 5.0,
            "network_backend": backend,
        }
        if proxy is None:
            return httpcore.AsyncConnectionPool(**common)
        proxy_url = httpcore.URL(
            scheme=proxy.url.raw_scheme,
            host=proxy.url.raw_host,
            port=proxy.url.port,
            target=proxy.url.raw_path,
        )
        if proxy.url.scheme in ("socks5", "socks5h"):
            return httpcore.AsyncSOCKSProxy(
                proxy_url=proxy_url, proxy_auth=proxy.raw_auth, **common
            )
        return httpcore.AsyncHTTPProxy(
            proxy_url=proxy_url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            **common,
        )

    if proxy is not None:
        shown = _transport.redact_userinfo(str(proxy.url))
        if proxy.url.scheme in ("socks5", "socks5h"):
            import importlib.util

            if importlib.util.find_spec("socksio") is None:
                raise ConfigError(
                    f"the proxy {shown} from the environment is a SOCKS proxy, which needs the "
                    "socksio package (pip install 'httpx[socks]')"
                )
        if log:
            log(f"* through the proxy {shown} (CONNECT tunnel: the proxy sees only TLS)")
    sizes = [SHARD] * (concurrency // SHARD)
    if concurrency % SHARD:
        sizes.append(concurrency % SHARD)
    return _Shards([(pool(size), size) for size in sizes])


class _Shards(httpx.AsyncBaseTransport):
    """Several small httpcore pools as one httpx transport; a request goes to the least busy
    (there is always one with a free connection: the engine sends at most ``concurrency``
    requests at once)."""

    def __init__(self, pools: list[tuple[Any, int]]) -> None:
        self._pools = pools
        self._busy = [0] * len(pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        index = self._pick()
        self._busy[index] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._busy[index] -= 1

        req = _transport.core_request(request)
        try:
            with _transport.mapped():
                response = await self._pools[index][0].handle_async_request(req)
        except BaseException:
            release()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream, release),
            extensions=response.extensions,
        )

    def _pick(self) -> int:
        best, load = 0, float("inf")
        for index, (_, size) in enumerate(self._pools):
            busy = self._busy[index] / size
            if busy < load:
                best, load = index, busy
        return best

    async def aclose(self) -> None:
        for pool, _ in self._pools:
            with _transport.mapped():
                await pool.aclose()


class _Body(httpx.AsyncByteStream):
    """httpcore's response body for httpx: its errors as httpx's, and its pool's counter told
    when it is closed."""

    def __init__(self, inner: Any, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _transport.mapped():
            async for piece in self._inner:
                yield piece

    async def aclose(self) -> None:
        try:
            with _transport.mapped():
                await self._inner.aclose()
        finally:
            self._release()


class _AsyncioStream(httpcore.AsyncNetworkStream):
    """A connection as asyncio's streams; every wait bounded by httpcore's timeout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle keep-alive connection the server has closed
            return self._reader.at_eof() or self._writer.transport.is_closing()
        names = {
            "ssl_object": "ssl_object",
            "socket": "socket",
            "server_addr": "peername",
            "client_addr": "sockname",
        }
        return self._writer.get_extra_info(names[info]) if info in names else None


class _AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):  # the name lookup included
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for option in socket_options or ():
                    sock.setsockopt(*option)
        return _AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - llmost never uses a unix socket
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - no connect retries
        await asyncio.sleep(seconds)
