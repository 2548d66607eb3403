"""Daily-use options of ask: reasoning, code-block extraction."""

from __future__ import annotations

import io
import os

import pytest

from llmost_cli.env import Environment
from llmost_cli.main import run
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner, run_in_process


def served(server: fs.FakeServer) -> dict[str, str]:
    return dict(os.environ, LLMOST_BASE_URL=server.base_url, LLMOST_API_KEY=TEST_KEY)


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
    args = ["ask", "--no-stream", *([flag] if flag else []), "q"]
    r = run_in_process(args, b"", served(server), stderr_tty=True)
    assert (r.rc, r.stdout) == (0, "42\n")  # stdout: the answer only
    assert ("thinking hard" in r.stderr) == (flag != "--hide-reasoning")


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


def test_model_command_refuses_an_id_missing_from_the_cached_list(
    llmost: Runner, server: fs.FakeServer
) -> None:
    from llmost_cli.core import models

    models.write_cache(server.base_url, fs.DEFAULT_MODELS)
    r = llmost("chat", input="/model openai/gpt-4p\n/model openai/gpt-4o\nhi\n")
    assert "'openai/gpt-4p' is not in the model list" in r.stderr
    assert "did you mean openai/gpt-4o" in r.stderr
    assert server.chat_requests()[-1].json["model"] == "openai/gpt-4o"


def test_edit_composes_the_message_in_the_editor(
    llmost: Runner, server: fs.FakeServer, tmp_path: pytest.TempPathFactory
) -> None:
    import sys
    from pathlib import Path

    editor = Path(str(tmp_path)) / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'w').write('written\\nin the editor')\n")
    r = llmost("chat", input="/edit\n", env={"VISUAL": f"{sys.executable} {editor}"})
    assert r.rc == 0, r
    assert server.chat_requests()[-1].json["messages"][-1]["content"] == "written\nin the editor"


def test_copy_needs_a_terminal_and_an_answer(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("chat", input="/copy\nhello\n/copy\n")
    assert "/copy: there is no answer yet" in r.stderr
    assert "/copy needs a terminal" in r.stderr
    assert "\x1b]52" not in r.stdout + r.stderr


def test_copy_writes_osc52_to_the_terminal(server: fs.FakeServer) -> None:
    import base64

    server.add(fs.stream_text("Use:\n\n```sh\nls -la\n```\n"))
    err = io.StringIO()
    env = Environment(
        stdin=io.BytesIO(b"q\n/copy 1\n"),
        stdout=io.BytesIO(),
        stderr=err,
        stderr_isatty=True,
        environ=dict(os.environ, LLMOST_BASE_URL=server.base_url, LLMOST_API_KEY="k-12345678"),
    )
    assert run(["chat"], env) == 0
    copied = base64.b64encode(b"ls -la\n").decode()
    assert "\x1b]52;c;" + copied + "\x07" in err.getvalue()


def test_history_file_that_cannot_be_written_warns_once() -> None:
    from llmost_cli.ui.repl import _KeptHistory

    warnings: list[str] = []
    history = _KeptHistory("/dev/full", warnings.append)
    history.store_string("one")
    history.store_string("two")
    assert len(warnings) == 1 and "kept in memory only" in warnings[0]
