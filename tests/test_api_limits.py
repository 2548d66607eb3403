"""Memory bounds (DESIGN.md §9): bombs and huge bodies played by the fake server.

Peak memory is measured with tracemalloc around the request: every body byte the client holds
is a Python object, so this is a deterministic bound (the subprocess tests in test_api_e2e.py
check the RSS of the real command).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from llmost_cli.api import client, limits
from llmost_cli.core.events import StreamEvent, TextDelta
from llmost_cli.errors import APIError, StreamError
from tests import fakeserver as fs

MiB = 1 << 20
BOMBS = ["gzip", "deflate", "raw-deflate"]
ENCODING = {"gzip": "gzip", "deflate": "deflate", "raw-deflate": "deflate"}


def make(server: fs.FakeServer, **kw: Any) -> client.Client:
    kw.setdefault("retries", 0)
    return client.Client(server.base_url, "k", **kw)


@contextlib.contextmanager
def peak_memory(limit: int) -> Iterator[None]:
    """Fail if the Python heap grows by more than ``limit`` bytes inside the block."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak {peak / MiB:.1f} MiB"


def chat(c: client.Client, stream: bool = True) -> list[StreamEvent]:
    got: list[StreamEvent] = []
    with c:
        got.extend(c.chat({"stream": stream}))
    return got


# --- decompression bombs: 1 MB compressed, 1 GiB decoded ----------------------------------


@pytest.mark.parametrize("kind", BOMBS)
def test_bomb_as_json_body(server: fs.FakeServer, kind: str) -> None:
    body = fs.bomb(kind)
    assert len(body) < 1.1e6
    headers = {"Content-Encoding": ENCODING[kind]}
    server.add(fs.raw_response(200, body, content_type="application/json", headers=headers))
    with peak_memory(12 * MiB), pytest.raises(StreamError) as info:
        chat(make(server), stream=False)
    assert "answer to chat/completions" in str(info.value)
    assert info.value.exit_code == 7 and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", BOMBS)
def test_bomb_as_error_body(server: fs.FakeServer, kind: str) -> None:
    headers = {"Content-Encoding": ENCODING[kind]}
    server.add(fs.raw_response(503, fs.bomb(kind), content_type="text/plain", headers=headers))
    with peak_memory(4 * MiB), pytest.raises(APIError) as info:
        chat(make(server))
    assert info.value.status == 503
    assert str(info.value) == "HTTP 503: Service Unavailable: (binary data, 64 KiB)"


@pytest.mark.parametrize("kind", BOMBS)
@pytest.mark.parametrize(
    "unit",
    [
        b"\0",  # no line break ever: the event limit
        b": OPENROUTER PROCESSING\n\n",  # only keep-alives: the expansion limit
        b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n' % (b"lol " * 100),  # text
    ],
)
def test_bomb_as_stream(
    server: fs.FakeServer, kind: str, unit: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lower floor finds the bomb after 1 MiB instead of 4: the same check, a quarter of the
    # events to parse (the real floor is played end to end in test_api_e2e.py).
    monkeypatch.setattr(limits, "EXPANSION_FLOOR", 1 * MiB)
    bomb = fs.bomb(kind, unit=unit)
    server.add(fs.stream(fs.raw(bomb), headers={"Content-Encoding": ENCODING[kind]}))
    texts = 0
    # tracemalloc slows every allocation: the 170,000 keep-alives are only counted
    measure = peak_memory(12 * MiB) if b"PROCESSING" not in unit else contextlib.nullcontext()
    with measure, pytest.raises(StreamError) as info, make(server) as c:
        for event in c.chat({"stream": True}):
            texts += isinstance(event, TextDelta)  # not kept: only the client is measured
    message = str(info.value)
    assert "decompression bomb" in message or "longer than 4 MiB" in message
    assert texts * len(unit) <= limits.EXPANSION_FLOOR + limits.DECODE_STEP


def test_bomb_as_model_list(server: fs.FakeServer) -> None:
    headers = {"Content-Encoding": "gzip"}
    reply = fs.raw_response(
        200, fs.bomb("gzip", unit=b" "), content_type="application/json", headers=headers
    )
    server.add(reply, path="/api/v1/models")
    with peak_memory(12 * MiB), pytest.raises(StreamError, match="answer to models"):
        make(server).get_json("models")


def test_compressed_answers_still_work(server: fs.FakeServer) -> None:
    text = "Привет, мир! " * 20000
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in fs.split_text(text, 50)]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    sse = b"".join(b"data: %s\n\n" % json.dumps(c).encode() for c in chunks)
    server.add(fs.stream(fs.raw(gzip.compress(sse)), headers={"Content-Encoding": "gzip"}))
    got = chat(make(server))
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == text
    body = json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}]})
    headers = {"Content-Encoding": "deflate"}
    server.add(
        fs.raw_response(
            200, zlib.compress(body.encode()), content_type="application/json", headers=headers
        )
    )
    assert TextDelta(text) in chat(make(server), stream=False)


