"""Daily-use options of ask: reasoning, code-block extraction."""

from __future__ import annotations

import io
import os

import pytest

from llmost_cli.env import Environment
from llmost_cli.main import run
from tests import fakeserver as fs
from tests.conftest import Runner

ANSWER = (
    "Here you go:\n\n```python\nprint('one')\n```\n\nand a second:\n\n"
    "~~~~sh\necho two\n```\nstill two\n~~~~\n"
)


def test_reasoning_effort_is_sent_and_checked(llmost: Runner) -> None:
    r = llmost("ask", "--reasoning-effort", "high", "--dry-run", "q")
    assert r.rc == 0 and r.json["reasoning"] == {"effort": "high"}
    bad = llmost("ask", "--reasoning-effort", "extreme", "q")
    assert bad.rc == 2
    assert bad.stderr.count("\n") == 1
    assert "--reasoning-effort must be low, medium or high, got 'extreme'" in bad.stderr


def test_json_output_carries_the_reasoning(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.completion("42", reasoning="I counted."))
    r = llmost("ask", "--no-stream", "-o", "json", "q")
    assert r.rc == 0 and r.json["reasoning"] == "I counted." and r.json["content"] == "42"


@pytest.mark.parametrize("flag", [None, "--show-reasoning", "--hide-reasoning"])
def test_reasoning_on_a_terminal_stderr_unless_hidden(
    server: fs.FakeServer, flag: str | None
) -> None:
    server.add(fs.completion("42", reasoning="thinking hard"))
    err, out = io.StringIO(), io.BytesIO()
    env = Environment(
        stdin=io.BytesIO(b""),
        stdout=out,
        stderr=err,
        stderr_isatty=True,
        environ=dict(os.environ, LLMOST_BASE_URL=server.base_url, LLMOST_API_KEY="k-12345678"),
    )
    args = ["ask", "--no-stream", *([flag] if flag else []), "q"]
    assert run(args, env) == 0
    assert out.getvalue() == b"42\n"  # stdout: the answer only
    assert ("thinking hard" in err.getvalue()) == (flag != "--hide-reasoning")


def test_extract_prints_only_the_first_code_block(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text(ANSWER))
    r = llmost("ask", "-x", "a script please")
    assert (r.rc, r.stdout) == (0, "print('one')\n")


def test_block_n_picks_the_nth(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text(ANSWER))
    r = llmost("ask", "--block", "2", "q")
    assert (r.rc, r.stdout) == (0, "echo two\n```\nstill two\n")


def test_extract_without_a_code_block_is_exit_7(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("no code here"))
    r = llmost("ask", "-x", "q")
    assert r.rc == 7 and r.stdout == ""
    assert "no code block 1 in the answer (it has none)" in r.stderr
