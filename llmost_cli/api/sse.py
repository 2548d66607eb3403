"""SSE bytes -> typed stream events, and completion bodies -> the same events. No httpx here.

One pass over the bytes: each piece is searched for the blank line that ends an event
(``bytes.split`` in C); a piece without one is put aside, never re-scanned, so an event that
arrives a byte at a time costs linear time. An event longer than SSE_EVENT_LIMIT is refused
before it is held whole. Line endings may be ``\\n``, ``\\r\\n`` or ``\\r`` (SSE spec).

A piece is what one network read brought (``api/chunked.py`` makes it so for a chunked body).
Its events are decoded together and handed on together, consecutive text (or reasoning) deltas
joined into one: the writer then writes and flushes once per read, so a reader gets every
read's text at once without paying a write per token. Where a delta ends says nothing else.

Events before a malformed one stay delivered, even in the same piece: the caller keeps the
partial answer and gets the error after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from llmost_cli.api import safejson
from llmost_cli.api.limits import MAX_JSON_DEPTH, SSE_EVENT_LIMIT, Deadline, size
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
from llmost_cli.errors import NetworkError, StreamError

MESSAGE_LIMIT = 1000  # characters of a server's error message shown in one line
MAX_TOOL_CALLS = 1024  # tool-call indexes are 0 .. MAX_TOOL_CALLS-1
_MAX_COUNT = 2**53  # token counts above this are not counts


def parse_sse_bytes(
    chunks: Iterable[bytes], deadline: Deadline | None = None
) -> Iterator[StreamEvent]:
    """Events of an SSE body given as decoded byte pieces, split anywhere.

    With a ``deadline``, it is reset by every complete data event and checked whenever a piece
    completes none (keep-alive comments and partial events do not count as progress). Raises
    StreamError (malformed or over a limit), NetworkError (ended before the answer did) or the
    deadline's RequestTimeout.
    """
    state = _ChunkState()
    pending: list[bytes] = []  # bytes of an unfinished event, in pieces
    pending_len = 0
    pending_nl = False  # the unfinished event ends with a line break
    carry_cr = False  # a piece ended with \r: it may be the first half of \r\n
    for piece in chunks:
        if not piece:
            continue
        if carry_cr:
            piece = b"\r" + piece
            carry_cr = False
        if b"\r" in piece:
            if piece[-1] == 13:
                piece = piece[:-1]
                carry_cr = True
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if not piece:
                continue
        if b"\n\n" not in piece and not (pending_nl and piece[0] == 10):
            pending.append(piece)
            pending_len += len(piece)
            if pending_len > SSE_EVENT_LIMIT:
                raise _too_long()
            pending_nl = piece[-1] == 10
            if deadline is not None and deadline.expired():
                raise deadline.error()
            continue
        if pending:
            pending.append(piece)
            piece = b"".join(pending)
            pending = []
        blocks = piece.split(b"\n\n")
        rest = blocks.pop()
        # All the events of this piece (one network read) go out together, text runs joined.
        try:
            done = _feed(state, blocks)
        except StreamError:
            yield from state.take()  # what came before the fault stays delivered
            raise
        events = state.take()
        if events:
            yield from events
        if done:
            return
        if rest:
            pending = [rest]
            pending_len = len(rest)
            pending_nl = rest[-1] == 10
            if pending_len > SSE_EVENT_LIMIT:
                raise _too_long()
        else:
            pending_len = 0
            pending_nl = False
        if deadline is not None:
            if state.progress:
                state.progress = False
                deadline.reset()  # after the caller handled the events: its time is not counted
            elif deadline.expired():
                raise deadline.error()
    if not state.finished:
        where = f" to {deadline.where}" if deadline is not None else ""
        raise NetworkError(f"the connection{where} closed before the answer was complete")


def _feed(state: _ChunkState, blocks: list[bytes]) -> bool:
    """Parse complete events into ``state``; True once the stream is over ([DONE], error)."""
    for block in blocks:
        # One line `data: ...` is the usual event; a lone comment line is a keep-alive.
        if block[:5] == b"data:" and b"\n" not in block:
            payload = block[5:]
        elif not block or (block[:1] == b":" and b"\n" not in block):
            continue
        else:
            payload = _data_of(block)
        if len(payload) > SSE_EVENT_LIMIT:
            raise _too_long()
        payload = payload.strip()
        if not payload:
            continue
        if payload == b"[DONE]":
            return True
        state.progress = True
        state.feed(_event_json(payload), "delta")
        if state.errored:
            return True
    return False


def _data_of(block: bytes) -> bytes:
    """The data of a multi-line event: its `data:` lines joined by newlines."""
    lines = []
    for line in block.split(b"\n"):
        if line[:5] == b"data:":
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line == b"data":
            lines.append(b"")
    return b"\n".join(lines)


def _too_long() -> StreamError:
    return StreamError(
        f"malformed stream: an event is longer than {size(SSE_EVENT_LIMIT)}; llmost stopped reading"
    )


def _event_json(payload: bytes) -> dict[str, Any]:
    try:
        chunk = safejson.loads(payload)
    except safejson.Rejected as exc:
        raise StreamError(
            f"malformed stream: an event is not valid JSON ({exc.reason}): {_snip(payload)}"
        ) from None
    if type(chunk) is not dict:
        raise StreamError(f"malformed stream: an event is not an object: {_snip(payload)}")
    return chunk


def _snip(payload: bytes) -> str:
    return repr(payload[:80].decode("utf-8", "replace"))


def events_from_body(body: Any) -> Iterator[StreamEvent]:
    """Events of a non-streamed completion body (also a 200 carrying ``error``).

    The body is sanitised in place first (lone surrogates, NaN, nesting: see safejson).
    """
    try:
        body = safejson.clean(body)
    except safejson.Rejected as exc:
        raise StreamError(f"the server's answer is {exc.reason}") from None
    if not isinstance(body, dict):
        raise StreamError("the server's answer is not a JSON object")
    state = _ChunkState()
    state.feed(body, "message")
    events = state.take()
    if not state.errored and not isinstance(body.get("choices"), list):
        raise StreamError("the server's answer has no 'choices'")
    yield from events


def fold(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A server's message as one line of at most ``limit`` characters; a Python traceback is
    reduced to its last line (the exception)."""
    text = message.strip()
    if "Traceback (most recent call last)" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else text
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ChunkState:
    """Per-response bookkeeping: meta sent once, finish seen, error seen, argument depths; and
    the events of the chunks fed since the last :meth:`take`, consecutive text joined."""

    __slots__ = (
        "errored",
        "finished",
        "gauges",
        "meta_sent",
        "out",
        "progress",
        "run",
        "run_kind",
    )

    def __init__(self) -> None:
        self.meta_sent = False
        self.finished = False
        self.errored = False
        self.progress = False  # a data event since the deadline was last reset
        self.gauges: dict[int, safejson.DepthGauge] = {}
        self.out: list[StreamEvent] = []
        self.run: list[str] = []  # text of consecutive deltas of one kind, not yet in ``out``
        self.run_kind: type[TextDelta] | type[ReasoningDelta] = TextDelta

    def take(self) -> list[StreamEvent]:
        """The events fed so far, and start afresh."""
        self._end_run()
        out, self.out = self.out, []
        return out

    def _text(self, kind: type[TextDelta] | type[ReasoningDelta], text: str) -> None:
        if kind is not self.run_kind:
            self._end_run()
            self.run_kind = kind
        self.run.append(text)

    def _end_run(self) -> None:
        if self.run:
            run = self.run
            self.out.append(self.run_kind(run[0] if len(run) == 1 else "".join(run)))
            self.run = []

    def _add(self, event: StreamEvent) -> None:
        if self.run:
            self._end_run()
        self.out.append(event)

    def feed(self, chunk: dict[str, Any], delta_key: str) -> None:
        """The events of one chunk (an SSE event, or a whole non-streamed body)."""
        # The usual chunk, one choice with some text and nothing else of note, without the
        # general walk below; anything else (a finish, usage, an error, reasoning, tool calls,
        # the first chunk's meta, several choices) takes the general walk.
        if self.meta_sent and "error" not in chunk and "usage" not in chunk:
            choices = chunk.get("choices")
            if type(choices) is list and len(choices) == 1:
                choice = choices[0]
                if (
                    type(choice) is dict
                    and choice.get("index", 0) == 0
                    and not choice.get("finish_reason")
                    and "error" not in choice
                ):
                    delta = choice.get(delta_key)
                    if (
                        type(delta) is dict
                        and "reasoning" not in delta
                        and "tool_calls" not in delta
                    ):
                        content = delta.get("content")
                        if content and type(content) is str:
                            if self.run_kind is TextDelta:
                                self.run.append(content)
                            else:
                                self._text(TextDelta, content)
                        return
        self._feed_any(chunk, delta_key)

    def _feed_any(self, chunk: dict[str, Any], delta_key: str) -> None:
        if not self.meta_sent and (chunk.get("id") or chunk.get("model")):
            self.meta_sent = True
            self._add(ResponseMeta(_str_or_none(chunk.get("id")), _str_or_none(chunk.get("model"))))
        error = chunk.get("error")
        choices = chunk.get("choices")
        if type(choices) is list:
            for choice in choices:
                if type(choice) is dict and choice.get("index", 0) == 0:
                    self._choice(choice, delta_key, has_error=error is not None)
        usage = chunk.get("usage")
        if type(usage) is dict:
            self._add(_usage(usage))
        if error is not None and not self.errored:
            self.errored = True
            self._add(_error_event(error))

    def _choice(self, choice: dict[str, Any], delta_key: str, *, has_error: bool) -> None:
        delta = choice.get(delta_key)
        if type(delta) is dict:
            reasoning = delta.get("reasoning")
            if reasoning and type(reasoning) is str:
                self._text(ReasoningDelta, reasoning)
            content = delta.get("content")
            if content and type(content) is str:
                self._text(TextDelta, content)
            calls = delta.get("tool_calls")
            if type(calls) is list:
                for position, call in enumerate(calls):
                    if type(call) is dict:
                        self._add(self._tool_call_delta(call, position))
        elif delta_key == "message" and isinstance(choice.get("text"), str):
            self._text(TextDelta, choice["text"])  # legacy `prompt` completions
        reason = choice.get("finish_reason")
        if self.errored:
            return
        if isinstance(choice.get("error"), dict):
            self.errored = True
            self._add(_error_event(choice["error"]))
        elif reason == "error" and not has_error:
            # The top-level error object, when present, says more; this is the fallback.
            self.errored = True
            self._add(ErrorEvent("the model stopped with an error"))
        elif reason and isinstance(reason, str) and reason != "error":
            self.finished = True
            self._add(Finish(reason))

    def _tool_call_delta(self, call: dict[str, Any], position: int) -> ToolCallDelta:
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            # Some servers send arguments as an object; keep it as the JSON string it should be.
            arguments = "" if arguments is None else json.dumps(arguments, ensure_ascii=False)
        index = call.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position
        elif not 0 <= index < MAX_TOOL_CALLS:
            raise StreamError(f"malformed stream: a tool call has the index {str(index)[:20]}")
        if arguments:
            gauge = self.gauges.get(index)
            if gauge is None:
                gauge = self.gauges[index] = safejson.DepthGauge()
            if not gauge.feed(arguments):
                raise StreamError(
                    "malformed stream: tool call arguments nest deeper than "
                    f"{MAX_JSON_DEPTH} levels"
                )
        return ToolCallDelta(
            index=index,
            id=_str_or_none(call.get("id")),
            name=_str_or_none(function.get("name")),
            arguments=arguments,
        )


def _count(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNT:
        return value
    return None


def _usage(raw: dict[str, Any]) -> Usage:
    cost = raw.get("cost")
    price: float | None = None
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        try:
            price = float(cost)
        except OverflowError:  # an integer too large for a float
            price = None
        if price is not None and price - price != 0.0:
            price = None
    return Usage(
        prompt_tokens=_count(raw, "prompt_tokens"),
        completion_tokens=_count(raw, "completion_tokens"),
        total_tokens=_count(raw, "total_tokens"),
        cost=price,
        raw=raw,
    )


def _error_event(error: Any) -> ErrorEvent:
    if isinstance(error, dict):
        code = error.get("code")
        meta = error.get("metadata")
        if isinstance(code, str):
            code = fold(code, 100)
        elif not isinstance(code, int) or isinstance(code, bool) or not -(2**31) < code < 2**31:
            code = None
        return ErrorEvent(
            message=fold(str(error.get("message") or "the server reported an error")),
            code=code,
            metadata=meta if isinstance(meta, dict) else {},
        )
    return ErrorEvent(message=fold(str(error)) or "the server reported an error")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