def test_unknown_or_corrupt_encoding_is_a_stream_error(server: fs.FakeServer) -> None:
    server.add(
        fs.raw_response(
            200, b"{}", content_type="application/json", headers={"Content-Encoding": "br"}
        )
    )
    with pytest.raises(StreamError, match="compressed with 'br'"):
        chat(make(server), stream=False)
    server.add(fs.stream(fs.raw(b"\x1f\x8bnot gzip at all"), headers={"Content-Encoding": "gzip"}))
    with pytest.raises(StreamError, match="not valid gzip data"):
        chat(make(server))


# --- huge uncompressed bodies -----------------------------------------------------------------


def test_json_body_over_the_limit_is_refused_from_its_length(server: fs.FakeServer) -> None:
    reply = fs.raw_http(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40000000\r\n\r\n{",
        then_hang=5,
    )
    server.add(reply)
    with pytest.raises(StreamError, match=r"answer to chat/completions is larger than 32 MiB"):
        chat(make(server), stream=False)


def test_json_body_over_the_limit_without_length(server: fs.FakeServer) -> None:
    big = b'{"choices": [], "pad": "' + b"x" * (40 * MiB) + b'"}'
    server.add(fs.stream(fs.raw(big), content_type="application/json", fragment=MiB))
    with peak_memory(48 * MiB), pytest.raises(StreamError, match="larger than 32 MiB"):
        chat(make(server), stream=False)


def test_huge_error_body_keeps_64_kib_and_folds_the_message(server: fs.FakeServer) -> None:
    message = "Traceback (most recent call last):\n" + "  frame\n" * 2_000_000 + "Boom: x"
    server.add(fs.error(500, message))  # 16 MB
    with peak_memory(4 * MiB), pytest.raises(APIError) as info:
        chat(make(server))
    exc = info.value
    # The envelope was cut at 64 KiB, so it is not JSON: its text is shown, folded.
    assert exc.status == 500 and len(str(exc)) < 300 and "\n" not in str(exc)
    assert len(exc.detail) <= limits.ERROR_BODY_LIMIT and exc.detail.startswith('{"error"')


def test_sse_event_over_the_limit_keeps_what_came_before(server: fs.FakeServer) -> None:
    first = fs.chunk({"choices": [{"index": 0, "delta": {"content": "kept"}}]})
    line = b"data: " + b"a" * (5 * MiB) + b"\n\n"
    server.add(fs.stream(first, fs.raw(line), fragment=65536))
    got: list[StreamEvent] = []
    with (
        peak_memory(8 * MiB),
        pytest.raises(StreamError, match="longer than 4 MiB"),
        make(server) as c,
    ):
        got.extend(c.chat({"stream": True}))
    assert got == [TextDelta("kept")]


def test_sse_event_just_under_the_limit_is_fine(server: fs.FakeServer) -> None:
    text = "b" * (limits.SSE_EVENT_LIMIT - 1000)
    server.add(fs.stream_text([text]))
    assert TextDelta(text) in chat(make(server))


def test_whole_stream_limit(server: fs.FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "SSE_STREAM_LIMIT", 64 * 1024)
    server.add(fs.stream_text(["x" * 1000] * 200))
    with pytest.raises(StreamError, match="the stream is larger than 64 KiB"):
        chat(make(server))


@pytest.mark.no_cover  # a size test: the example tests measure these lines
def test_model_list_limit_allows_100000_models(server: fs.FakeServer) -> None:
    biggest = max(fs.DEFAULT_MODELS, key=lambda m: len(json.dumps(m)))
    one = len(json.dumps(biggest, separators=(",", ":"))) + 1
    assert one * 100_000 < limits.MODEL_LIST_LIMIT
    assert limits.MODEL_LIST_LIMIT > 128 * 1000 * 1000  # ~1.3 KB a model
    server.models = [dict(biggest, id=f"v/m{i}") for i in range(10_000)]
    with make(server) as c:
        assert len(c.get_json("models")["data"]) == 10_000


def test_model_list_over_its_limit(server: fs.FakeServer) -> None:
    server.models = [dict(fs.DEFAULT_MODELS[0], id=f"v/m{i}") for i in range(2000)]
    with make(server) as c, pytest.raises(StreamError, match="answer to models is larger than"):
        c.get_json("models", limit=1 * MiB)
    with make(server) as c:  # other JSON answers get the small default limit
        server.add(fs.json_response({"pad": "x" * (33 * MiB)}), path="/api/v1/key")
        with pytest.raises(StreamError, match="answer to key is larger than 32 MiB"):
            c.get_json("key")


# --- the decoder on its own -------------------------------------------------------------------


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("kind", BOMBS)
@pytest.mark.parametrize("size", [1, 7, 65536])
def test_decoder_steps_are_bounded(kind: str, size: int) -> None:
    data = fs.bomb(kind, decoded_size=3 * MiB)
    out = limits.decoded(pieces(data, size), ENCODING[kind], 4 * MiB, "x")
    total = 0
    for piece in out:
        assert 0 < len(piece) <= limits.DECODE_STEP
        total += len(piece)
    assert total == 3 * MiB


def test_decoder_limit_is_exact() -> None:
    data = zlib.compress(b"z" * 1000)
    assert sum(map(len, limits.decoded([data], "deflate", 1000, "x"))) == 1000
    with pytest.raises(StreamError, match="x is larger than 999 bytes"):
        list(limits.decoded([data], "deflate", 999, "x"))
    with pytest.raises(StreamError, match="larger than 999 bytes"):
        list(limits.decoded([b"z" * 600, b"z" * 400], "identity", 999, "x"))


def test_decoder_ignores_bytes_after_the_end() -> None:
    data = gzip.compress(b"hello") + b"trailing junk"
    assert b"".join(limits.decoded(pieces(data, 3), "gzip", 100, "x")) == b"hello"


def test_read_prefix_stops_early() -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"e" * 1000

    body = bytearray()
    assert limits.read_prefix(endless(), 2500, body) is True and body == b"e" * 2500
    body = bytearray()
    assert limits.read_prefix([b"ab"], 5, body) is False and body == b"ab"


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",  # h11 keeps 100 KiB at most
        b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 20_000 + b"\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["huge-header", "many-headers", "not-http", "bad-chunk"],
)
def test_responses_that_are_not_http(server: fs.FakeServer, data: bytes) -> None:
    server.add(fs.raw_http(data))
    with peak_memory(4 * MiB), pytest.raises(StreamError, match="not valid HTTP") as info:
        chat(make(server))
    assert info.value.exit_code == 7 and len(str(info.value)) < 300
