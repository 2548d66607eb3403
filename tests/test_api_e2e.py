"""End to end: the installed ``llmost ask`` against a hostile fake server, as a subprocess.

Memory is the peak RSS of the llmost process itself, time is wall-clock from start to exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Result, Runner, llmost_executable

MiB = 1 << 20
RSS_LIMIT = 200 * MiB

# A small, fresh parent for the measured command. The peak RSS the kernel reports for a child
# starts from its parent's size at fork (and is kept across exec), so measuring a child of the
# big pytest process directly would count pytest. This wrapper is ~10 MB; it runs the command
# with its own stdin/stdout/stderr, writes the child's ru_maxrss (KiB) to the file named first
# and exits with the child's status.
_WRAPPER = """
import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as fh:
    fh.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class Measured:
    rc: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes
    elapsed: float  # seconds

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (
            f"Measured(rc={self.rc}, rss={self.peak_rss / MiB:.0f} MiB, "
            f"elapsed={self.elapsed:.2f} s, stdout={self.stdout[:300]!r}, "
            f"stderr={self.stderr[-1500:]!r})"
        )


def run_measured(
    runner: Runner,
    *args: str,
    input: bytes = b"",
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Measured:
    """Run ``llmost ARGS`` like the ``llmost`` fixture does; measure its peak RSS and time."""
    if not sys.platform.startswith("linux"):  # pragma: no cover
        pytest.skip("ru_maxrss is in KiB on Linux; other systems are not measured")
    full_env = dict(os.environ) | runner.env | (env or {})
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = os.path.join(tmp, "rss")
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _WRAPPER, rss_file, llmost_executable(), *args],
            input=input,
            capture_output=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        elapsed = time.monotonic() - start
        with open(rss_file) as fh:
            peak = int(fh.read()) * 1024
    return Measured(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        peak,
        elapsed,
    )


def assert_one_error_line(m: Measured | Result, rc: int) -> None:
    assert m.rc == rc, m
    errors = [line for line in m.stderr.splitlines() if line.startswith("llmost: error:")]
    assert len(errors) == 1 and "Traceback" not in m.stderr, m
    assert TEST_KEY not in m.stderr + m.stdout


def test_the_helper_measures_the_child(llmost: Runner) -> None:
    m = run_measured(llmost, "--version")
    assert m.rc == 0 and m.stdout.startswith("llmost ")
    assert 5 * MiB < m.peak_rss < 60 * MiB, m


# --- memory: bombs and huge bodies (exit 7, peak RSS under 200 MiB) -----------------------

ENCODING = {"gzip": "gzip", "deflate": "deflate", "raw-deflate": "deflate"}


# one encoding end to end (the memory of a real process); every encoding: test_api_limits.py
@pytest.fixture(params=["gzip"])
def bomb_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def test_bomb_json_body(llmost: Runner, server: fs.FakeServer, bomb_kind: str) -> None:
    headers = {"Content-Encoding": ENCODING[bomb_kind]}
    server.add(fs.raw_response(200, fs.bomb(bomb_kind), content_type="application/json",
                               headers=headers))  # fmt: skip
    m = run_measured(llmost, "ask", "--no-stream", "hi")
    assert_one_error_line(m, 7)
    assert "decompression bomb" in m.stderr and m.peak_rss < RSS_LIMIT, m


def test_bomb_stream(llmost: Runner, server: fs.FakeServer, bomb_kind: str) -> None:
    unit = b'data: {"choices":[{"index":0,"delta":{"content":"spam "}}]}\n\n'
    bomb = fs.bomb(bomb_kind, unit=unit)
    server.add(fs.stream(fs.raw(bomb), headers={"Content-Encoding": ENCODING[bomb_kind]}))
    m = run_measured(llmost, "ask", "hi")
    assert_one_error_line(m, 7)
    assert m.stdout.startswith("spam spam") and m.peak_rss < RSS_LIMIT, m


def test_bomb_stream_without_line_breaks(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream(fs.raw(fs.bomb("gzip")), headers={"Content-Encoding": "gzip"}))
    m = run_measured(llmost, "ask", "hi")
    assert_one_error_line(m, 7)
    assert m.peak_rss < RSS_LIMIT, m


def test_bomb_error_body(llmost: Runner, server: fs.FakeServer) -> None:
    headers = {"Content-Encoding": "gzip"}
    server.add(fs.raw_response(500, fs.bomb("gzip"), content_type="application/json",
                               headers=headers))  # fmt: skip
    m = run_measured(llmost, "ask", "--retries", "0", "hi")
    assert_one_error_line(m, 7)
    assert "HTTP 500" in m.stderr and m.peak_rss < RSS_LIMIT, m


def test_huge_json_body(llmost: Runner, server: fs.FakeServer) -> None:
    big = b'{"choices": [], "pad": "' + b"x" * (40 * MiB) + b'"}'
    server.add(fs.stream(fs.raw(big), content_type="application/json", fragment=MiB))
    m = run_measured(llmost, "ask", "--no-stream", "hi")
    assert_one_error_line(m, 7)
    assert "larger than 32 MiB" in m.stderr and m.peak_rss < RSS_LIMIT, m


