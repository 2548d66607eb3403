"""HTTP: the one httpx client, retries, and SSE -> typed stream events.

This is the only module that imports httpx; every httpx exception is translated here into the
tree of ``errors.py``.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from llmost_cli import __version__
from llmost_cli.core.events import (
    ErrorEvent,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llmost_cli.errors import (
    APIError,
    NetworkError,
    RequestTimeout,
    StreamError,
    api_error_for_status,
)

# Start-up: httpx imports its own command-line tool (click, rich, pygments) and httpcore imports
# trio whenever they are installed. llmost uses neither; together they cost more than 60 ms of
# every `ask`. Marking them absent makes both libraries take their documented fallbacks.
for _name in ("httpx._main", "trio"):
    sys.modules.setdefault(_name, None)  # type: ignore[arg-type]  # None: "not installed"

import httpx  # noqa: E402
from httpx_sse import EventSource  # noqa: E402

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # a longer wait is reported instead of silently sleeping
BACKOFF_BASE = 1.0
Log = Callable[[str], None]


class Client:
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
        on_retry: Callable[[str, int, int, float], None] | None = None,
    ) -> None:
        headers = {"User-Agent": f"llmost/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.retries = retries
        self._log = log
        self._sleep = sleep
        self._on_retry = on_retry
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            follow_redirects=False,  # a redirect must never carry the key to another host
            transport=transport,
            trust_env=True,
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
        response = self._open("POST", "chat/completions", json_body=body, headers=headers)
        try:
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" in ctype:
                yield from iter_sse_events(response)
            else:
                yield from events_from_body(_read_json(response, "chat/completions"))
        except httpx.HTTPError as exc:
            raise _network_error(exc, self._http.base_url) from exc
        finally:
            response.close()

    def get_json(self, path: str) -> Any:
        response = self._open("GET", path)
        try:
            return _read_json(response, path)
        finally:
            response.close()

    def _open(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries; return an open streaming response with a 2xx status."""
        attempt = 0
        while True:
            try:
                request = self._http.build_request(method, path, json=json_body, headers=headers)
                self._debug_request(request)
                response = self._http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    self._wait(attempt, None, f"connection failed ({_reason(exc)})")
                    attempt += 1
                    continue
                raise _network_error(exc, self._http.base_url) from exc
            except httpx.HTTPError as exc:
                raise _network_error(exc, self._http.base_url) from exc
            self._debug_response(response)
            if response.status_code < 300:
                return response
            error = _http_error(response)
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                delay = retry_after(response.headers.get("retry-after"))
                if delay is None or delay <= MAX_RETRY_AFTER:
                    self._wait(attempt, delay, f"HTTP {response.status_code}")
                    attempt += 1
                    continue
            raise error

    def _wait(self, attempt: int, retry_after_s: float | None, why: str) -> None:
        if retry_after_s is not None:
            delay = retry_after_s
        else:
            delay = BACKOFF_BASE * (2**attempt) * random.uniform(0.5, 1.0)
        if self._log:
            self._log(f"{why}; retry {attempt + 1}/{self.retries} in {delay:.1f} s")
        if self._on_retry:
            self._on_retry(why, attempt + 1, self.retries, delay)
        self._sleep(delay)

    def _debug_request(self, request: httpx.Request) -> None:
        if not self._log:
            return
        self._log(f"> {request.method} {request.url}")
        for name, value in request.headers.items():
            shown = "Bearer ***" if name.lower() == "authorization" else value
            self._log(f"> {name}: {shown}")
        if request.content:
            self._log(f"> {request.content.decode('utf-8', 'replace')[:2000]}")

    def _debug_response(self, response: httpx.Response) -> None:
        if not self._log:
            return
        self._log(f"< {response.status_code} {response.reason_phrase}")
        for name, value in response.headers.items():
            self._log(f"< {name}: {value}")


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _network_error(exc: httpx.HTTPError, base_url: httpx.URL) -> NetworkError:
    host = base_url.host
    if isinstance(exc, httpx.TimeoutException):
        kind = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
        return RequestTimeout(
            f"timed out {kind} {host}", hint="raise --timeout or check the server"
        )
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(f"cannot connect to {host}: {_reason(exc)}", hint="check base_url")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return NetworkError(f"connection to {host} dropped: {_reason(exc)}")
    return NetworkError(f"network error talking to {host}: {_reason(exc)}")


def _read_json(response: httpx.Response, what: str) -> Any:
    try:
        raw = response.read()
    except httpx.HTTPError as exc:
        raise _network_error(exc, response.request.url) from exc
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        ctype = response.headers.get("content-type", "?")
        raise StreamError(
            f"the server's answer to {what} is not JSON (Content-Type {ctype}): {_snippet(raw)}"
        ) from None


def _snippet(raw: bytes, limit: int = 120) -> str:
    text = raw.decode("utf-8", "replace")
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    if title:
        text = title.group(1)
    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "") if text else "(empty body)"


def _http_error(response: httpx.Response) -> APIError:
    """Read an error response and build the matching APIError."""
    try:
        raw = response.read()
    except httpx.HTTPError:
        raw = b""
    finally:
        response.close()
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        return APIError(
            f"HTTP {status}: the server redirects to {location}; not followed, so the API key "
            "is not sent there",
            status=status,
            hint="set base_url to the final address",
        )
    message, code, metadata = _parse_error_body(raw)
    if not message:
        message = f"{response.reason_phrase or 'error'}"
        detail = _snippet(raw)
        if raw.strip() and detail != message:
            message += f": {detail}"
    return api_error_for_status(
        status, f"HTTP {status}: {message}", error_code=code, metadata=metadata
    )


