"""Hostile JSON from the server: only StreamError (exit 7) or a sanitised value, never a crash.

Deep nesting, numbers Python refuses, NaN/Infinity, lone surrogates and odd shapes, in SSE
events, non-streamed bodies, error bodies and tool-call arguments. Property-based versions are
in test_stream_properties.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmost_cli.api import client, limits, safejson
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
from llmost_cli.errors import APIError, NetworkError, StreamError
from tests import fakeserver as fs

STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
FIRST = b'data: {"choices":[{"index":0,"delta":{"content":"kept"}}]}\n\n'
DEEP = 100_000


def events(*payloads: bytes | str, end: bytes = STOP) -> list[StreamEvent]:
    data = b"".join(
        b"data: " + (p.encode() if isinstance(p, str) else p) + b"\n\n" for p in payloads
    )
    return list(client.parse_sse_bytes([data + end]))


def partial(*payloads: bytes | str) -> tuple[list[StreamEvent], StreamError]:
    """Events yielded before the StreamError, and the error."""
    got: list[StreamEvent] = []
    data = FIRST + b"".join(
        b"data: " + (p.encode() if isinstance(p, str) else p) + b"\n\n" for p in payloads
    )
    with pytest.raises(StreamError) as info:
        got.extend(client.parse_sse_bytes([data + STOP]))
    return got, info.value


def assert_safe(got: list[StreamEvent]) -> None:
    """Everything can be encoded as UTF-8 and written as strict JSON."""
    for event in got:
        for value in vars_of(event):
            json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


def vars_of(event: StreamEvent) -> list[Any]:
    return [getattr(event, name) for name in event.__slots__]


# --- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "[" * DEEP + "]" * DEEP,
        "[" * DEEP,  # never closed
        '{"a":' * DEEP + "1" + "}" * DEEP,
        '{"choices":[{"index":0,"delta":{"content":"x","extra":' + "[" * DEEP + "]" * DEEP + "}}]}",
        '{"choices":[],"usage":{"detail":' + "[" * 65 + "]" * 65 + "}}",
    ],
)
def test_deep_nesting_in_an_event(payload: str) -> None:
    got, error = partial(payload)
    assert got == [TextDelta("kept")]
    assert "nested deeper than 64 levels" in str(error) and error.exit_code == 7
    assert len(str(error)) < 300


def test_nesting_up_to_the_limit_is_fine() -> None:
    deep = "[" * 60 + "1" + "]" * 60
    got = events('{"choices":[],"usage":{"total_tokens":3,"x":' + deep + "}}")
    usage = got[0]
    assert isinstance(usage, Usage) and usage.total_tokens == 3
    json.dumps(usage.raw)


def test_brackets_inside_strings_do_not_count() -> None:
    text = "[" * 5000 + '{"' * 100 + "\\" * 7
    got = events(json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}))
    assert got[0] == TextDelta(text)


def test_tool_arguments_nested_5000_deep_are_refused() -> None:
    arguments = '{"a":' * 5000 + "1" + "}" * 5000
    frags = [arguments[i : i + 300] for i in range(0, len(arguments), 300)]
    payloads = [
        json.dumps(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": f}}]},
                    }
                ]
            }
        )
        for f in frags
    ]
    got, error = partial(*payloads)
    assert "tool call arguments nest deeper than 64 levels" in str(error)
    assert got[0] == TextDelta("kept") and len(got) <= 2  # refused at the first deep fragment


def test_tool_arguments_depth_is_tracked_per_call_across_fragments() -> None:
    def frag(index: int, text: str) -> str:
        call = {"index": index, "function": {"arguments": text}}
        return json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})

    ok = '{"s": "[[[[\\"]]]", "b": ' + "[" * 63 + "]" * 63 + "}"  # string brackets, escapes
    pieces = [frag(i % 2, ok[j : j + 1]) for j in range(len(ok)) for i in (0, 1)]
    got = events(*pieces)
    assert "".join(e.arguments for e in got if isinstance(e, ToolCallDelta) and e.index == 1) == ok
    bad = [frag(3, "["), *[frag(3, "[") for _ in range(70)]]
    with pytest.raises(StreamError, match="nest deeper"):
        events(*bad)


def test_tool_arguments_as_a_deep_object_are_refused() -> None:
    args = "[" * 1000 + "]" * 1000
    payload = (
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
        + args
        + "}}]}}]}"
    )
    _, error = partial(payload)
    assert "nested deeper" in str(error)


# --- numbers ------------------------------------------------------------------------------


def test_a_5000_digit_integer_is_a_stream_error() -> None:
    got, error = partial('{"choices":[],"usage":{"total_tokens":' + "9" * 5000 + "}}")
    assert got == [TextDelta("kept")]
    assert "integer" in str(error) and len(str(error)) < 300


def test_large_but_parseable_numbers_are_not_counts() -> None:
    big = "9" * 4000
    got = events('{"choices":[],"usage":{"prompt_tokens":' + big + ',"cost":' + big + "}}")
    usage = got[0]
    assert isinstance(usage, Usage)
    assert usage.prompt_tokens is None and usage.cost is None


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_become_null(value: str) -> None:
    got = events(
        '{"choices":[],"usage":{"total_tokens":5,"cost":' + value + ',"x":[' + value + "]}}"
    )
    usage = got[0]
    assert isinstance(usage, Usage)
    assert usage.cost is None and usage.raw == {"total_tokens": 5, "cost": None, "x": [None]}
    assert_safe(got)


def test_odd_indexes() -> None:
    def call(index: Any) -> str:
        tc = {"index": index, "id": "c", "function": {"name": "f", "arguments": "{}"}}
        return json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [tc]}}]})

    got = events(call(True), call("zero"), call(1.5), call(None))
    assert [e.index for e in got if isinstance(e, ToolCallDelta)] == [0, 0, 0, 0]
    for bad in (-1, limits.MAX_JSON_DEPTH * 0 + 1024, 10**30):
        with pytest.raises(StreamError, match="a tool call has the index"):
            events(call(bad))


# --- strings ------------------------------------------------------------------------------


def test_lone_surrogates_become_replacement_characters() -> None:
    lone = "\\ud800"
    chunk = (
        '{"id":"gen-' + lone + '","model":"m' + lone + '","choices":[{"index":0,"delta":'
        '{"reasoning":"r' + lone + '","content":"a' + lone + "b\\udfff" + '","tool_calls":'
        '[{"index":0,"id":"c' + lone + '","function":{"name":"n' + lone + '","arguments":'
        '"{\\"k\\": \\"' + lone + '\\"}"}}]}}],"usage":{"' + lone + '":"' + lone + '"}}'
    )
    got = events(chunk)
    assert got[:4] == [
        ResponseMeta("gen-\ufffd", "m\ufffd"),
        ReasoningDelta("r\ufffd"),
        TextDelta("a\ufffdb\ufffd"),
        ToolCallDelta(0, "c\ufffd", "n\ufffd", '{"k": "\ufffd"}'),
    ]
    assert isinstance(got[4], Usage) and got[4].raw == {"\ufffd": "\ufffd"}
    assert_safe(got)


def test_surrogate_pairs_stay_characters() -> None:
    got = events('{"choices":[{"index":0,"delta":{"content":"\\ud83d\\ude00 \\u0434"}}]}')
    assert got[0] == TextDelta("😀 д")


def test_error_event_message_is_sanitised_and_folded() -> None:
    message = "Traceback (most recent call last):\\n  File x\\nValueError: bad \\ud800"
    got = events(
        '{"error":{"code":"server_error","message":"' + message + '","metadata":{"m":NaN}},'
        '"choices":[{"index":0,"finish_reason":"error"}]}',
        end=b"",
    )
    assert got == [ErrorEvent("ValueError: bad \ufffd", "server_error", {"m": None})]
    long = "x" * 100_000
    got = events(json.dumps({"error": {"message": long, "code": 10**40}}), end=b"")
    error = got[0]
    assert isinstance(error, ErrorEvent) and len(error.message) == 1000 and error.code is None


# --- shapes -------------------------------------------------------------------------------

ODD = [
    "[]",
    '"text"',
    "7",
    "null",
    "true",
    '{"choices":{"0":{}}}',
    '{"choices":["x",1,null,[]]}',
    '{"choices":[{"index":0,"delta":"text"}]}',
    '{"choices":[{"index":0,"delta":{"content":["a"],"reasoning":{"x":1},"tool_calls":{}}}]}',
    '{"choices":[{"index":0,"delta":{"tool_calls":["x",null,{"function":[]}]}}]}',
    '{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":7,"arguments":[1]}}]}}]}',
    '{"choices":[{"index":[],"finish_reason":["stop"]}]}',
    '{"choices":[{"index":0,"finish_reason":7}],"usage":[]}',
    '{"usage":"lots","error":null}',
    '{"error":[1,2]}',
    '{"error":17}',
    '{"error":{"message":{"nested":"object"},"code":[1]}}',
    '{"id":{},"model":[],"choices":[]}',
]


@pytest.mark.parametrize("payload", ODD)
def test_odd_shapes_give_events_or_a_stream_error(payload: str) -> None:
    try:
        got = events(payload)
    except (StreamError, NetworkError):
        return
    assert_safe(got)


# --- non-streamed and error bodies ------------------------------------------------------------


def body_events(server: fs.FakeServer, body: bytes) -> list[StreamEvent]:
    server.add(fs.raw_response(200, body, content_type="application/json"))
    with client.Client(server.base_url, "k", retries=0) as c:
        return list(c.chat({"stream": False}))


@pytest.mark.parametrize(
    "body",
    [b"[" * DEEP + b"]" * DEEP, b'{"choices":[],"x":' + b"9" * 5000 + b"}", b"[1]", b'"x"'],
)
def test_hostile_non_streamed_body(server: fs.FakeServer, body: bytes) -> None:
    with pytest.raises(StreamError) as info:
        body_events(server, body)
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)


def test_non_streamed_body_is_sanitised(server: fs.FakeServer) -> None:
    body = (
        b'{"id":"g","choices":[{"index":0,"message":{"content":"a\\udc00"},"finish_reason":"stop"}],'
        b'"usage":{"total_tokens":1,"cost":Infinity}}'
    )
    got = body_events(server, body)
    assert TextDelta("a\ufffd") in got and Finish("stop") in got
    usage = next(e for e in got if isinstance(e, Usage))
    assert usage.cost is None and usage.raw["cost"] is None
    assert_safe(got)


def test_events_from_body_checks_python_values_too() -> None:
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(StreamError, match="nested deeper"):
        list(client.events_from_body({"choices": [], "usage": {"x": deep}}))
    body = {"choices": [{"message": {"content": "\ud800"}}], "usage": {"cost": float("nan")}}
    got = list(client.events_from_body(body))
    assert got[0] == TextDelta("\ufffd")
    assert isinstance(got[1], Usage) and got[1].cost is None


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b'{"error":{"message":"bad \\ud800 key","code":400}}', "HTTP 400: bad \ufffd key"),
        (b'{"error":{"message":' + b"[" * DEEP + b"]" * DEEP + b"}}", "HTTP 400: Bad Request"),
        (b'{"error":{"message":"x","code":' + b"9" * 5000 + b"}}", "HTTP 400: Bad Request"),
        (b'{"error":{"message":"x","code":1e999}}', "HTTP 400: x"),
    ],
)
def test_hostile_error_bodies(server: fs.FakeServer, body: bytes, shown: str) -> None:
    server.add(fs.raw_response(400, body, content_type="application/json"))
    with client.Client(server.base_url, "k", retries=0) as c, pytest.raises(APIError) as info:
        list(c.chat({"stream": True}))
    assert str(info.value).startswith(shown)
    str(info.value).encode("utf-8")
    assert info.value.code in (400, None) or isinstance(info.value.code, int)


def test_get_json_is_sanitised(server: fs.FakeServer) -> None:
    reply = fs.raw_response(
        200, b'{"data":[{"id":"m\\ud800","context_length":NaN}]}', content_type="application/json"
    )
    server.add(reply, path="/api/v1/models")
    with client.Client(server.base_url, "k") as c:
        assert c.get_json("models") == {"data": [{"id": "m\ufffd", "context_length": None}]}


# --- the helpers --------------------------------------------------------------------------


def test_depth_gauge_follows_strings_and_escapes_across_pieces() -> None:
    gauge = safejson.DepthGauge()
    text = '{"a": "\\\\", "b": "\\"[[[", "c": [[]]}'
    for ch in text:
        assert gauge.feed(ch, limit=3)
    assert gauge.depth == 0 and not gauge.in_string
    assert not safejson.DepthGauge().feed("[[[[", limit=3)


def test_fold() -> None:
    from llmost_cli.api.sse import fold

    assert fold("  a\n\n b\tc  ") == "a b c"
    tb = "Traceback (most recent call last):\n  File \"x.py\", line 1\n    boom()\nKeyError: 'k'\n"
    assert fold(tb) == "KeyError: 'k'"
    assert fold("x" * 5000) == "x" * 999 + "…"
