"""HTTP: the one httpx client, retries, errors, and the answer as typed stream events.

The ``api`` package is the only one that imports httpx; every httpx exception is translated
here into the tree of ``errors.py``. The layers below: ``transport`` (sockets bounded by the
deadline, proxies), ``limits`` (sizes, bounded decompression, the deadline), ``safejson``
(hostile JSON), ``sse`` (bytes -> events).
"""

from __future__ import annotations

import email.utils
import errno
import os
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import httpx

from llmost_cli import __version__
from llmost_cli.api import limits, safejson
from llmost_cli.api import transport as _transport
from llmost_cli.api.limits import Deadline
from llmost_cli.api.sse import events_from_body, fold, parse_sse_bytes
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

__all__ = [
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "Client",
    "client_for",
    "events_from_body",
    "parse_sse_bytes",
    "retry_after",
]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # a longer wait is reported instead of silently sleeping
BACKOFF_BASE = 1.0
Log = Callable[[str], None]
# on_retry(attempt, retries, delay_seconds, reason): attempt counts from 1; reason is short,
# e.g. "HTTP 503" or "connection refused", for a line such as "retrying in 2 s (HTTP 503, 1/3)".
OnRetry = Callable[[int, int, float, str], None]


class Client:
    """The HTTP client of llmost: ``chat`` streams an answer as events, ``get_json`` reads JSON.

    What ``timeout`` (``--timeout SECONDS``, default 600) bounds, for each attempt of a request:

    * connecting (name lookup, TCP connect, TLS handshake): at most ``timeout`` seconds, and
      never more than 15 s;
    * the response headers: they must have arrived in full within ``timeout`` seconds of the
      start of the attempt (connecting and sending the request included), however slowly the
      server sends them;
    * a streamed answer (SSE): at most ``timeout`` seconds may pass without a complete data
      event. Keep-alive comments (``: OPENROUTER PROCESSING``) and a partly received event do
      not count as progress, so neither a stream of comments nor one trickling a byte a second
      holds the client longer. The time the caller spends handling events is not counted;
    * a non-streamed answer (JSON): all of it within ``timeout`` seconds of its headers;
    * the body of an error response: read for at most ``timeout`` seconds, then the HTTP error
      is reported with what arrived.

    On expiry: ``RequestTimeout`` (exit 8) naming host:port and what was awaited. Between
    attempts (``retries`` of them, after HTTP 408/429/5xx or a failure to connect, never once
    an answer has started) the client sleeps (``sleep=``; ``Retry-After`` honoured up to
    MAX_RETRY_AFTER) and calls ``on_retry(attempt, retries, delay, reason)``; that time is in
    no timeout.

    Nothing the server sends can exhaust memory or escape as anything but the documented errors:
    see ``limits`` for the size limits and ``safejson`` for hostile JSON. The API key is only
    ever sent in the Authorization header: it is not in any error message or debug line, and a
    plain ``http://`` base URL never goes through a proxy.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 600.0,
        retries: int = 3,
        log: Log | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: OnRetry | None = None,
    ) -> None:
        url, self._where, headers = endpoint(base_url, api_key)
        self._key = api_key or None
        self.retries = retries
        self._timeout = timeout
        self._log = log
        self._sleep = sleep
        self._on_retry = on_retry
        if transport is None:
            transport = _transport.for_url(url, log=self._debug if log else None)
        self._http = httpx.Client(
            base_url=url,
            headers=headers,
            follow_redirects=False,  # a redirect must never carry the key to another host
            transport=transport,
            trust_env=False,  # the transport reads the proxy variables itself
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat(self, body: dict[str, Any]) -> Iterator[StreamEvent]:
        """POST /chat/completions and yield its events, streamed or not.

        Closing the generator (Ctrl-C, an error downstream) closes the HTTP stream at once.
        """
        headers = {"Accept": "text/event-stream"} if body.get("stream") else {}
        deadline = Deadline(self._timeout, self._where)
        response = self._open("POST", "chat/completions", body, headers, deadline)
        try:
            encoding = response.headers.get("content-encoding", "")
            if "text/event-stream" in response.headers.get("content-type", ""):
                deadline.start(limits.NEXT_EVENT)
                pieces = limits.decoded(
                    response.iter_raw(), encoding, limits.SSE_STREAM_LIMIT, "the stream"
                )
                yield from parse_sse_bytes(pieces, deadline)
            else:
                limit = limits.JSON_BODY_LIMIT
                body = self._read_json(response, "chat/completions", limit, deadline)
                yield from events_from_body(body)
        except httpx.HTTPError as exc:
            raise self._network_error(exc, deadline) from _cause(exc, self._key)
        finally:
            response.close()

    def get_json(self, path: str, *, limit: int | None = None) -> Any:
        """GET ``path`` (relative to the base URL) and parse its JSON body, of at most ``limit``
        decoded bytes (default: MODEL_LIST_LIMIT for the model list, else JSON_BODY_LIMIT)."""
        if limit is None:
            models = path.strip("/").partition("?")[0] == "models"
            limit = limits.MODEL_LIST_LIMIT if models else limits.JSON_BODY_LIMIT
        deadline = Deadline(self._timeout, self._where)
        response = self._open("GET", path, None, None, deadline)
        try:
            return self._read_json(response, path, limit, deadline)
        except httpx.HTTPError as exc:
            raise self._network_error(exc, deadline) from _cause(exc, self._key)
        finally:
            response.close()

    def model_entries(self, path: str = "models") -> Iterator[Any]:
        """GET the model list and yield the entries of its ``data`` array one at a time, as
        they arrive (:mod:`modellist`): memory holds one entry, never the whole body."""
        from llmost_cli.api import modellist

        deadline = Deadline(self._timeout, self._where)
        response = self._open("GET", path, None, None, deadline)
        name = f"the server's answer to {path}"
        try:
            pieces = self._body(response, name, limits.MODEL_LIST_LIMIT, deadline)
            try:
                yield from modellist.entries(_timed(pieces, deadline))
            except safejson.Rejected as exc:
                ctype = response.headers.get("content-type", "?")
                raise StreamError(
                    f"{name} is not valid JSON ({exc.reason}; Content-Type {fold(ctype, 80)})"
                ) from None
        except httpx.HTTPError as exc:
            raise self._network_error(exc, deadline) from _cause(exc, self._key)
        finally:
            response.close()

    # --- sending, with retries ------------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        json_body: Any,
        headers: dict[str, str] | None,
        deadline: Deadline,
    ) -> httpx.Response:
        """Send with retries; return an open streaming response with a 2xx status."""
        request = self._http.build_request(method, path, json=json_body, headers=headers)
        request.extensions["timeout"] = _transport.timeouts(deadline, limits.CONNECT_TIMEOUT_CAP)
        attempt = 0
        while True:
            deadline.start(limits.HEADERS)
            try:
                self._debug_request(request)
                response = self._http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    self._wait(attempt, None, self._connect_reason(exc))
                    attempt += 1
                    continue
                raise self._network_error(exc, deadline) from _cause(exc, self._key)
            except httpx.HTTPError as exc:
                raise self._network_error(exc, deadline) from _cause(exc, self._key)
            self._debug_response(response)
            if response.status_code < 300:
                return response
            error = self._http_error(response, deadline)
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                delay = retry_after(response.headers.get("retry-after"))
                if delay is None or delay <= MAX_RETRY_AFTER:
                    self._wait(attempt, delay, f"HTTP {response.status_code}")
                    attempt += 1
                    continue
            raise error

    def _wait(self, attempt: int, retry_after_s: float | None, reason: str) -> None:
        if retry_after_s is not None:
            delay = retry_after_s
        else:
            delay = BACKOFF_BASE * (2**attempt) * random.uniform(0.5, 1.0)
        if self._on_retry is not None:
            self._on_retry(attempt + 1, self.retries, delay, reason)
        self._debug(f"* {reason}; retry {attempt + 1}/{self.retries} in {delay:.1f} s")
        self._sleep(delay)

    # --- reading ----------------------------------------------------------------------------

    def _read_json(
        self, response: httpx.Response, what: str, limit: int, deadline: Deadline
    ) -> Any:
        name = f"the server's answer to {what}"
        raw = limits.read_body(self._body(response, name, limit, deadline), deadline)
        try:
            return safejson.loads(raw)
        except safejson.Rejected as exc:
            ctype = response.headers.get("content-type", "?")
            raise StreamError(
                f"{name} is not valid JSON ({exc.reason}; Content-Type {fold(ctype, 80)}): "
                f"{self._redact(_snippet(raw))}"
            ) from None

    def _body(
        self, response: httpx.Response, name: str, limit: int, deadline: Deadline
    ) -> Iterator[bytes]:
        """The decoded body in pieces; over ``limit`` (declared or counted) is a StreamError."""
        encoding = response.headers.get("content-encoding", "")
        length = response.headers.get("content-length", "")
        identity = encoding.strip().lower() in ("", "identity")
        if identity and length.isdigit() and int(length) > limit:
            raise limits.too_large(name, limit)
        deadline.start(limits.BODY)
        return limits.decoded(response.iter_raw(), encoding, limit, name)

    def _http_error(self, response: httpx.Response, deadline: Deadline) -> APIError:
        """Read (a bounded part of) an error response and build the matching APIError."""
        status = response.status_code
        if 300 <= status < 400:
            location = self._redact(fold(response.headers.get("location", "?"), 200))
            response.close()
            return APIError(
                f"HTTP {status}: the server redirects to {location}; not followed, so the API key "
                "is not sent there",
                status=status,
                hint="set base_url to the final address",
            )
        deadline.start(limits.BODY)
        encoding = response.headers.get("content-encoding", "")
        body = bytearray()
        try:
            pieces = limits.decoded(response.iter_raw(), encoding, 2**62, "the error body")
            limits.read_prefix(_until(pieces, deadline), limits.ERROR_BODY_LIMIT, body)
        except (httpx.HTTPError, StreamError):
            pass  # the status says enough; a slow or broken body must not hide it
        finally:
            response.close()
        raw = bytes(body)
        if raw:
            self._debug(f"< {raw.decode('utf-8', 'replace')}")
        message, code, metadata = _parse_error_body(raw)
        if message:
            detail = message
            shown = fold(message)
        else:  # not the JSON envelope: an HTML page from a proxy, plain text, nothing
            shown = response.reason_phrase or "error"
            detail = _snippet(raw, limits.ERROR_BODY_LIMIT) if raw.strip() else ""
            if detail and detail != shown:
                shown += f": {_snippet(raw)}"
        error = api_error_for_status(
            status, f"HTTP {status}: {self._redact(shown)}", error_code=code, metadata=metadata
        )
        error.detail = self._redact(detail)
        return error

    # --- errors -----------------------------------------------------------------------------

    def _network_error(self, exc: httpx.HTTPError, deadline: Deadline) -> LlmostError:
        def on_timeout(exc: httpx.TimeoutException) -> LlmostError:
            if isinstance(exc, httpx.WriteTimeout):
                return deadline.error("sending the request to {where}")
            return deadline.error()

        return network_error(exc, self._where, self._timeout, self._key, on_timeout)

    def _connect_reason(self, exc: httpx.HTTPError) -> str:
        return connect_reason(exc, self._key)

    def _redact(self, text: str) -> str:
        return redact(text, self._key)

    def _debug(self, line: str) -> None:
        """A line of the --debug log: key redacted, the server's control characters escaped."""
        if self._log:
            self._log(_CONTROL.sub(_escape, self._redact(line)))

    def _debug_request(self, request: httpx.Request) -> None:
        if not self._log:
            return
        self._debug(f"> {request.method} {_transport.redact_userinfo(str(request.url))}")
        for name, value in request.headers.items():
            shown = "Bearer ***" if name.lower() == "authorization" else value
            self._debug(f"> {name}: {shown}")
        if request.content:
            self._debug(f"> {request.content[:4000].decode('utf-8', 'replace')[:2000]}")

    def _debug_response(self, response: httpx.Response) -> None:
        if not self._log:
            return
        self._debug(f"< {response.status_code} {response.reason_phrase}")
        for name, value in response.headers.items():
            self._debug(f"< {name}: {value}")


