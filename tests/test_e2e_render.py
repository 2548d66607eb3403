"""``llmost ask`` on a terminal: live markdown, spinner, and a clean terminal afterwards.

The child runs in a real pseudo-terminal (pexpect); what it wrote is replayed through the
``pyte`` terminal emulator, so the assertions are about what a user would see on the screen.
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
from rich.markdown import Markdown

from llmost_cli import paths
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, llmost_executable, write_config

pytestmark = pytest.mark.pty

COLS, ROWS = 100, 40
ANSWER = (
    "# Plan\n\nFirst a paragraph with **bold** and `code`.\n\n"
    "1. one\n2. two\n3. three\n\n"
    "```python\ndef f(x):\n    return x * 2\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "> a quote\n\nПоследняя строка, по-русски.\n"
)
HIDE, SHOW = "\x1b[?25l", "\x1b[?25h"


def spawn(server: fs.FakeServer, *args: str, env: dict[str, str] | None = None) -> Any:
    full = dict(os.environ) | {
        "LLMOST_BASE_URL": server.base_url,
        "LLMOST_API_KEY": TEST_KEY,
        "TERM": "xterm-256color",
        "COLUMNS": str(COLS),
        "LINES": str(ROWS),
    }
    full.pop("NO_COLOR", None)
    full |= env or {}
    return pexpect.spawn(
        llmost_executable(),
        ["ask", *args],
        env=full,
        dimensions=(ROWS, COLS),
        encoding="utf-8",
        timeout=15,
    )


def finish(child: Any) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    data = child.before
    child.close()
    status = child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus
    return status, data


def screen(data: str) -> tuple[list[str], pyte.Screen]:
    term = pyte.HistoryScreen(COLS, ROWS, history=10_000)
    pyte.Stream(term).feed(data)  # the pty already turned "\n" into "\r\n"
    lines = ["".join(line[x].data for x in range(COLS)).rstrip() for line in term.history.top]
    lines += [line.rstrip() for line in term.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines, term


def whole(text: str) -> list[str]:
    console = Console(file=io.StringIO(), force_terminal=True, width=COLS, color_system="truecolor")
    console.print(Markdown(text))
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
def test_markdown_off_or_no_color(
    server: fs.FakeServer, children: list[Any], isolated_env: Any, how: str
) -> None:
    server.add(fs.stream_text(fs.split_text(ANSWER, 5)))
    args, env = ["hi"], {}
    if how == "--no-markdown":
        args.insert(0, how)
    elif how.startswith("config"):
        write_config(isolated_env, "[profiles.default]\nmarkdown = false\n")
    else:
        env["NO_COLOR"] = "1"
    child = spawn(server, *args, env=env)
    children.append(child)
    rc, data = finish(child)
    assert rc == 0
    if how == "NO_COLOR":
        colours = re.findall(r"\x1b\[([0-9;]*)m", data)
        assert not [c for c in colours if re.search(r"(^|;)(3[0-9]|4[0-9]|9[0-7]|38|48)(;|$)", c)]
        assert "# Plan" not in data  # still rendered as markdown
    else:
        assert data.replace("\r\n", "\n") == ANSWER  # the raw text, byte for byte


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
