"""``llmost ask`` on a terminal: live markdown, spinner, and a clean terminal afterwards.

The child runs in a real pseudo-terminal (pexpect) where only a real one proves it: the
terminal found and measured, signals, resizes, stdout piped beside a terminal. The rest runs
in this process with a terminal's streams (``in_terminal``). What was written is replayed
through the ``pyte`` terminal emulator, so the assertions are about what a user would see.
"""

from __future__ import annotations

import io
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pexpect
import pyte
import pytest
from rich.console import Console

from llmost_cli import paths
from llmost_cli.store.store import Store
from llmost_cli.ui.mdrender import print_markdown
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, llmost_executable, run_in_process, untraced, write_config
from tests.terminal import ScrollbackScreen, all_lines, screen_lines, xterm_resize

COLS, ROWS = 100, 40
ANSWER = (
    "# Plan\n\nFirst a paragraph with **bold** and `code`.\n\n"
    "1. one\n2. two\n3. three\n\n"
    "```python\ndef f(x):\n    return x * 2\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "> a quote\n\nПоследняя строка, по-русски.\n"
)
HIDE, SHOW = "\x1b[?25l", "\x1b[?25h"


def terminal_env(server: fs.FakeServer, env: dict[str, str] | None) -> dict[str, str]:
    """The variables of ``llmost`` on a COLS x ROWS colour terminal, with ``env`` on top."""
    full = dict(os.environ) | {
        "LLMOST_BASE_URL": server.base_url,
        "LLMOST_API_KEY": TEST_KEY,
        "TERM": "xterm-256color",
        "COLUMNS": str(COLS),
        "LINES": str(ROWS),
    }
    full.pop("NO_COLOR", None)
    return full | (env or {})


def spawn(server: fs.FakeServer, *args: str, env: dict[str, str] | None = None) -> Any:
    return pexpect.spawn(
        llmost_executable(),
        ["ask", *args],
        env=terminal_env(server, env),
        dimensions=(ROWS, COLS),
        encoding="utf-8",
        timeout=15,
    )