class ClientSettings(Protocol):
    """What :func:`client_for` needs of the settings (``core.settings.Settings`` has it)."""

    @property
    def base_url(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...


def client_for(
    settings: ClientSettings,
    api_key: str | None,
    *,
    log: Log | None = None,
    on_retry: OnRetry | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Client:
    """The Client for these settings: the one place a client is built from settings."""
    return Client(
        settings.base_url,
        api_key,
        timeout=settings.timeout,
        retries=settings.retries,
        log=log,
        on_retry=on_retry,
        transport=transport,
        sleep=sleep,
    )


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds - seconds == 0.0 else None  # not nan or inf
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- helpers -------------------------------------------------------------------------------


def _timed(pieces: Iterator[bytes], deadline: Deadline) -> Iterator[bytes]:
    """``pieces`` until the deadline passes (then a RequestTimeout)."""
    for piece in pieces:
        yield piece
        if deadline.expired():
            raise deadline.error()


def _until(pieces: Iterator[bytes], deadline: Deadline) -> Iterator[bytes]:
    """``pieces`` until the deadline passes (then quietly stop: used for error bodies)."""
    for piece in pieces:
        yield piece
        if deadline.expired():
            return


def _cause(exc: BaseException, key: str | None) -> BaseException | None:
    """The exception to chain (shown by --debug), unless its text could hold the key."""
    if isinstance(exc, httpx.LocalProtocolError):
        return None
    chain: BaseException | None = exc
    while chain is not None:
        if key and len(key) >= 6 and key in str(chain):
            return None
        chain = chain.__cause__ or chain.__context__
    return exc


def _os_reason(exc: BaseException) -> str:
    """Connection refused, cannot resolve the host name...: from the OSError under ``exc``."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return ""
    if isinstance(seen, socket.gaierror):
        return "cannot resolve the host name"
    if isinstance(seen, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({seen.verify_message})"
    if isinstance(seen, ssl.SSLError):
        return f"TLS error ({seen.reason or seen})"
    if isinstance(seen, TimeoutError | socket.timeout):
        return "timed out"
    if seen.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return os.strerror(seen.errno).lower()
    return ""


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


_BINARY = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffd]")


def _snippet(raw: bytes | bytearray, limit: int = 120) -> str:
    """The gist of a body that is not the JSON error envelope: an HTML page's title, or its
    text without tags, in one line."""
    text = raw[: limits.ERROR_BODY_LIMIT].decode("utf-8", "replace")
    if len(_BINARY.findall(text)) > len(text) // 10:
        return f"(binary data, {limits.size(len(raw))})"
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    if title:
        text = title.group(1)
    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "") if text else "(empty body)"


def _parse_error_body(raw: bytes) -> tuple[str, int | str | None, dict[str, Any]]:
    try:
        data = safejson.loads(raw)
    except safejson.Rejected:
        return "", None, {}
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message")
            meta = err.get("metadata")
            code = err.get("code")
            if isinstance(code, str):
                code = fold(code, 100)
            elif not isinstance(code, int) or isinstance(code, bool) or abs(code) >= 2**31:
                code = None
            return (
                str(message) if message else "",
                code,
                meta if isinstance(meta, dict) else {},
            )
        if isinstance(err, str):
            return err, None, {}
    return "", None, {}


# --- shared with the batch client ----------------------------------------------------------


def endpoint(base_url: str, api_key: str | None) -> tuple[httpx.URL, str, dict[str, str]]:
    """The base URL parsed, ``host:port`` for messages, and the headers of every request.

    A key that cannot go in an HTTP header is refused here too, without being shown."""
    if api_key and not (api_key.isascii() and api_key.isprintable()):
        raise ConfigError(
            "the API key contains a control or non-ASCII character, so it cannot be sent "
            "in an HTTP header",
            hint="check the key for stray characters",
        )
    try:
        url = httpx.URL(base_url.rstrip("/") + "/")
    except httpx.InvalidURL:
        raise ConfigError("base_url is not a valid URL") from None
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host  # an IPv6 address
    headers = {"User-Agent": f"llmost/{__version__}", "Accept-Encoding": "gzip, deflate"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return url, f"{host}:{port}", headers


def network_error(
    exc: httpx.HTTPError,
    where: str,
    timeout: float,
    key: str | None,
    on_timeout: Callable[[httpx.TimeoutException], LlmostError],
) -> LlmostError:
    """The error of our tree for an httpx failure talking to ``where`` (host:port); the key,
    which library messages may quote, is never in it."""
    if isinstance(exc, httpx.ConnectTimeout):
        seconds = min(timeout, limits.CONNECT_TIMEOUT_CAP)
        return RequestTimeout(
            f"timed out after {seconds:g} s connecting to {where}",
            hint="raise --timeout or check the server",
        )
    if isinstance(exc, httpx.TimeoutException):
        return on_timeout(exc)
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(
            f"cannot connect to {where}: {connect_reason(exc, key)}",
            hint="check base_url and that the server is running",
        )
    if isinstance(exc, httpx.LocalProtocolError):
        # h11's text quotes the offending header value, which may be the key.
        return NetworkError(f"the request to {where} could not be sent: invalid header")
    why = reason(exc, key)
    if isinstance(exc, httpx.ProxyError):
        return NetworkError(f"the proxy would not connect to {where}: {why}")
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        if "disconnect" in text or "closed" in text:
            return NetworkError(f"connection to {where} dropped: {why}")
        return StreamError(f"{where} sent something that is not valid HTTP: {why}")
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return NetworkError(f"connection to {where} dropped: {why}")
    return NetworkError(f"network error talking to {where}: {why}")


def connect_reason(exc: httpx.HTTPError, key: str | None) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    return _os_reason(exc) or reason(exc, key)


def reason(exc: BaseException, key: str | None) -> str:
    """An exception's first line, short, without the key."""
    text = str(exc) or type(exc).__name__
    return redact(fold(text.splitlines()[0] if text.strip() else text, 200), key)


def redact(text: str, key: str | None) -> str:
    """``text`` without the key (a key under 6 characters is no secret to hide, and hiding
    it would garble every message)."""
    return text.replace(key, "***") if key and len(key) >= 6 and key in text else text