def _parse_error_body(raw: bytes) -> tuple[str, int | str | None, dict[str, Any]]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", None, {}
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message")
            meta = err.get("metadata")
            code = err.get("code")
            return (
                str(message) if message else "",
                code if isinstance(code, int | str) else None,
                meta if isinstance(meta, dict) else {},
            )
        if isinstance(err, str):
            return err, None, {}
    return "", None, {}


def iter_sse_events(response: httpx.Response) -> Iterator[StreamEvent]:
    """Events of an SSE response. Raises NetworkError if it ends before the answer did."""
    response.encoding = "utf-8"  # SSE is UTF-8 by definition, whatever the header says
    yield from _events_from_sse_data(sse.data for sse in EventSource(response).iter_sse())


def parse_sse_bytes(chunks: Iterable[bytes]) -> Iterator[StreamEvent]:
    """The same parser over raw byte chunks (for tests and replays)."""
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    return iter_sse_events(response)


def _events_from_sse_data(datas: Iterable[str]) -> Iterator[StreamEvent]:
    state = _ChunkState()
    for data in datas:
        payload = data.strip()
        if not payload:
            continue
        if payload == "[DONE]":
            return
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            raise StreamError(f"malformed stream: an event is not JSON: {payload[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise StreamError(f"malformed stream: an event is not an object: {payload[:80]!r}")
        yield from state.events(chunk, delta_key="delta")
        if state.errored:
            return
    if not state.finished:
        raise NetworkError("the connection closed before the answer was complete")


def events_from_body(body: Any) -> Iterator[StreamEvent]:
    """Events of a non-streamed completion body (also a 200 carrying ``error``)."""
    if not isinstance(body, dict):
        raise StreamError("the server's answer is not a JSON object")
    state = _ChunkState()
    events = list(state.events(body, delta_key="message"))
    if not state.errored and not isinstance(body.get("choices"), list):
        raise StreamError("the server's answer has no 'choices'")
    yield from events


class _ChunkState:
    """Per-response bookkeeping: meta sent once, finish seen, error seen."""

    def __init__(self) -> None:
        self.meta_sent = False
        self.finished = False
        self.errored = False

    def events(self, chunk: dict[str, Any], *, delta_key: str) -> Iterator[StreamEvent]:
        if not self.meta_sent and (chunk.get("id") or chunk.get("model")):
            self.meta_sent = True
            yield ResponseMeta(_str_or_none(chunk.get("id")), _str_or_none(chunk.get("model")))
        error = chunk.get("error")
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                yield from self._choice(choice, delta_key, has_error=error is not None)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            yield _usage(usage)
        if error is not None and not self.errored:
            self.errored = True
            yield _error_event(error)

    def _choice(
        self, choice: dict[str, Any], delta_key: str, *, has_error: bool
    ) -> Iterator[StreamEvent]:
        delta = choice.get(delta_key)
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                yield ReasoningDelta(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                yield TextDelta(content)
            calls = delta.get("tool_calls")
            for position, call in enumerate(calls if isinstance(calls, list) else []):
                if isinstance(call, dict):
                    yield _tool_call_delta(call, position)
        elif delta_key == "message" and isinstance(choice.get("text"), str):
            yield TextDelta(choice["text"])  # legacy `prompt` completions
        reason = choice.get("finish_reason")
        if self.errored:
            return
        if isinstance(choice.get("error"), dict):
            self.errored = True
            yield _error_event(choice["error"])
        elif reason == "error" and not has_error:
            # The top-level error object, when present, says more; this is the fallback.
            self.errored = True
            yield ErrorEvent("the model stopped with an error")
        elif isinstance(reason, str) and reason and reason != "error":
            self.finished = True
            yield Finish(reason)


def _tool_call_delta(call: dict[str, Any], position: int) -> ToolCallDelta:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    assert isinstance(function, dict)
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        # Some servers send arguments as an object; keep it as the JSON string it should be.
        arguments = "" if arguments is None else json.dumps(arguments, ensure_ascii=False)
    index = call.get("index")
    return ToolCallDelta(
        index=index if isinstance(index, int) else position,
        id=_str_or_none(call.get("id")),
        name=_str_or_none(function.get("name")),
        arguments=arguments,
    )


def _usage(raw: dict[str, Any]) -> Usage:
    def num(key: str) -> int | None:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    cost = raw.get("cost")
    return Usage(
        prompt_tokens=num("prompt_tokens"),
        completion_tokens=num("completion_tokens"),
        total_tokens=num("total_tokens"),
        cost=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        raw=raw,
    )


def _error_event(error: Any) -> ErrorEvent:
    if isinstance(error, dict):
        code = error.get("code")
        meta = error.get("metadata")
        return ErrorEvent(
            message=str(error.get("message") or "the server reported an error"),
            code=code if isinstance(code, int | str) else None,
            metadata=meta if isinstance(meta, dict) else {},
        )
    return ErrorEvent(message=str(error))


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
