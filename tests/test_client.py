"""The SSE/event layer and retries of client.py, without a terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
        TextDelta("Hi!"),  # the text of one read (here: all of it) is one delta
        Finish("stop"),
        Usage(1, 2, 3, 0.5, raw=events[-1].raw),  # type: ignore[union-attr]
    ]


def test_text_of_one_read_is_joined_and_reads_stay_apart() -> None:
    one = sse(content("Hi"), content(" there"), done=False)
    two = sse({"choices": [{"index": 0, "delta": {"reasoning": "hm", "content": "!"}}]},
              content("?", finish_reason="stop"))  # fmt: skip
    assert list(client.parse_sse_bytes([one, two])) == [
        TextDelta("Hi there"),
        ReasoningDelta("hm"),  # a run of one kind ends where the other kind begins
        TextDelta("!?"),
        Finish("stop"),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    data = sse(content("Привет, "), content("мир"), content("", finish_reason="stop"))
    whole = parse(data)
    assert whole == [TextDelta("Привет, мир"), Finish("stop")]
    got = parse(data, size)
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "Привет, мир"
    assert [e for e in got if not isinstance(e, TextDelta)] == [Finish("stop")]
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


# --- visible retries and clear network errors ------------------------------------------------


def test_on_retry_reports_each_wait(server: fs.FakeServer) -> None:
    server.add(fs.error(503, "busy", retry_after=2), fs.error(500, "oops"), fs.stream_text("ok"))
    calls: list[tuple[int, int, float, str]] = []
    slept: list[float] = []
    c = client.Client(server.base_url, "k", sleep=slept.append, on_retry=lambda *a: calls.append(a))
    with c:
        assert TextDelta("ok") in list(c.chat({"stream": True}))
    assert calls[0] == (1, 3, 2.0, "HTTP 503")
    assert calls[1][:2] == (2, 3) and calls[1][3] == "HTTP 500" and 1.0 <= calls[1][2] <= 2.0
    assert slept == [2.0, calls[1][2]]


def test_connection_refused_names_host_and_port() -> None:
    calls: list[tuple[int, int, float, str]] = []
    c = client.Client(
        "http://127.0.0.1:9/v1",
        "k",
        retries=1,
        sleep=lambda s: None,
        on_retry=lambda *a: calls.append(a),
    )
    with c, pytest.raises(NetworkError) as info:
        list(c.chat({"stream": True}))
    assert str(info.value).startswith("cannot connect to 127.0.0.1:9: connection refused")
    assert info.value.exit_code == 8
    assert [(a, n, r) for a, n, _, r in calls] == [(1, 1, "connection refused")]


def test_unknown_host_is_a_clear_network_error() -> None:
    c = client.Client("http://does-not-exist.invalid:8080/v1", "k", retries=0, timeout=5)
    with c, pytest.raises(NetworkError) as info:
        list(c.chat({"stream": True}))
    assert str(info.value).startswith("cannot connect to does-not-exist.invalid:8080: ") or (
        "timed out" in str(info.value)  # a resolver that does not answer
    )


def test_dropped_stream_is_a_network_error(server: fs.FakeServer) -> None:
    server.add(fs.stream(fs.chunk({"choices": [{"index": 0, "delta": {"content": "par"}}]}),
                         fs.drop()))  # fmt: skip
    got: list[StreamEvent] = []
    with client.Client(server.base_url, "k") as c, pytest.raises(NetworkError) as info:
        got.extend(c.chat({"stream": True}))
    assert got == [TextDelta("par")]
    assert str(info.value).startswith(f"connection to 127.0.0.1:{server.port} dropped")


def test_server_traceback_is_folded_to_its_last_line(server: fs.FakeServer) -> None:
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app.py", line 10, in handle\n    route()\n'
        "KeyError: 'model'\n"
    )
    server.add(fs.error(400, tb))
    with client.Client(server.base_url, "k") as c, pytest.raises(APIError) as info:
        list(c.chat({"stream": True}))
    assert str(info.value) == "HTTP 400: KeyError: 'model'"
    assert info.value.detail == tb


def test_long_server_message_is_one_bounded_line(server: fs.FakeServer) -> None:
    message = "\n".join(f"line {i}: " + "detail " * 20 for i in range(100))
    server.add(fs.error(422, message))
    with client.Client(server.base_url, "k") as c, pytest.raises(APIError) as info:
        list(c.chat({"stream": True}))
    shown = str(info.value)
    assert "\n" not in shown and len(shown) <= 1000 + len("HTTP 422: ") and shown.endswith("…")
    assert info.value.detail == message


def test_html_error_page_shows_its_title(server: fs.FakeServer) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    server.add(fs.raw_response(502, page))
    with client.Client(server.base_url, "k", retries=0) as c, pytest.raises(APIError) as info:
        list(c.chat({"stream": True}))
    assert str(info.value) == "HTTP 502: Bad Gateway: 502 Bad Gateway"


def test_client_for_reads_the_settings(server: fs.FakeServer) -> None:
    @dataclass(frozen=True)
    class Settings:
        base_url: str
        timeout: float
        retries: int

    calls: list[Any] = []
    server.add(fs.error(503, "x"), fs.stream_text("fine"))
    c = client.client_for(
        Settings(server.base_url, 5.0, 1), "k", on_retry=lambda *a: calls.append(a)
    )
    c._sleep = lambda s: None  # type: ignore[method-assign]
    with c:
        assert TextDelta("fine") in list(c.chat({"stream": True}))
    assert c.retries == 1 and c._timeout == 5.0 and len(calls) == 1


# --- the wire behaviours of llmost-api.md §9, through a real socket ------------------------


def over_the_wire(server: fs.FakeServer, reply: fs.Reply, stream: bool = True) -> list[StreamEvent]:
    server.add(reply)
    with client.Client(server.base_url, "k") as c:
        return list(c.chat({"stream": stream}))


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
@pytest.mark.parametrize("chunked", [True, False])
@pytest.mark.parametrize("fragment", [None, 1, 7])
def test_stream_text_over_the_wire(
    server: fs.FakeServer, line_ending: str, chunked: bool, fragment: int | None
) -> None:
    text = "Привет, мир! 👋 **markdown**"
    reply = fs.stream_text(text, line_ending=line_ending, chunked=chunked, fragment=fragment)
    got = over_the_wire(server, reply)
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == text
    assert got[0] == ResponseMeta("gen-test-1", "openai/gpt-4o")
    assert Finish("stop") in got and isinstance(got[-1], Usage)
    assert got[-1].total_tokens == 15


def test_tool_calls_over_the_wire(server: fs.FakeServer) -> None:
    calls = [("c1", "get_weather", '{"city": "Moscow"}'), ("c2", "now", "{}")]
    got = over_the_wire(server, fs.stream_tool_calls(calls, interleave=True))
    args: dict[int, str] = {}
    for e in got:
        if isinstance(e, ToolCallDelta):
            args[e.index] = args.get(e.index, "") + e.arguments
    assert args == {0: '{"city": "Moscow"}', 1: "{}"} and Finish("tool_calls") in got


def test_midstream_error_over_the_wire(server: fs.FakeServer) -> None:
    got = over_the_wire(server, fs.midstream_error("part", code="server_error", message="boom"))
    assert TextDelta("part") in got and got[-1] == ErrorEvent("boom", "server_error", {})


def test_completion_over_the_wire(server: fs.FakeServer) -> None:
    got = over_the_wire(server, fs.completion("Hello!", reasoning="hm"), stream=False)
    assert [type(e).__name__ for e in got] == [
        "ResponseMeta", "ReasoningDelta", "TextDelta", "Finish", "Usage",
    ]  # fmt: skip


def test_truncated_stream_over_the_wire(server: fs.FakeServer) -> None:
    with pytest.raises(NetworkError, match="closed before the answer was complete"):
        over_the_wire(server, fs.stream_text("abc", finish_reason=None, usage=None, done=False))
