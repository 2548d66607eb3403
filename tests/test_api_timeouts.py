"""--timeout really bounds time: connecting, the response headers however slowly they come,
and the time without a complete SSE data event (keep-alives and trickles do not count)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx
import pytest

from llmost_cli.api import client, limits, transport
from llmost_cli.core.events import StreamEvent, TextDelta
from llmost_cli.errors import APIError, RequestTimeout
from tests import fakeserver as fs

T = 1.0  # the timeout of these tests
SLACK = 1.5  # scheduling on a busy machine


def make(base_url: str, **kw: Any) -> client.Client:
    kw.setdefault("retries", 0)
    kw.setdefault("timeout", T)
    return client.Client(base_url, "k", **kw)


def timed_chat(
    c: client.Client, stream: bool = True, pause: float = 0.0
) -> tuple[list[StreamEvent], BaseException | None, float]:
    got: list[StreamEvent] = []
    start = time.monotonic()
    error: BaseException | None = None
    try:
        with c:
            for event in c.chat({"stream": stream}):
                got.append(event)
                time.sleep(pause)
    except Exception as exc:
        error = exc
    return got, error, time.monotonic() - start


def assert_timeout(error: BaseException | None, elapsed: float, waiting_for: str) -> None:
    assert isinstance(error, RequestTimeout), error
    assert error.exit_code == 8
    assert f"timed out after {T:g} s {waiting_for}" in str(error)
    assert T - 0.05 <= elapsed <= T + SLACK, elapsed


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listen queue is full: a connect there hangs (the SYN is dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    yield port
    for s in fillers:
        s.close()
    listener.close()


# --- (a) connecting -----------------------------------------------------------------------


def test_connect_timeout(unanswered_port: int) -> None:
    _, error, elapsed = timed_chat(make(f"http://127.0.0.1:{unanswered_port}/v1"))
    assert_timeout(error, elapsed, f"connecting to 127.0.0.1:{unanswered_port}")


def test_connect_timeout_is_retried_visibly(unanswered_port: int) -> None:
    calls: list[tuple[int, int, float, str]] = []
    slept: list[float] = []
    c = make(
        f"http://localhost:{unanswered_port}/v1",
        retries=2,
        sleep=slept.append,
        on_retry=lambda *a: calls.append(a),
    )
    _, error, elapsed = timed_chat(c)
    assert isinstance(error, RequestTimeout)
    assert f"connecting to localhost:{unanswered_port}" in str(error)
    reason = "timed out connecting"
    assert [(a, n, r) for a, n, _, r in calls] == [(1, 2, reason), (2, 2, reason)]
    assert [d for _, _, d, _ in calls] == slept
    assert elapsed <= 3 * T + SLACK


def test_connect_timeout_is_capped_at_15_seconds() -> None:
    deadline = limits.Deadline(600, "h:1")
    assert transport.timeouts(deadline, 15.0)["connect"] == 15.0
    assert transport.timeouts(limits.Deadline(2, "h:1"), 15.0)["connect"] == 2.0


def test_a_name_lookup_that_hangs_is_given_up() -> None:
    release = threading.Event()
    closed: list[bool] = []

    class Late(httpcore.NetworkStream):
        def close(self) -> None:
            closed.append(True)

    def slow_connect() -> httpcore.NetworkStream:
        release.wait(5)
        return Late()

    start = time.monotonic()
    with pytest.raises(httpcore.ConnectTimeout, match=r"looking up or connecting to slow\.test"):
        transport._within(0.3, slow_connect, "slow.test")
    assert time.monotonic() - start < 0.3 + SLACK
    release.set()
    for _ in range(100):
        if closed:
            break
        time.sleep(0.01)
    assert closed == [True]  # the connection that came too late is not leaked


def test_backend_bounds_the_lookup_of_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = transport._Backend()
    seen: list[float | None] = []

    def fake(host: str, port: int, timeout: float | None = None, *a: Any) -> Any:
        seen.append(timeout)
        time.sleep(2)
        raise httpcore.ConnectError("unreachable")

    monkeypatch.setattr(backend._inner, "connect_tcp", fake)
    budget = transport.timeouts(limits.Deadline(0.3, "slow.test:80"), 15.0)["connect"]
    start = time.monotonic()
    with pytest.raises(httpcore.ConnectTimeout):
        backend.connect_tcp("slow.test", 80, timeout=budget)
    assert time.monotonic() - start < 0.3 + SLACK and seen and seen[0] <= 0.3  # type: ignore[operator]


# --- (b) the response headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        fs.raw_http(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Slow: " + b"a" * 50,
                    interval=0.2),  # one byte every 0.2 s
        fs.raw_http(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", then_hang=30),
        fs.hang(30),
    ],
    ids=["trickled", "never-finished", "none"],
)  # fmt: skip
def test_headers_timeout(server: fs.FakeServer, reply: fs.Reply) -> None:
    server.add(reply)
    _, error, elapsed = timed_chat(make(server.base_url))
    assert_timeout(error, elapsed, f"waiting for the response headers from 127.0.0.1:{server.port}")


def test_headers_timeout_is_not_retried(server: fs.FakeServer) -> None:
    server.add(fs.hang(30), fs.stream_text("too late"))
    slept: list[float] = []
    _, error, _ = timed_chat(make(server.base_url, retries=3, sleep=slept.append))
    assert isinstance(error, RequestTimeout) and slept == []  # the request may be billed


# --- (c) the stream -----------------------------------------------------------------------


def test_keepalives_do_not_count_as_progress(server: fs.FakeServer) -> None:
    first = fs.chunk({"choices": [{"index": 0, "delta": {"content": "hello"}}]})
    server.add(fs.stream(fs.comment(), first, fs.every(fs.comment(), 0.1)))
    got, error, elapsed = timed_chat(make(server.base_url))
    assert got == [TextDelta("hello")]  # what came before stays
    assert_timeout(
        error,
        elapsed,
        f"waiting for the next event of the stream from 127.0.0.1:{server.port} "
        "(keep-alive comments do not count)",
    )


def test_a_trickled_event_does_not_count_as_progress(server: fs.FakeServer) -> None:
    event = b'data: {"choices":[{"index":0,"delta":{"content":"slow"}}]}\n\n'
    server.add(fs.stream(fs.trickle(event, 0.05)))  # 3 s for the event
    got, error, elapsed = timed_chat(make(server.base_url))
    assert got == []
    assert_timeout(error, elapsed, "waiting for the next event of the stream")


def test_each_complete_event_restarts_the_clock(server: fs.FakeServer) -> None:
    server.add(fs.stream_text(["a"] * 6, delay=0.5 * T, keepalive=False))  # 3 s in all
    got, error, elapsed = timed_chat(make(server.base_url))
    assert error is None and elapsed > 2 * T
    assert [e for e in got if isinstance(e, TextDelta)] == [TextDelta("a")] * 6


def test_time_spent_by_the_caller_is_not_counted(server: fs.FakeServer) -> None:
    # Apart enough to arrive in separate reads: the caller pauses 0.5 s after each.
    server.add(fs.stream_text(["a", "b", "c"], keepalive=False, delay=0.05))
    got, error, _ = timed_chat(make(server.base_url, timeout=0.3), pause=0.5)
    assert error is None
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "abc"


def test_stream_deadline_without_sockets() -> None:
    """The parser checks the deadline itself too (any transport, e.g. a MockTransport)."""

    def slow_pieces() -> Iterator[bytes]:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        while True:
            time.sleep(0.1)
            yield b": ping\n\n"

    deadline = limits.Deadline(0.5, "mock:1")
    deadline.start(limits.NEXT_EVENT)
    got: list[StreamEvent] = []
    start = time.monotonic()
    with pytest.raises(RequestTimeout, match="next event of the stream from mock:1"):
        got.extend(client.parse_sse_bytes(slow_pieces(), deadline))
    assert got == [TextDelta("x")] and time.monotonic() - start < 0.5 + SLACK

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=slow_pieces())  # fmt: skip

    c = client.Client("http://mock/v1", "k", timeout=0.5, transport=httpx.MockTransport(handler))
    got, error, _ = timed_chat(c)
    assert got == [TextDelta("x")] and isinstance(error, RequestTimeout)


# --- bodies -------------------------------------------------------------------------------


def test_non_streamed_body_must_arrive_within_the_timeout(server: fs.FakeServer) -> None:
    server.add(fs.stream(fs.trickle(b'{"choices": []}' + b" " * 100, 0.05),
                         content_type="application/json"))  # fmt: skip
    _, error, elapsed = timed_chat(make(server.base_url), stream=False)
    assert_timeout(error, elapsed, f"reading the response body from 127.0.0.1:{server.port}")


def test_a_trickled_error_body_does_not_hide_the_status(server: fs.FakeServer) -> None:
    server.add(fs.stream(fs.trickle(b"Service overloaded, please wait" * 10, 0.05), status=503,
                         content_type="text/plain"))  # fmt: skip
    _, error, elapsed = timed_chat(make(server.base_url))
    assert isinstance(error, APIError) and error.status == 503
    assert "HTTP 503: Service Unavailable: Service overloaded" in str(error)
    assert elapsed <= T + SLACK


def test_get_json_is_bounded_too(server: fs.FakeServer) -> None:
    server.add(fs.hang(30), path="/api/v1/models")
    start = time.monotonic()
    with make(server.base_url) as c, pytest.raises(RequestTimeout, match="response headers"):
        c.get_json("models")
    assert time.monotonic() - start <= T + SLACK


def test_sending_a_body_the_server_never_reads_is_bounded() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # the connection is made by the kernel, and never read
    port = listener.getsockname()[1]
    try:
        c = make(f"http://127.0.0.1:{port}/v1")
        start = time.monotonic()
        with c, pytest.raises(RequestTimeout) as info:
            list(c.chat({"stream": True, "pad": "x" * (24 << 20)}))
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    assert f"timed out after {T:g} s sending the request to 127.0.0.1:{port}" in str(info.value)
    assert elapsed <= T + SLACK
