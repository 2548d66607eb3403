"""Signals and pipes: partial answers are kept and stored, exit codes are the documented ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmost_cli import paths
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, llmost_executable, write_config

SLOW = [f"word{i} " for i in range(200)]


def start(server: fs.FakeServer, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    return subprocess.Popen(
        [llmost_executable(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def read_until(proc: subprocess.Popen[bytes], needle: bytes, timeout: float = 10) -> bytes:
    assert proc.stdout is not None
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        assert time.monotonic() < deadline, f"never saw {needle!r}; got {got!r}"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"stdout closed early; got {got!r}"
        got += chunk
    return got


def last_stored_reply() -> tuple[str, bool]:
    with Store(paths.database_file()) as store:
        conv = store.latest()
        assert conv is not None
        msg = store.messages(conv.id)[-1]
    assert msg.role == "assistant" and isinstance(msg.content, str)
    return msg.content, msg.partial


@pytest.mark.parametrize(("sig", "rc"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_stream_keeps_and_stores_partial(
    server: fs.FakeServer, sig: signal.Signals, rc: int
) -> None:
    server.add(fs.stream_text(SLOW, delay=0.05))
    proc = start(server, "ask", "hi")
    head = read_until(proc, b"word3 ")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    stdout = (head + out).decode()
    assert proc.returncode == rc, err
    assert stdout.startswith("word0 word1 word2 word3 ")
    assert stdout.endswith("\n") and "word199" not in stdout
    assert b"Traceback" not in err
    content, partial = last_stored_reply()
    assert partial and content == stdout.rstrip("\n")
    # the server saw the client go away instead of streaming to the end
    assert server.chat_requests()[-1].client_gone or len(content) < 200 * 6


def test_reader_closing_pipe_exits_quietly(server: fs.FakeServer) -> None:
    server.add(fs.stream_text(SLOW * 50))
    exe = llmost_executable()
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    proc = subprocess.run(
        f"'{exe}' ask hi | head -c 10; echo \"rc=${{PIPESTATUS[0]}}\"",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.stdout.decode() == "word0 wordrc=0\n"
    assert proc.stderr == b""
    content, partial = last_stored_reply()
    assert partial and content.startswith("word0 word")


def test_sighup_stores_the_question_and_the_partial_answer(server: fs.FakeServer) -> None:
    server.add(fs.stream_text(SLOW, delay=0.05))
    proc = start(server, "ask", "hi")
    read_until(proc, b"word3 ")
    proc.send_signal(signal.SIGHUP)  # the terminal closed
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 129, err
    assert b"Traceback" not in err
    content, partial = last_stored_reply()
    assert partial and content.startswith("word0 word1 word2 word3 ")


def _run_shell(server: fs.FakeServer, command: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    return subprocess.run(
        command.replace("LLMOST", f"'{llmost_executable()}'"),
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("redirect", ["> /dev/full", ">&-"], ids=["disk-full", "closed"])
def test_unwritable_stdout_stores_the_answer_and_says_so(
    server: fs.FakeServer, redirect: str
) -> None:
    server.add(fs.stream_text("an answer nobody can read"))
    proc = _run_shell(server, f"LLMOST ask hi {redirect}; echo rc=$? >&2")
    err = proc.stderr.decode()
    assert "rc=74" in err, err
    assert "cannot write the answer to standard output" in err and "Traceback" not in err
    assert err.count("\n") == 2  # one line, then our rc line
    content, _ = last_stored_reply()
    assert content == "an answer nobody can read"


def test_ctrl_c_during_a_tool_says_interrupted(server: fs.FakeServer, isolated_env: Path) -> None:
    started = isolated_env / "started"
    script = isolated_env / "slow.py"
    script.write_text(f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(30)\n")
    write_config(
        isolated_env,
        f"[tools.slow]\ncommand = [{json.dumps(sys.executable)}, {json.dumps(str(script))}]\n",
    )
    server.add(fs.stream_tool_calls([("c1", "slow", "{}")]))
    proc = start(server, "ask", "--tool", "slow", "--yes", "q")
    deadline = time.monotonic() + 30
    while not started.exists():  # the tool is running: now press Ctrl-C
        assert time.monotonic() < deadline and proc.poll() is None, "the tool never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert b"interrupted" in err and b"Traceback" not in err, (proc.returncode, err)
    with Store(paths.database_file()) as store:
        conv = store.latest()
        assert conv is not None
        last = store.messages(conv.id)[-1]
    assert last.role == "tool" and "cancelled" in str(last.content)


def test_non_utf8_argument_is_replaced_with_a_warning(server: fs.FakeServer) -> None:
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    proc = subprocess.run(
        [llmost_executable().encode(), b"ask", b"caf\xe9"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"not valid UTF-8" in proc.stderr
    assert server.chat_requests()[-1].json["messages"][-1]["content"] == "caf\ufffd"
