"""The SSE/event layer and retries of client.py, without a terminal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmost_cli.api import client
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
    AuthError,
    CreditsError,
    NetworkError,
    RateLimitError,
    StreamError,
)
from tests import fakeserver as fs


def sse(*objs: Any, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(o)}\n\n" for o in objs]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def parse(data: bytes, size: int | None = None) -> list[StreamEvent]:
    if size is None:
        return list(client.parse_sse_bytes([data]))
    return list(client.parse_sse_bytes([data[i : i + size] for i in range(0, len(data), size)]))


def content(text: str, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, **extra}]}


def test_basic_stream_with_meta_usage_and_finish() -> None:
    data = b": OPENROUTER PROCESSING\n\n" + sse(
        {"id": "gen-1", "model": "m", **content("Hi")},
        {"id": "gen-1", "model": "m", **content("!", finish_reason="stop")},
        {"id": "gen-1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                                                 "total_tokens": 3, "cost": 0.5}},
    )  # fmt: skip
    events = parse(data)
    assert events == [
        ResponseMeta("gen-1", "m"),
        TextDelta("Hi"),
        TextDelta("!"),
        Finish("stop"),
        Usage(1, 2, 3, 0.5, raw=events[-1].raw),  # type: ignore[union-attr]
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    data = sse(content("Привет, "), content("мир"), content("", finish_reason="stop"))
    assert parse(data, size) == parse(data)
    assert [e.text for e in parse(data, size) if isinstance(e, TextDelta)] == ["Привет, ", "мир"]


def test_crlf_and_no_space_after_data() -> None:
    data = b'data:{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}\r\n\r\n'
    assert parse(data + b"data: [DONE]\r\n\r\n") == [TextDelta("a"), Finish("stop")]


def test_null_and_missing_fields_are_tolerated() -> None:
    data = sse(
        {"choices": [{"delta": {"content": None}}]},
        {"choices": [{"index": 0}]},
        {"choices": None},
        {"choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "x"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
    )
    assert parse(data) == [TextDelta("x"), Finish("length")]


def test_reasoning_and_tool_call_fragments() -> None:
    data = sse(
        {"choices": [{"index": 0, "delta": {"reasoning": "think"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "type": "function",
             "function": {"name": "f", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"a":'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    )  # fmt: skip
    assert parse(data) == [
        ReasoningDelta("think"),
        ToolCallDelta(0, "c1", "f", ""),
        ToolCallDelta(0, None, None, '{"a":'),
        ToolCallDelta(0, None, None, "1}"),
        Finish("tool_calls"),
    ]


def test_midstream_error_top_level_wins() -> None:
    data = sse(
        content("part"),
        {"error": {"code": "server_error", "message": "boom", "metadata": {"x": 1}},
         "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]},
        done=False,
    )  # fmt: skip
    assert parse(data) == [TextDelta("part"), ErrorEvent("boom", "server_error", {"x": 1})]


def test_finish_reason_error_without_error_object() -> None:
    events = parse(sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}))
    assert isinstance(events[-1], ErrorEvent)


def test_truncated_stream_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="closed before the answer was complete"):
        parse(sse(content("half"), done=False))


def test_finish_without_done_is_complete() -> None:
    assert parse(sse(content("a", finish_reason="stop"), done=False))[-1] == Finish("stop")


@pytest.mark.parametrize("line", [b"data: {oops\n\n", b"data: [1, 2]\n\n"])
def test_malformed_data_is_a_stream_error(line: bytes) -> None:
    with pytest.raises(StreamError, match="malformed stream"):
        parse(sse(content("a"), done=False) + line)


def test_garbage_non_data_lines_are_ignored() -> None:
    data = b"event: message\nid: 7\nretry: 10\nnonsense\n" + sse(content("a", finish_reason="stop"))
    assert parse(data) == [TextDelta("a"), Finish("stop")]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    data = (
        b'data: {"choices":[{"index":0,"delta":{"content":"caf\xe9"},"finish_reason":"stop"}]}\n\n'
    )
    assert parse(data)[0] == TextDelta("caf\ufffd")


def test_non_streamed_body() -> None:
    body = {
        "id": "gen-2",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello",
                     "tool_calls": [{"id": "c", "type": "function",
                                     "function": {"name": "f", "arguments": {"k": 1}}}]},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3},
    }  # fmt: skip
    events = list(client.events_from_body(body))
    assert events[:4] == [
        ResponseMeta("gen-2", "m"),
        TextDelta("Hello"),
        ToolCallDelta(0, "c", "f", '{"k": 1}'),
        Finish("stop"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": 500, "message": "x"}},
        {"choices": [{"index": 0, "finish_reason": "error", "error": {"message": "x"}}]},
    ],
)
def test_error_inside_200_body(body: dict[str, Any]) -> None:
    assert isinstance(list(client.events_from_body(body))[-1], ErrorEvent)


def test_body_without_choices() -> None:
    with pytest.raises(StreamError, match="no 'choices'"):
        list(client.events_from_body({"id": "x"}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0", 0.0), ("1.5", 1.5), ("-4", 0.0), (None, None), ("soon", None)],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert client.retry_after(value) == expected


def test_retry_after_http_date() -> None:
    assert client.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# --- against the real fake server: retries and status mapping -------------------------------


def make(server: fs.FakeServer, retries: int = 3) -> tuple[client.Client, list[float]]:
    slept: list[float] = []
    return client.Client(server.base_url, "k", retries=retries, sleep=slept.append), slept


def test_backoff_grows_and_honours_retry_after(server: fs.FakeServer) -> None:
    server.add(fs.error(500, "a"), fs.error(502, "b"), fs.error(429, "c", retry_after=7))
    server.add(fs.stream_text("ok"))
    c, slept = make(server)
    with c:
        events = list(c.chat({"messages": [], "stream": True}))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("ok")]
    assert 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0 and slept[2] == 7.0


def test_huge_retry_after_is_not_slept(server: fs.FakeServer) -> None:
    server.add(fs.error(429, "later", retry_after=3600))
    c, slept = make(server)
    with c, pytest.raises(RateLimitError):
        list(c.chat({"stream": True}))
    assert slept == []


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthError), (403, AuthError), (402, CreditsError), (400, APIError), (404, APIError)],
)
def test_status_classes(server: fs.FakeServer, status: int, cls: type[APIError]) -> None:
    server.add(fs.error(status, "msg"))
    c, slept = make(server)
    with c, pytest.raises(cls) as info:
        list(c.chat({"stream": True}))
    assert info.value.status == status and slept == []


def test_connection_refused_is_retried_then_network_error() -> None:
    slept: list[float] = []
    c = client.Client("http://127.0.0.1:9/v1", None, retries=2, sleep=slept.append)
    with c, pytest.raises(NetworkError, match="cannot connect"):
        list(c.chat({"stream": True}))
    assert len(slept) == 2


def test_get_json(server: fs.FakeServer) -> None:
    c, _ = make(server)
    with c:
        data = c.get_json("models")
    assert [m["id"] for m in data["data"]] == [m["id"] for m in fs.DEFAULT_MODELS]
