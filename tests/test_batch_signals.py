"""``llmost batch`` as a real process: signals, kill -9 and --resume, a closed pipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import fakeserver as fs
from tests.conftest import TEST_KEY, llmost_executable

N = 40


def write_input(tmp_path: Path, n: int = N) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "prompt": f"q{i}"}) + "\n" for i in range(n))
    )
    return path


def start(server: fs.FakeServer, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    return subprocess.Popen(
        [llmost_executable(), "batch", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def wait_lines(path: Path, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_bytes().count(b"\n") >= count):
        assert time.monotonic() < deadline, f"fewer than {count} lines in {path}"
        time.sleep(0.02)


def settle(server: fs.FakeServer) -> None:
    time.sleep(0.3)
    deadline = time.monotonic() + 10
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)


def complete_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "a torn last line"
    lines = [json.loads(line) for line in data.splitlines()]
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), "duplicate ids"
    return lines


@pytest.mark.parametrize(("sig", "rc"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_batch_with_a_summary(
    server: fs.FakeServer, tmp_path: Path, sig: signal.Signals, rc: int
) -> None:
    server.latency = 0.3
    out = tmp_path / "out.jsonl"
    proc = start(server, str(write_input(tmp_path)), "-o", str(out), "--concurrency", "4")
    wait_lines(out, 4)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    settle(server)
    stderr = err.decode()
    assert proc.returncode == rc, stderr
    assert "Traceback" not in stderr
    why = "interrupted" if sig == signal.SIGINT else "terminated"
    assert f"not written ({why}; --resume runs them)" in stderr
    written = complete_lines(out)
    assert 4 <= len(written) < N
    assert all(line["error"] is None for line in written)
    # stopped at once: no new request after the signal, the ones in flight were cancelled
    assert len(server.chat_requests()) <= len(written) + 4


def test_ordered_batch_interrupted_writes_what_finished(
    server: fs.FakeServer, tmp_path: Path
) -> None:
    server.latency = 0.2
    out = tmp_path / "out.jsonl"
    proc = start(server, str(write_input(tmp_path)), "-o", str(out), "--ordered")
    wait_lines(out, 8)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    ids = [int(line["id"][1:]) for line in complete_lines(out)]
    assert ids == sorted(ids) and ids[:8] == list(range(8))


def test_kill_9_then_resume_loses_only_lines_in_flight(
    server: fs.FakeServer, tmp_path: Path
) -> None:
    server.latency = 0.15
    out = tmp_path / "out.jsonl"
    source = write_input(tmp_path)
    proc = start(server, str(source), "-o", str(out), "--concurrency", "6")
    wait_lines(out, 10)
    proc.kill()
    proc.communicate(timeout=10)
    before = complete_lines(out)  # no torn line
    settle(server)  # requests already on the wire are recorded before counting
    sent_before = len(server.chat_requests())
    assert len(before) >= 10
    proc = start(server, str(source), "-o", str(out), "--concurrency", "6", "--resume")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    after = complete_lines(out)
    assert sorted(int(line["id"][1:]) for line in after) == list(range(N))
    assert after[: len(before)] == before  # appended, nothing rewritten
    # nothing lost but the lines in flight at the kill (at most --concurrency) re-sent
    in_flight_at_kill = sent_before - len(before)
    assert 0 <= in_flight_at_kill <= 6
    assert len(server.chat_requests()) == sent_before + N - len(before)


def test_reader_closing_the_pipe_ends_the_batch_quietly(
    server: fs.FakeServer, tmp_path: Path
) -> None:
    server.latency = 0.02
    exe = llmost_executable()
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    proc = subprocess.run(
        f"'{exe}' batch '{write_input(tmp_path, 200)}' | head -n 2; echo \"rc=${{PIPESTATUS[0]}}\"",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    out = proc.stdout.decode().splitlines()
    assert len(out) == 3 and out[-1] == "rc=0", proc
    assert all(json.loads(line)["error"] is None for line in out[:2])
    assert b"Traceback" not in proc.stderr
    assert len(server.chat_requests()) < 200


def test_progress_bar_on_a_terminal_stderr(server: fs.FakeServer, tmp_path: Path) -> None:
    import pty

    server.latency = 0.05
    out = tmp_path / "out.jsonl"
    master, slave = pty.openpty()
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    env |= {"TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [llmost_executable(), "batch", str(write_input(tmp_path, 60)), "-o", str(out),
         "--concurrency", "4"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env,
    )  # fmt: skip
    os.close(slave)
    shown = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(master)
    assert proc.wait(10) == 0
    text = shown.decode("utf-8", "replace")
    assert "lines/s" in text and "/60" in text  # the bar: done/total and the rate
    assert "batch: 60 done, 0 failed" in text  # the summary stays
    assert len(complete_lines(out)) == 60