def in_terminal(
    server: fs.FakeServer, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``llmost ask ARGS`` in this process, stdout and stderr a terminal of COLS x ROWS."""
    environ = terminal_env(server, env)
    r = run_in_process(["ask", *args], b"", environ, stdout_tty=True, stderr_tty=True)
    return r.rc, r.stdout, r.stderr


def finish(child: Any) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    data = child.before
    child.close()
    status = child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus
    return status, data


def screen(data: str) -> tuple[list[str], pyte.Screen]:
    # the pty already turned "\n" into "\r\n"
    return screen_lines(data, COLS, ROWS, newline_mode=False)


def whole(text: str) -> list[str]:
    console = Console(file=io.StringIO(), force_terminal=True, width=COLS, color_system="truecolor")
    print_markdown(console, text)  # what the answer looks like rendered whole
    out = console.file.getvalue()  # type: ignore[attr-defined]
    lines, _ = screen(out.replace("\n", "\r\n"))
    return lines


@pytest.fixture
def children() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for child in started:
        if child.isalive():
            child.terminate(force=True)


@pytest.mark.pty
def test_markdown_streams_to_the_same_screen_as_a_whole_render(
    server: fs.FakeServer, children: list[Any]
) -> None:
    server.add(fs.stream_text(fs.split_text(ANSWER, 3), delay=0.002))
    child = spawn(server, "plan please")
    children.append(child)
    rc, data = finish(child)
    assert rc == 0
    lines, term = screen(data)
    assert lines == whole(ANSWER)
    assert not term.cursor.hidden and data.rfind(SHOW) > data.rfind(HIDE)
    assert "\x1b[" in data  # styled: it was rendered, not printed raw


@pytest.mark.pty
def test_spinner_until_the_first_token_leaves_no_trace(
    server: fs.FakeServer, children: list[Any]
) -> None:
    slow = fs.stream_text("plain answer")
    assert isinstance(slow, fs._StreamReply)
    server.add(fs.stream(fs.pause(0.6), *slow.parts))
    child = spawn(server, "--no-markdown", "hi")
    children.append(child)
    rc, data = finish(child)
    assert rc == 0
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏](\x1b\[0m)? waiting for the model", data)
    lines, term = screen(data)
    assert lines == ["plain answer"]
    assert not term.cursor.hidden


@pytest.mark.parametrize(
    "how", ["--no-markdown", "config markdown = false", "NO_COLOR"], ids=["flag", "config", "env"]
)
def test_markdown_off_or_no_color(server: fs.FakeServer, isolated_env: Any, how: str) -> None:
    server.add(fs.stream_text(fs.split_text(ANSWER, 5)))
    args, env = ["hi"], {}
    if how == "--no-markdown":
        args.insert(0, how)
    elif how.startswith("config"):
        write_config(isolated_env, "[profiles.default]\nmarkdown = false\n")
    else:
        env["NO_COLOR"] = "1"
    rc, data, _ = in_terminal(server, *args, env=env)
    assert rc == 0
    if how == "NO_COLOR":
        colours = re.findall(r"\x1b\[([0-9;]*)m", data)
        assert not [c for c in colours if re.search(r"(^|;)(3[0-9]|4[0-9]|9[0-7]|38|48)(;|$)", c)]
        assert "# Plan" not in data  # still rendered as markdown
    else:
        assert data == ANSWER  # the raw text, byte for byte


@pytest.mark.pty
def test_ctrl_c_mid_render_leaves_a_clean_terminal_and_stores_the_partial(
    server: fs.FakeServer, children: list[Any]
) -> None:
    pieces = fs.split_text(ANSWER * 20, 4)
    server.add(fs.stream_text(pieces, delay=0.01))
    child = spawn(server, "long answer")
    children.append(child)
    child.expect("Plan")
    time.sleep(0.5)
    child.sendintr()
    rc, data = finish(child)
    assert rc == 130
    _, term = screen(data)
    assert not term.cursor.hidden and data.rfind(SHOW) > data.rfind(HIDE)
    assert "llmost: interrupted" in data
    with Store(paths.database_file()) as store:
        conv = store.latest()
        assert conv is not None
        reply = store.messages(conv.id)[-1]
    assert reply.partial and isinstance(reply.content, str)
    assert ANSWER.startswith(reply.content[:40]) and len(reply.content) < len(ANSWER * 20)


@pytest.mark.pty
def test_resize_during_streaming(server: fs.FakeServer, children: list[Any]) -> None:
    text = ANSWER * 6
    server.add(fs.stream_text(fs.split_text(text, 4), delay=0.004))
    child = spawn(server, "resize me")
    children.append(child)
    child.expect("Plan")
    child.setwinsize(30, 70)  # SIGWINCH mid-stream
    child.kill(signal.SIGWINCH)
    rc, data = finish(child)
    assert rc == 0
    _, term = screen(data)
    assert not term.cursor.hidden
    assert "Последняя строка, по-русски." in data


# --- the server never drives the terminal; answers read well ---------------------------------

HOSTILE = (
    "A\x1b]52;c;cm0gLXJmIH4=\x07B\x1b]0;pwned\x07C\x1b[2J\x1b[31mD\x9b1mE\u202eF\x08G"
    "\x1b]8;;https://evil.example\x1b\\H"
)
SHOWN = "A␛]52;c;cm0gLXJmIH4=␇B␛]0;pwned␇C␛[2J␛[31mD\\x9b1mE\\u202eF␈G␛]8;;https://evil.example␛\\H"
HOSTILE_ANSWER = f"Intro {HOSTILE}\n\n```\n{HOSTILE}\n```\n\nEnd `{HOSTILE}`.\n"


def no_trailing_spaces(data: str) -> None:
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", data.replace("\x1b[1A", "\n"))
    assert [line for line in plain.replace("\r", "").split("\n") if line.endswith(" ")] == []


@pytest.mark.parametrize("markdown", [True, False], ids=["markdown", "--no-markdown"])
def test_a_hostile_answer_is_shown_escaped_on_the_terminal(
    server: fs.FakeServer, markdown: bool
) -> None:
    server.add(
        fs.stream_text(fs.split_text(HOSTILE_ANSWER, 3), reasoning=[f"think {HOSTILE}", "\n"])
    )
    rc, out, err = in_terminal(server, *([] if markdown else ["--no-markdown"]), "hi")
    assert rc == 0
    for data in (out, err):
        assert "\x1b]" not in data and "\x9b" not in data and "\u202e" not in data
        assert "\x1b[2J" not in data and "\x1b[31m" not in data
    lines, term = screen_lines(out, COLS, ROWS, newline_mode=True)
    assert term.title == ""
    assert "\n".join(lines).count(SHOWN) == 3  # paragraph, code block, inline code
    lines, _ = screen_lines(err, COLS, ROWS, newline_mode=True)
    assert "\n".join(lines).count(SHOWN) == 1  # the reasoning


def test_a_piped_answer_stays_byte_exact(llmost: Any, server: fs.FakeServer) -> None:
    server.add(fs.stream_text(fs.split_text(HOSTILE_ANSWER + "\r", 3)))
    r = llmost("ask", "hi")
    assert r.rc == 0
    assert r.stdout_bytes == (HOSTILE_ANSWER + "\r\n").encode()


def test_links_line_breaks_and_no_trailing_spaces(server: fs.FakeServer) -> None:
    answer = (
        "Roses are red,\nviolets are blue.\n\n"
        "See [the docs](https://docs.example/a) or <https://docs.example/b>.\n\n"
        "```python\nx = 1\n```\n"
    )
    server.add(fs.stream_text(fs.split_text(answer, 2), delay=0.002))
    rc, data, _ = in_terminal(server, "hi")
    assert rc == 0
    lines, _ = screen_lines(data, COLS, ROWS, newline_mode=True)
    assert lines[:2] == ["Roses are red,", "violets are blue."]
    assert "See the docs (https://docs.example/a) or https://docs.example/b." in lines
    assert "\x1b]8;" not in data
    no_trailing_spaces(data)


@pytest.mark.pty
def test_spinner_on_stderr_when_stdout_is_piped(
    server: fs.FakeServer, children: list[Any], tmp_path: Any
) -> None:
    slow = fs.stream_text("plain answer")
    assert isinstance(slow, fs._StreamReply)
    server.add(fs.stream(fs.pause(0.6), *slow.parts))
    out = tmp_path / "answer.txt"
    child = pexpect.spawn(
        "/bin/sh",
        ["-c", 'exec "$0" ask hi > "$1"', llmost_executable(), str(out)],
        env=dict(os.environ)
        | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY, "TERM": "xterm"},
        dimensions=(ROWS, COLS),
        encoding="utf-8",
        timeout=15,
    )
    children.append(child)
    rc, data = finish(child)
    assert rc == 0
    assert out.read_text() == "plain answer\n"
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏](\x1b\[0m)? waiting for the model", data)
    lines, term = screen(data)
    assert lines == []  # no trace on the terminal
    assert not term.cursor.hidden


@pytest.mark.pty
def test_resize_during_a_tall_code_block_leaves_no_copies(
    server: fs.FakeServer, children: list[Any]
) -> None:
    code = "".join(f"value_{n:03} = compute({n})\n" for n in range(160))
    answer = "Intro.\n\n```python\n" + code + "```\n\nDone.\n"
    server.add(fs.stream_text(fs.split_text(answer, 12), delay=0.003))
    child = spawn(server, "resize me")
    children.append(child)
    child.expect("value_060")
    before = child.before + child.after
    child.setwinsize(12, 70)  # the terminal shrinks mid-block
    child.kill(signal.SIGWINCH)
    rc, rest = finish(child)
    assert rc == 0
    term = ScrollbackScreen(COLS, ROWS)
    stream = pyte.Stream(term)
    with untraced():
        stream.feed(before)
        xterm_resize(term, 12, 70)
        stream.feed(rest)
    text = [line.strip() for line in all_lines(term)]
    values = [line for line in text if line.startswith("value_")]
    assert values == code.splitlines()  # every line once, in order: nothing left behind
    assert "Done." in text and not term.cursor.hidden