def test_huge_sse_event(llmost: Runner, server: fs.FakeServer) -> None:
    first = fs.chunk({"choices": [{"index": 0, "delta": {"content": "kept "}}]})
    server.add(fs.stream(first, fs.raw(b"data: " + b"a" * (64 * MiB)), fragment=MiB))
    m = run_measured(llmost, "ask", "hi")
    assert_one_error_line(m, 7)
    assert m.stdout.startswith("kept") and "longer than 4 MiB" in m.stderr, m
    assert m.peak_rss < RSS_LIMIT, m


def test_bomb_model_list(llmost: Runner, server: fs.FakeServer) -> None:
    reply = fs.raw_response(200, fs.bomb("gzip", unit=b" "), content_type="application/json",
                            headers={"Content-Encoding": "gzip"})  # fmt: skip
    server.add(reply, path="/api/v1/models")
    m = run_measured(llmost, "models", "--refresh")
    assert_one_error_line(m, 7)
    assert m.peak_rss < RSS_LIMIT, m


# --- hostile JSON (exit 7, the partial answer kept) -------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"choices":[],"usage":{"total_tokens":' + b"9" * 5000 + b"}}",
        b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":'
        b'{"name":"f","arguments":"' + b"[" * 5000 + b'"}}]}}]}',
    ],
    ids=["deep", "5000-digits", "deep-tool-arguments"],
)
def test_hostile_event(llmost: Runner, server: fs.FakeServer, event: bytes) -> None:
    first = fs.chunk({"choices": [{"index": 0, "delta": {"content": "partial"}}]})
    server.add(fs.stream(first, fs.raw(b"data: " + event + b"\n\n"), fs.done()))
    m = llmost("ask", "hi")  # in-process: what is refused matters here, not the memory
    assert_one_error_line(m, 7)
    assert m.stdout.startswith("partial"), m


def test_lone_surrogates_and_nan_are_sanitised(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(
        fs.stream(
            fs.raw(b'data: {"id":"g","choices":[{"index":0,"delta":{"content":"a\\ud800b"}}]}\n\n'),
            fs.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            fs.raw(b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,'
                   b'"total_tokens":3,"cost":NaN}}\n\n'),
            fs.done(),
        )
    )  # fmt: skip
    m = llmost("ask", "-o", "json", "hi")
    assert m.rc == 0, m

    def strict(name: str) -> None:
        raise AssertionError(f"{name} in the output")

    out = json.loads(m.stdout, parse_constant=strict)
    assert out["content"] == "a\ufffdb"


# --- time: --timeout bounds the wait of the real process (exit 8) -------------------------
# Every way a server can stall is played in-process by test_api_timeouts.py; here one stall
# before the headers and one inside the stream, end to end.


@pytest.mark.parametrize(
    ("reply", "waiting_for"),
    [
        (fs.raw_http(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Slow: " + b"a" * 60,
                     interval=0.4), "the response headers"),
        (fs.stream(fs.comment(), fs.every(fs.comment(), 0.3)), "the next event of the stream"),
    ],
    ids=["trickled-headers", "keep-alives"],
)  # fmt: skip
def test_timeout_bounds_the_wait(
    llmost: Runner, server: fs.FakeServer, reply: fs.Reply, waiting_for: str
) -> None:
    # What the same command takes with a prompt answer: start-up and exit on this machine.
    server.add(fs.stream_text("quick"))
    baseline = run_measured(llmost, "ask", "--timeout", "1", "hi")
    assert baseline.rc == 0, baseline
    server.add(reply)
    m = run_measured(llmost, "ask", "--timeout", "1", "hi", timeout=30)
    assert_one_error_line(m, 8)
    assert f"timed out after 1 s waiting for {waiting_for} from 127.0.0.1:{server.port}" in m.stderr
    # Unbounded, these replies would hold the client for 24 s or more; the margin is for a busy
    # machine.
    assert m.elapsed - baseline.elapsed < 1 + 8, (m, baseline.elapsed)


# --- the key ------------------------------------------------------------------------------


def test_plain_http_ignores_proxy_variables(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("direct"))
    with fs.RecordingProxy() as proxy:
        names = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"]
        env = dict.fromkeys([*names, "all_proxy"], proxy.url)
        m = llmost("ask", "hi", env=env)
    assert (m.rc, m.stdout) == (0, "direct\n"), m
    assert proxy.received() == b""


def test_debug_output_never_shows_the_key(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.error(503, f"bad key {TEST_KEY}", retry_after=0), fs.error(401, TEST_KEY))
    m = llmost("--debug", "ask", "hi")
    assert m.rc == 4, m
    assert "Bearer ***" in m.stderr and TEST_KEY not in m.stderr + m.stdout
