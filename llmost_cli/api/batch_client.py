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
* sizes: a streamed answer up to SSE_STREAM_LIMIT, a JSON answer up to JSON_BODY_LIMIT, an
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
import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from llmost_cli import __version__
from llmost_cli.api import limits, safejson
from llmost_cli.api import transport as _transport

# The sync client's pieces that the async side shares (private ones included, to keep one
# copy of the error-body parsing): the wire facts live there.
from llmost_cli.api.client import (
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    _os_reason,
    _parse_error_body,
    _snippet,
    events_from_body,
    parse_sse_bytes,
    retry_after,
)
from llmost_cli.api.sse import fold
from llmost_cli.core.batch import Attempt
from llmost_cli.core.events import StreamEvent
from llmost_cli.errors import (
    APIError,
    ConfigError,
    LlmostError,
    NetworkError,
    RequestTimeout,
    StreamError,
    api_error_for_status,
)

Log = Callable[[str], None]
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
        if api_key and not (api_key.isascii() and api_key.isprintable()):
            raise ConfigError(
                "the API key contains a control or non-ASCII character, so it cannot be sent "
                "in an HTTP header",
                hint="check the key for stray characters",
            )
        self._key = api_key or None
        self._timeout = timeout
        self._log = log
        try:
            url = httpx.URL(base_url.rstrip("/") + "/")
        except httpx.InvalidURL:
            raise ConfigError("base_url is not a valid URL") from None
        port = url.port or (443 if url.scheme == "https" else 80)
        self._where = f"{url.host}:{port}"
        headers = {"User-Agent": f"llmost/{__version__}", "Accept-Encoding": "gzip, deflate"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if transport is None:
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
        request = self._http.build_request(
            "POST", "chat/completions", content=content, headers=headers
        )
        self._debug(f"> POST {request.url} ({len(content)} bytes)")
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.send(request, stream=True)
        except TimeoutError:
            deadline = limits.Deadline(self._timeout, self._where)
            return Attempt(error=deadline.error(limits.HEADERS))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
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
        limit = limits.SSE_STREAM_LIMIT if sse else limits.JSON_BODY_LIMIT
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
            raw, _ = limits.read_prefix(decoded, limits.ERROR_BODY_LIMIT)
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
        where = self._where
        if isinstance(exc, httpx.ConnectTimeout):
            seconds = min(self._timeout, limits.CONNECT_TIMEOUT_CAP)
            return RequestTimeout(
                f"timed out after {seconds:g} s connecting to {where}",
                hint="raise --timeout or check the server",
            )
        if isinstance(exc, httpx.ConnectError):
            return NetworkError(
                f"cannot connect to {where}: {self._connect_reason(exc)}",
                hint="check base_url and that the server is running",
            )
        if isinstance(exc, httpx.TimeoutException):
            return limits.Deadline(self._timeout, where).error(limits.BODY)
        if isinstance(exc, httpx.LocalProtocolError):
            return NetworkError(f"the request to {where} could not be sent: invalid header")
        reason = self._reason(exc)
        if isinstance(exc, httpx.ProxyError):
            return NetworkError(f"the proxy would not connect to {where}: {reason}")
        if isinstance(exc, httpx.RemoteProtocolError):
            text = str(exc).lower()
            if "disconnect" in text or "closed" in text:
                return NetworkError(f"connection to {where} dropped: {reason}")
            return StreamError(f"{where} sent something that is not valid HTTP: {reason}")
        if isinstance(exc, httpx.ReadError | httpx.WriteError):
            return NetworkError(f"connection to {where} dropped: {reason}")
        return NetworkError(f"network error talking to {where}: {reason}")

    def _connect_reason(self, exc: httpx.HTTPError) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return "timed out connecting"
        return _os_reason(exc) or self._reason(exc)

    def _reason(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return self._redact(fold(text.splitlines()[0] if text.strip() else text, 200))

    def _redact(self, text: str) -> str:
        key = self._key
        return text.replace(key, "***") if key and len(key) >= 6 and key in text else text

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


def _async_transport(url: httpx.URL, concurrency: int, log: Log | None) -> httpx.AsyncHTTPTransport:
    """httpx's async pool sized to the concurrency, through the proxy the rule allows."""
    proxy = _transport.env_proxy(url)  # None for plain http: the key never goes in clear
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
            log(f"* through the proxy {shown}")
    pool = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=5.0
    )
    verify: Any = httpx.create_ssl_context() if url.scheme == "https" else False
    return httpx.AsyncHTTPTransport(verify=verify, limits=pool, proxy=proxy, trust_env=False)
