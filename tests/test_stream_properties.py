"""Property-based tests of the stream layer (hypothesis).

Any split of a valid SSE byte stream yields the same events; hostile bytes never raise anything
but the documented errors.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmost_cli.api import client
from llmost_cli.core.events import StreamEvent, TextDelta
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


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(sse_streams(), st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_gives_the_same_events(stream: tuple[bytes, list[str]], cuts: list[int]) -> None:
    data, pieces = stream
    whole = events([data])
    assert [e.text for e in whole if isinstance(e, TextDelta)] == pieces
    assert events(split(data, cuts)) == whole
    assert events([data[i : i + 1] for i in range(len(data))]) == whole  # byte by byte


@settings(max_examples=200, deadline=None)
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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60), st.lists(st.integers(min_value=0)))
def test_sse_shaped_garbage_raises_only_documented_errors(
    tokens: list[bytes], cuts: list[int]
) -> None:
    with contextlib.suppress(StreamError, NetworkError):
        events(split(b"".join(tokens), cuts))


@settings(max_examples=100, deadline=None)
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
