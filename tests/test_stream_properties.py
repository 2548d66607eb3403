"""Property-based tests of the stream layer (hypothesis).

Any split of a valid SSE byte stream yields the same events; hostile bytes never raise anything
but the documented errors.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmost_cli.api import client
from llmost_cli.core.events import ReasoningDelta, StreamEvent, TextDelta
from llmost_cli.errors import LlmostError, NetworkError, StreamError

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40
)  # any Unicode, including Cyrillic, emoji, NUL, CR and LF inside the JSON strings


def chunk(text: str) -> dict[str, Any]:
    return {"id": "g", "choices": [{"index": 0, "delta": {"content": text}}]}


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    pieces = draw(st.lists(texts, min_size=0, max_size=12))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    space = draw(st.sampled_from(["data: ", "data:"]))
    lines: list[str] = []
    for piece in pieces:
        if draw(st.booleans()):
            lines.append(f": OPENROUTER PROCESSING{eol}{eol}")
        payload = json.dumps(chunk(piece), ensure_ascii=draw(st.booleans()))
        lines.append(f"{space}{payload}{eol}{eol}")
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    lines.append(f"data: {json.dumps(finish)}{eol}{eol}")
    lines.append(f"data: {json.dumps({'choices': [], 'usage': {'total_tokens': 1}})}{eol}{eol}")
    if draw(st.booleans()):
        lines.append(f": trailing comment{eol}")
    lines.append(f"data: [DONE]{eol}{eol}")
    return "".join(lines).encode("utf-8"), [p for p in pieces if p]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, start = [], 0
    for p in points:
        out.append(data[start:p])
        start = p
    out.append(data[start:])
    return [c for c in out if c]


def events(chunks: list[bytes]) -> list[StreamEvent]:
    return list(client.parse_sse_bytes(chunks))


def joined(got: list[StreamEvent]) -> list[StreamEvent]:
    """Consecutive text (or reasoning) deltas as one: how a stream is split into network reads
    decides where deltas end (the text of one read is one delta), and nothing else."""
    out: list[StreamEvent] = []
    for event in got:
        if isinstance(event, TextDelta | ReasoningDelta) and out and type(out[-1]) is type(event):
            out[-1] = type(event)(out[-1].text + event.text)  # type: ignore[union-attr]
        else:
            out.append(event)
    return out


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(sse_streams(), st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_gives_the_same_events(stream: tuple[bytes, list[str]], cuts: list[int]) -> None:
    data, pieces = stream
    whole = events([data])
    assert "".join(e.text for e in whole if isinstance(e, TextDelta)) == "".join(pieces)
    assert joined(events(split(data, cuts))) == joined(whole)
    by_byte = events([data[i : i + 1] for i in range(len(data))])
    assert joined(by_byte) == joined(whole)
    assert [e.text for e in by_byte if isinstance(e, TextDelta)] == pieces  # a read per event


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=10))
def test_garbage_raises_only_documented_errors(data: bytes, cuts: list[int]) -> None:
    # documented: malformed stream (7) or truncated stream (8); anything else fails the test
    with contextlib.suppress(StreamError, NetworkError):
        events(split(data, cuts))


TOKENS = [
    b"data: ", b"data:", b"\n", b"\r\n", b"\r", b": comment", b"[DONE]", b"{", b"}", b"[", b"]",
    b'"choices"', b'"delta"', b'"content"', b'"finish_reason"', b'"error"', b'"usage"',
    b'"tool_calls"', b'"index"', b":", b",", b"null", b"0", b"-1", b'"x"', b"\xd0", b"\xff",
    b'{"choices":[{"index":0,"delta":{"content":"a"}}]}',
    b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    b'{"error":{"code":"x","message":"m"}}',
    b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":"zero","function":7}]}}]}',
    b'{"choices":"nope","usage":[]}',
]  # fmt: skip


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60), st.lists(st.integers(min_value=0)))
def test_sse_shaped_garbage_raises_only_documented_errors(
    tokens: list[bytes], cuts: list[int]
) -> None:
    with contextlib.suppress(StreamError, NetworkError):
        events(split(b"".join(tokens), cuts))


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=60, deadline=None)
@given(sse_streams(), st.integers(min_value=1))
def test_truncated_stream_is_network_error_or_complete(
    stream: tuple[bytes, list[str]], cut: int
) -> None:
    data, _ = stream
    head = data[: cut % len(data)]
    try:
        got = events([head])
    except LlmostError as exc:
        assert isinstance(exc, NetworkError | StreamError)
    else:
        # only a stream cut after its finish chunk counts as complete
        assert any(type(e).__name__ == "Finish" for e in got)


def test_very_long_line() -> None:
    text = "я" * 2_000_000
    data = f"data: {json.dumps(chunk(text), ensure_ascii=False)}\n\n".encode()
    data += b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    got = events(split(data, list(range(0, len(data), 65536))))
    assert got[1] == TextDelta(text)


def test_utf8_character_split_across_chunks() -> None:
    data = f"data: {json.dumps(chunk('ё👍'), ensure_ascii=False)}\n\n".encode()
    data += b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    for i in range(1, len(data)):
        assert events([data[:i], data[i:]])[1] == TextDelta("ё👍")


# --- hostile JSON values (depth, size, numbers, surrogates) --------------------------------

# JSON text of a value, written by hand so that it may hold what json.dumps refuses or cannot
# produce: lone surrogates, NaN, 6000-digit numbers, nesting 3000 deep.
scalars = st.one_of(
    st.sampled_from(["null", "true", "false", "0", "-1", "0.5", "[]", "{}", '""']),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999"]),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=30).map(json.dumps),
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\ud83d\\ude00"', '"\\ud83d"', '"[[{\\"]"']),
)
nested = st.tuples(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", '{"k":'])).map(
    lambda t: t[1] * t[0] + "1" + ("]" if t[1] == "[" else "}") * t[0]
)
values = st.recursive(
    st.one_of(scalars, nested),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(scalars, inner), max_size=4).map(
            lambda kvs: "{" + ",".join(f"{json.dumps(str(k))}:{v}" for k, v in kvs) + "}"
        ),
    ),
    max_leaves=8,
)
TEMPLATES = [
    '{"choices":[{"index":0,"delta":{"content":V}}]}',
    '{"choices":[{"index":0,"delta":{"reasoning":V,"role":V}}]}',
    '{"choices":[{"index":V,"delta":{"content":"x"},"finish_reason":V}]}',
    '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":V,"id":V,"function":'
    '{"name":V,"arguments":V}}]}}]}',
    '{"choices":[{"index":0,"delta":{"tool_calls":V}}]}',
    '{"choices":[],"usage":{"prompt_tokens":V,"completion_tokens":V,"cost":V,"extra":V}}',
    '{"error":V,"choices":[{"index":0,"finish_reason":"error"}]}',
    '{"error":{"message":V,"code":V,"metadata":V}}',
    '{"id":V,"model":V,"choices":V,"usage":V}',
    '{"choices":[{"index":0,"delta":V,"message":V}]}',
    "V",
]


def check_safe(got: list[StreamEvent]) -> None:
    """What was yielded can be encoded as UTF-8, written as strict JSON and walked."""
    from llmost_cli.core.events import ErrorEvent, ToolCallDelta, Usage

    for event in got:
        for name in event.__slots__:
            value = getattr(event, name)
            json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
        if isinstance(event, ToolCallDelta):
            assert 0 <= event.index < 1024
        if isinstance(event, Usage):
            for count in (event.prompt_tokens, event.completion_tokens, event.total_tokens):
                assert count is None or 0 <= count < 2**53
            assert event.cost is None or event.cost - event.cost == 0
        if isinstance(event, ErrorEvent):
            assert len(event.message) <= 1000 and "\n" not in event.message


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(TEMPLATES), values), min_size=1, max_size=5))
def test_hostile_json_values_raise_only_documented_errors(
    events_spec: list[tuple[str, str]],
) -> None:
    head = b'data: {"choices":[{"index":0,"delta":{"content":"first"}}]}\n\n'
    data = head + b"".join(
        b"data: " + t.replace("V", v).encode("utf-8", "surrogatepass") + b"\n\n"
        for t, v in events_spec
    )
    data += b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    got: list[StreamEvent] = []
    try:
        got.extend(client.parse_sse_bytes([data]))
    except (StreamError, NetworkError) as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
    # yielded before anything bad stays yielded (joined with the text after it in one read)
    assert isinstance(got[0], TextDelta) and got[0].text.startswith("first")
    check_safe(got)


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEMPLATES), values)
def test_hostile_json_bodies_raise_only_documented_errors(template: str, value: str) -> None:
    from llmost_cli.api import safejson

    text = template.replace("V", value).replace('"delta"', '"message"')
    try:
        body = safejson.loads(text.encode("utf-8", "surrogatepass"))
        got = list(client.events_from_body(body))
    except (safejson.Rejected, StreamError):
        return
    check_safe(got)


def json_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    return 0


tricky = st.text(alphabet='[]{}"\\ab/\n', max_size=8)
json_trees = st.recursive(
    st.one_of(st.none(), st.integers(), tricky),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(tricky, inner, max_size=3)
    ),
    max_leaves=30,
)


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=80, deadline=None)
@given(json_trees, st.integers(min_value=0, max_value=8), st.booleans())
def test_depth_check_is_exact_on_json(value: Any, limit: int, ascii_only: bool) -> None:
    from llmost_cli.api import safejson

    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert safejson.depth_ok(text, limit) == (json_depth(value) <= limit)


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=80, deadline=None)
@given(json_trees, st.lists(st.integers(min_value=0), max_size=20))
def test_depth_gauge_matches_the_whole_text(value: Any, cuts: list[int]) -> None:
    from llmost_cli.api import safejson

    text = json.dumps(value)
    gauge = safejson.DepthGauge()
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    deepest = json_depth(value)
    ok = all(gauge.feed(p, limit=6) for p in pieces)
    assert ok == (deepest <= 6)
    if ok:
        assert gauge.depth == 0 and not gauge.in_string
