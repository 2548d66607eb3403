"""The lean stream path: a chunked body is read a network read at a time, the text of one read
is written once, and a reader still gets every read's text as soon as it arrives."""

from __future__ import annotations

import io
import itertools
import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import h11
import httpx
import pytest
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmost_cli.api import chunked, client
from llmost_cli.core.turn import stream_answer
from llmost_cli.errors import StreamError
from llmost_cli.ui.output import UI, PlainWriter
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, llmost_executable

# --- the chunked reader: what h11's reader reads, in fewer events ------------------------------


def read_all(reader: Any, pieces: list[bytes]) -> tuple[bytes, int, str]:
    """Feed ``pieces`` to a chunked body reader as h11 does; (data, Data events, outcome)."""
    buf = ReceiveBuffer()
    data, count = b"", 0
    try:
        for piece in [*pieces, b""]:
            if piece:
                buf += piece
            else:  # the peer closed the connection
                reader.read_eof()
            while True:
                event = reader(buf)
                if event is None:
                    break
                if isinstance(event, h11.EndOfMessage):
                    return data, count, "end"
                assert event.data  # never an empty event (h11 sends none either)
                data += bytes(event.data)
                count += 1
    except (h11.LocalProtocolError, h11.RemoteProtocolError) as exc:
        return data, count, type(exc).__name__
    raise AssertionError("unreachable")


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    payloads = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=12))
    body = b""
    for payload in payloads:
        # a long extension: the size line is then read stepwise, as h11 reads it
        ext = draw(st.sampled_from([b"", b";name=value", b" ", b"\t;x", b";" + b"x" * 300]))
        size = draw(st.sampled_from([b"%x", b"%X", b"%04x"])) % len(payload)
        body += size + ext + b"\r\n" + payload + b"\r\n"
    body += b"0\r\n" + draw(st.sampled_from([b"", b"Trailer-Field: yes\r\n"])) + b"\r\n"
    if draw(st.booleans()):  # break it somewhere: a wrong size, footer, header...
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + draw(st.binary(min_size=0, max_size=3)) + body[at + 1 :]
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_bodies(), st.lists(st.integers(min_value=0), max_size=20))
def test_batched_reader_reads_what_h11_reads(body: bytes, cuts: list[int]) -> None:
    pieces = split(body, cuts)
    theirs = read_all(ChunkedReader(), pieces)
    ours = read_all(chunked.BatchedChunkedReader(), pieces)
    assert (ours[0], ours[2]) == (theirs[0], theirs[2])
    assert ours[1] <= theirs[1]


def test_one_event_per_read_however_many_chunks() -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in [b"a", b"bc", b"def"] * 100)
    data, count, outcome = read_all(chunked.BatchedChunkedReader(), [body, b"0\r\n\r\n"])
    assert (data, count, outcome) == (b"abcdef" * 100, 1, "end")
    # h11's own reader: one event per chunk
    assert read_all(ChunkedReader(), [body, b"0\r\n\r\n"])[1] == 300


def test_the_reader_is_installed_in_h11() -> None:
    from h11._readers import READERS

    assert chunked.install() is True
    assert READERS[h11.SEND_BODY]["chunked"] is chunked.BatchedChunkedReader  # type: ignore[index]


def test_a_long_chunk_size_line_is_bounded_by_h11(server: fs.FakeServer) -> None:
    """The size line stays in h11's buffer until complete, so h11's limit applies to it."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    server.add(fs.raw_http(head + b"1" * (200 * 1024)))
    with client.Client(server.base_url, "k", retries=0) as c, pytest.raises(StreamError):
        list(c.chat({"stream": True}))


# --- one write per read -------------------------------------------------------------------------


def event(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


class Out(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return super().write(data)


def test_plain_writer_writes_the_text_of_a_read_at_once() -> None:
    reads = [
        event("one ") + event("two ") + event("three "),
        event("four ") + event("fi"),
        b'data: {"choices":[{"index":0,"delta":{"content":"ve"}}]}\n\n' + STOP,
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=reads)

    out = Out()
    ui = UI(out=out, err=io.StringIO(), out_tty=False, err_tty=False)
    c = client.Client("http://mock/v1", "k", transport=httpx.MockTransport(handler))
    reply, error = stream_answer(c, {"stream": True}, "", PlainWriter(ui))
    assert error is None and reply.text == "one two three four five"
    assert out.writes == [b"one two three ", b"four fi", b"ve", b"\n"]


# --- a waiting reader sees each read's text at once ---------------------------------------------


def start(server: fs.FakeServer) -> subprocess.Popen[bytes]:
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    return subprocess.Popen(
        [llmost_executable(), "ask", "hi"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def read_for(fd: int, needle: bytes, seconds: float) -> bytes:
    got = b""
    deadline = time.monotonic() + seconds
    while needle not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        got += chunk
    return got


def pieces(n: int, prefix: str) -> Iterator[str]:
    return (f"{prefix}{i} " for i in range(n))


def test_text_arrives_while_the_stream_pauses(server: fs.FakeServer) -> None:
    first, second = list(pieces(500, "a")), list(pieces(5, "b"))

    def delta(**fields: Any) -> fs.Part:
        return fs.chunk({"id": "g", "model": "m", "choices": [{"index": 0, **fields}]})

    parts = [delta(delta={"content": p}) for p in first]
    parts.append(fs.pause(4))
    parts += [delta(delta={"content": p}) for p in second]
    parts.append(delta(delta={}, finish_reason="stop"))
    server.add(fs.stream(*parts, fs.done()))
    proc = start(server)
    assert proc.stdout is not None
    try:
        head = read_for(proc.stdout.fileno(), b"a499 ", 3.5)
        assert head == "".join(first).encode()  # all of it, while the server still pauses
        assert proc.poll() is None
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert head + out == ("".join(first + second) + "\n").encode()


# --- the fast JSON path accepts and refuses exactly what the full path does ---------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
NOISE = [
    "",
    " ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    '"',
    ",",
    ":",
    "\\",
    "\\ud800",
    "\\uDC00",
    "x",
    "1e999",
    "NaN",
]


def full_path(data: bytes) -> Any:
    """safejson.loads as it was: depth check, JSONDecoder.decode, cleaning."""
    from llmost_cli.api import safejson

    if not safejson.depth_ok(data):
        raise safejson.Rejected("deep")
    try:
        value = safejson.DECODER.decode(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise safejson.Rejected("invalid") from None
    return safejson.clean(value) if safejson.may_have_surrogates(data) else value


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=100, deadline=None)
@given(json_values, st.sampled_from(NOISE), st.integers(min_value=0), st.booleans())
def test_fast_json_path_matches_the_full_path(
    value: Any, noise: str, at: int, ascii_only: bool
) -> None:
    from llmost_cli.api import safejson

    text = json.dumps(value, ensure_ascii=ascii_only)
    at %= len(text) + 1
    data = (text[:at] + noise + text[at:]).encode("utf-8", "surrogatepass")
    try:
        expected: Any = ("value", repr(full_path(data)))
    except safejson.Rejected:
        expected = "rejected"
    try:
        got: Any = ("value", repr(safejson.loads(data)))
    except safejson.Rejected:
        got = "rejected"
    assert got == expected
