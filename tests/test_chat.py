"""The chat session without a terminal: turns, slash commands, the store, interruptions.

Sessions talk to the real fake server over HTTP and write a real SQLite store; only the
terminal is absent (the REPL itself is tested in ``test_repl.py``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from llmost_cli import paths
from llmost_cli.cli.chat import ChatOptions, open_session, stdin_lines
from llmost_cli.cli.state import State
from llmost_cli.core.chat import Session
from llmost_cli.core.chat_commands import COMMANDS, command_names
from llmost_cli.core.messages import Message
from llmost_cli.env import Environment
from llmost_cli.errors import ConfigError, ExitCode, Interrupted, UsageError
from llmost_cli.store.store import Store
from llmost_cli.ui.repl import cached_model_ids, completions
from llmost_cli.ui.turnview import describe
from tests import fakeserver as fs
from tests.conftest import TEST_KEY

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Out(io.BytesIO):
    """stdout that can press Ctrl-C once ``interrupt_after`` bytes were written."""

    interrupt_after: int | None = None

    def write(self, data: Any) -> int:
        n = super().write(data)
        if self.interrupt_after is not None and self.tell() >= self.interrupt_after:
            self.interrupt_after = None
            raise KeyboardInterrupt
        return n


class Chat:
    """A session plus what it printed."""

    def __init__(self, session: Session, out: Out, err: io.StringIO) -> None:
        self.session = session
        self._out = out
        self._err = err

    def __call__(self, *lines: str) -> bool:
        results = [self.session.handle(line) for line in lines]
        return all(results)

    @property
    def out(self) -> str:
        return self._out.getvalue().decode()

    @property
    def err(self) -> str:
        return self._err.getvalue()

    def stored(self) -> list[Message]:
        conv = self.session.thread.conversation
        assert conv is not None and self.session.store is not None
        return self.session.store.messages(conv.id)


MakeChat = Callable[..., Chat]


@pytest.fixture
def chat(server: fs.FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeChat]:
    monkeypatch.setenv("LLMOST_BASE_URL", server.base_url)
    monkeypatch.setenv("LLMOST_API_KEY", TEST_KEY)
    with ExitStack() as stack:

        def make(*, interactive: bool = True, **options: Any) -> Chat:
            out, err = Out(), io.StringIO()
            env = Environment(stdin=None, stdout=out, stderr=err, environ=os.environ)
            opts = ChatOptions(**({"retries": 0} | options))
            session = open_session(State(env), opts, stack, interactive=interactive)
            return Chat(session, out, err)

        yield make


def bodies(server: fs.FakeServer) -> list[dict[str, Any]]:
    return [r.json for r in server.chat_requests()]


def roles(messages: list[Message]) -> list[tuple[str, Any]]:
    return [(m.role, m.content) for m in messages]


# -- turns and the store -----------------------------------------------------------------------


def test_turns_carry_the_history_and_are_stored(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("one"), fs.stream_text(["tw", "o"]))
    c = chat(system="be brief")
    assert c("first", "second")
    assert c.out == "one\n\ntwo\n"  # a blank line between answers when stdout is no terminal
    assert bodies(server)[1]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
    ]
    stored = c.stored()
    assert roles(stored) == [
        ("system", "be brief"),
        ("user", "first"),
        ("assistant", "one"),
        ("user", "second"),
        ("assistant", "two"),
    ]
    assert stored[-1].finish_reason == "stop" and not stored[-1].partial
    assert stored[-1].usage == fs.DEFAULT_USAGE


def test_no_conversation_is_created_until_the_first_exchange(chat: MakeChat) -> None:
    c = chat()
    assert c("/help", "/usage")
    assert c.session.thread.conversation is None
    with Store(paths.database_file()) as store:
        assert store.list() == []


def test_each_exchange_is_written_as_it_completes(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat()
    c("hello")
    with Store(paths.database_file()) as other:  # another process's view
        conv = other.latest()
        assert conv is not None
        assert roles(other.messages(conv.id)) == [("user", "hello"), ("assistant", "Hello!")]


def test_midstream_error_keeps_the_partial_reply(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.midstream_error(["Half ", "an answer"]), fs.stream_text("fine"))
    c = chat(interactive=False)
    assert c("q1", "q2")
    assert "Half an answer\n" in c.out
    assert "llmost: error: the server reported an error mid-answer: Provider disconnected" in c.err
    stored = c.stored()
    assert roles(stored)[:2] == [("user", "q1"), ("assistant", "Half an answer")]
    assert stored[1].partial
    assert bodies(server)[1]["messages"][1] == {"role": "assistant", "content": "Half an answer"}
    assert c.session.run_lines([]) == ExitCode.API  # line mode remembers the failure


def test_dropped_connection_keeps_the_partial_reply(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream(fs.chunk({"choices": [{"index": 0, "delta": {"content": "cut"}}]}),
                         fs.drop()))  # fmt: skip
    c = chat()
    c("q")
    assert "llmost: error:" in c.err
    (_user, reply) = c.stored()
    assert (reply.content, reply.partial) == ("cut", True)
    assert c.session.run_lines([]) == 0  # interactive: errors were shown, Ctrl-D is success


def test_failed_request_keeps_the_session_alive(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.error(400, "bad things"), fs.stream_text("ok now"))
    c = chat()
    assert c("one", "two")
    assert c.err.count("llmost: error:") == 1 and "bad things" in c.err
    assert c.out == "ok now\n"
    # a turn that failed before any answer leaves no trace: the next one is not sent twice
    assert roles(c.stored()) == [("user", "two"), ("assistant", "ok now")]
    assert bodies(server)[-1]["messages"] == [{"role": "user", "content": "two"}]


def test_first_failure_is_the_exit_code_in_line_mode(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.error(401, "no"), fs.error(400, "bad"))
    c = chat(interactive=False)
    assert c.session.run_lines(["a", "b", "c"]) == ExitCode.AUTH
    assert len(server.chat_requests()) == 3


def test_ctrl_c_mid_stream_stops_keeps_partial_and_closes_the_stream(
    chat: MakeChat, server: fs.FakeServer
) -> None:
    pieces = [f"word{i} " for i in range(200)]
    server.add(fs.stream_text(pieces, delay=0.02), fs.stream_text("next"))
    c = chat()
    c._out.interrupt_after = len("word0 word1 ")
    start = time.monotonic()
    assert c("long one please")
    assert time.monotonic() - start < 2  # not the 4 s the whole stream takes
    first = server.chat_requests()[0]
    assert first.finished.wait(5) and first.client_gone  # the HTTP stream was closed
    assert "stopped; the partial answer is kept" in c.err
    reply = c.stored()[1]
    assert reply.partial and reply.content == "word0 word1 "
    c("and now?")
    assert bodies(server)[1]["messages"][1] == {"role": "assistant", "content": "word0 word1 "}


def test_ctrl_c_in_line_mode_saves_then_interrupts(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream_text([f"w{i} " for i in range(100)], delay=0.02))
    c = chat(interactive=False)
    c._out.interrupt_after = 3
    with pytest.raises(Interrupted):  # the boundary turns it into exit code 130
        c.session.run_lines(["go", "never sent"])
    assert c.stored()[1].partial
    assert len(server.chat_requests()) == 1


def test_ctrl_c_while_waiting_for_the_first_token(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.hang(5, then=fs.stream_text("too late")))
    c = chat()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))  # a real Ctrl-C
    timer.start()
    try:
        start = time.monotonic()
        assert c("slow question")
        assert time.monotonic() - start < 3
    finally:
        timer.cancel()
    assert "stopped; nothing was kept" in c.err
    # nothing arrived: nothing is stored; /retry asks the same question once
    assert c.session.thread.conversation is None
    c("/retry")
    assert bodies(server)[-1]["messages"] == [{"role": "user", "content": "slow question"}]
    assert roles(c.stored()) == [("user", "slow question"), ("assistant", "Hello!")]


def test_prompt_is_a_message_even_with_a_slash(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat()
    c.session.handle("/usr/bin is what?", commands=False)
    c("//etc is where?")
    assert [b["messages"][-1]["content"] for b in bodies(server)] == [
        "/usr/bin is what?",
        "/etc is where?",
    ]


def test_blank_lines_are_ignored(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat()
    assert c("", "   ", "\t")
    assert server.chat_requests() == []


# -- slash commands ------------------------------------------------------------------------


def test_help_lists_every_command_on_one_line_each(chat: MakeChat) -> None:
    c = chat()
    assert c("/help")
    for command in COMMANDS.values():
        line = next(ln for ln in c.err.splitlines() if ln.strip().startswith(command.name + " "))
        assert command.usage in line and command.help in line
    assert c.out == ""


@pytest.mark.parametrize("word", ["/exit", "/quit", "/EXIT"])
def test_exit(chat: MakeChat, word: str) -> None:
    assert chat()(word) is False


def test_unknown_command_is_one_line_and_the_session_goes_on(
    chat: MakeChat, server: fs.FakeServer
) -> None:
    c = chat(interactive=False)
    assert c("/frobnicate now", "hi")
    assert c.err == "llmost: error: unknown command /frobnicate (/help lists the commands)\n"
    assert len(server.chat_requests()) == 1
    assert c.session.run_lines([]) == ExitCode.USAGE


def test_model_shows_switches_and_is_stored(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat()
    c("/model")
    assert "model: the account default" in c.err
    c("hi", "/model mistralai/mistral-small", "again", "/model")
    first, second = bodies(server)
    assert "model" not in first and second["model"] == "mistralai/mistral-small"
    assert c.err.endswith("llmost: model: mistralai/mistral-small\n")
    with Store(paths.database_file()) as store:
        conv = store.latest()
        assert conv is not None and conv.model == "mistralai/mistral-small"


def test_system_shows_sets_from_text_or_file_and_stores_once(
    chat: MakeChat, server: fs.FakeServer, tmp_path: Path
) -> None:
    c = chat()
    c("/system")
    assert "(no system prompt)" in c.err
    c("/system You are a pirate.\nSay arr.", "one", "two", "/system")
    assert "You are a pirate.\nSay arr.\n" in c.err
    prompt_file = tmp_path / "sys.txt"
    prompt_file.write_text("From a file.", encoding="utf-8")
    c(f"/system @{prompt_file}", "three")
    sent = [b["messages"][0] for b in bodies(server)]
    assert sent == [{"role": "system", "content": "You are a pirate.\nSay arr."}] * 2 + [
        {"role": "system", "content": "From a file."}
    ]
    assert [m["role"] for m in bodies(server)[2]["messages"]].count("system") == 1


def test_image_goes_with_the_next_message_only(
    chat: MakeChat, server: fs.FakeServer, tmp_path: Path
) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(PNG)
    c = chat()
    c(f"/image {png}", "/image https://example.com/cat.jpg", "what are these?", "and now?")
    with_images, without = bodies(server)
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert with_images["messages"][-1]["content"] == [
        {"type": "text", "text": "what are these?"},
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    assert without["messages"][-1] == {"role": "user", "content": "and now?"}
    assert without["messages"][0] == with_images["messages"][-1]  # history keeps the images
    assert c.stored()[0].content == with_images["messages"][-1]["content"]


def test_bad_image_is_an_error_and_attaches_nothing(
    chat: MakeChat, server: fs.FakeServer, tmp_path: Path
) -> None:
    c = chat()
    c(f"/image {tmp_path / 'missing.png'}", "/image", "hi")
    assert "no such file" in c.err and "usage: /image PATH_OR_URL" in c.err
    assert bodies(server)[0]["messages"] == [{"role": "user", "content": "hi"}]


def test_prefill_applies_to_the_next_answer_only(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream_text(' "red"}'), fs.stream_text("plain"))
    c = chat()
    c('/prefill {"colour":', "a colour as JSON", "again")
    assert c.out == '{"colour": "red"}\n\nplain\n'
    first, second = bodies(server)
    assert first["messages"][-1] == {"role": "assistant", "content": '{"colour":'}
    assert second["messages"][-1] == {"role": "user", "content": "again"}
    reply = c.stored()[1]
    assert (reply.content, reply.prefill) == ('{"colour": "red"}', True)


def test_prefill_flag_is_the_first_answer_only(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat(prefill="Sure:")
    c("one", "two")
    assert bodies(server)[0]["messages"][-1] == {"role": "assistant", "content": "Sure:"}
    assert bodies(server)[1]["messages"][-1]["role"] == "user"


def test_retry_asks_again_and_replaces_the_reply(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("first try"), fs.stream_text("second try"))
    c = chat()
    c("question", "/retry")
    assert c.out == "first try\n\nsecond try\n"
    assert bodies(server)[1]["messages"] == [{"role": "user", "content": "question"}]
    assert roles(c.stored()) == [("user", "question"), ("assistant", "second try")]


def test_retry_after_a_failure_resends_the_message(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.error(400, "nope"), fs.stream_text("worked"))
    c = chat()
    c("question", "/retry")
    assert bodies(server)[1]["messages"] == [{"role": "user", "content": "question"}]
    assert roles(c.stored()) == [("user", "question"), ("assistant", "worked")]


def test_retry_and_undo_with_nothing_to_do(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat()
    c("/retry", "/undo")
    assert "nothing to retry" in c.err and "nothing to undo" in c.err
    assert server.chat_requests() == []


def test_undo_drops_the_last_exchange(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("a1"), fs.stream_text("a2"))
    c = chat()
    c("q1", "q2", "/undo", "q3")
    assert bodies(server)[2]["messages"] == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q3"},
    ]
    assert [m.content for m in c.stored()] == ["q1", "a1", "q3", "Hello!"]


def test_clear_forgets_messages_but_keeps_the_system_prompt(
    chat: MakeChat, server: fs.FakeServer
) -> None:
    c = chat(system="terse")
    c("q1", "/clear", "q2")
    assert bodies(server)[1]["messages"] == [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "q2"},
    ]
    assert roles(c.stored()) == [("system", "terse"), ("user", "q2"), ("assistant", "Hello!")]


def test_history_shows_the_conversation(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("Hi there"), fs.midstream_error("Parti"))
    c = chat(system="be kind")
    c("/history")
    assert "system: be kind" in c.err
    c("hello", "more", "/history")
    shown = c.err.split("system: be kind")[-1]
    assert "you: hello\n\nassistant: Hi there\n\nyou: more\n\nassistant: Parti [cut off]" in shown
    assert c.out == "Hi there\n\nParti\n"


def test_history_when_empty(chat: MakeChat) -> None:
    c = chat()
    c("/history")
    assert "(the conversation is empty)" in c.err


def test_usage_sums_the_session_and_shows_server_cost(
    chat: MakeChat, server: fs.FakeServer
) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.25}
    server.add(fs.stream_text("a", usage=usage), fs.stream_text("b", usage=usage))
    c = chat()
    c("/usage")
    assert "this session: 0 answers, 0 prompt + 0 completion = 0 tokens" in c.err
    c("q1", "q2", "/usage")
    assert c.err.splitlines()[-1] == (
        "llmost: this session: 2 answers, 20 prompt + 10 completion = 30 tokens, cost $0.5"
    )


def test_usage_without_a_known_price_shows_no_cost(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat()
    c("q", "/usage")
    assert c.err.splitlines()[-1] == (
        "llmost: this session: 1 answer, 12 prompt + 3 completion = 15 tokens"
    )


def test_set_validates_like_the_flags(chat: MakeChat, server: fs.FakeServer) -> None:
    c = chat(interactive=False)
    c("/set temperature 0.3", "/set max_tokens 50", '/set stop ["END", "STOP"]', "q")
    body = bodies(server)[0]
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (0.3, 50, ["END", "STOP"])
    c("/set temperature 7", "/set top_p zero", "/set colour red", "/set seed")
    errors = [ln for ln in c.err.splitlines() if "error" in ln]
    assert errors == [
        "llmost: error: /set temperature must be in [0, 2], got 7",
        "llmost: error: /set top_p must be a number, got 'zero'",
        "llmost: error: /set: unknown parameter 'colour'; known: temperature, top_p, max_tokens,"
        " frequency_penalty, presence_penalty, seed, stop",
        "llmost: error: usage: /set seed VALUE",
    ]
    c("/set")
    assert "sampling: temperature=0.3, max_tokens=50, stop=['END', 'STOP']" in c.err
    assert c.session.run_lines([]) == ExitCode.USAGE


def test_save_and_load(chat: MakeChat, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("about cats"), fs.stream_text("about dogs"))
    c = chat()
    c("cats?", "/save cats")
    assert "saved as 'cats'; resume it with: llmost chat --session cats" in c.err
    d = chat()
    d("/save dogs", "dogs?", "/save cats")  # taken
    assert "a conversation named 'cats' already exists" in d.err
    d("/load cats", "more?")
    assert bodies(server)[-1]["messages"] == [
        {"role": "user", "content": "cats?"},
        {"role": "assistant", "content": "about cats"},
        {"role": "user", "content": "more?"},
    ]
    d("/load nothing-here")
    assert "no saved conversation 'nothing-here'" in d.err
    with Store(paths.database_file()) as store:
        dogs = store.get("dogs")
        assert dogs is not None
        assert [m.content for m in store.messages(dogs.id)] == ["dogs?", "about dogs"]


def test_load_takes_the_conversation_model_and_system(
    chat: MakeChat, server: fs.FakeServer
) -> None:
    c = chat(system="be a poet", model="openai/gpt-4o")
    c("rhyme", "/save poem")
    d = chat()
    d("/load poem", "again")
    body = bodies(server)[-1]
    assert body["model"] == "openai/gpt-4o"
    assert body["messages"][0] == {"role": "system", "content": "be a poet"}


def test_session_option_resumes_a_named_conversation(chat: MakeChat, server: fs.FakeServer) -> None:
    chat(session="work")("first")
    c = chat(session="work")
    assert [m.content for m in c.session.history] == ["first", "Hello!"]
    c("second")
    assert len(bodies(server)[-1]["messages"]) == 3


def test_continue_resumes_the_latest_and_its_model(chat: MakeChat, server: fs.FakeServer) -> None:
    chat(model="anthropic/claude-3.5-sonnet")("older")
    chat()("latest")
    c = chat(continue_=True)
    c("follow-up")
    assert [m["content"] for m in bodies(server)[-1]["messages"]] == [
        "latest",
        "Hello!",
        "follow-up",
    ]
    chat(continue_=True, model="openai/gpt-4o")("flag wins")
    assert bodies(server)[-1]["model"] == "openai/gpt-4o"


def test_missing_key_fails_before_the_session(
    chat: MakeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMOST_API_KEY")
    monkeypatch.setenv("LLMOST_BASE_URL", "https://llmost.ru/api/v1")
    with pytest.raises(ConfigError, match="no API key"):
        chat()


def test_bad_options_fail_before_the_session(chat: MakeChat, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot be combined"):
        chat(json_mode=True, schema='{"type": "object"}')
    with pytest.raises(UsageError, match="no such file"):
        chat(image=[str(tmp_path / "nope.png")])


# -- helpers (the REPL's completion is plain functions) ------------------------------------


def test_completions() -> None:
    ids = ["openai/gpt-4o", "openai/gpt-4o-mini", "mistralai/mistral-small"]

    def models() -> list[str]:
        return ids

    assert completions("/he", command_names(), models) == [("/help", -3)]
    assert [c for c, _ in completions("/", command_names(), models)] == list(COMMANDS)
    assert completions("/s", command_names(), models) == [
        ("/system", -2),
        ("/set", -2),
        ("/save", -2),
    ]
    assert completions("/model op", command_names(), models) == [
        ("openai/gpt-4o", -2),
        ("openai/gpt-4o-mini", -2),
    ]
    assert completions("/model mini", command_names(), models) == [("openai/gpt-4o-mini", -4)]
    assert completions("/model ", command_names(), models) == [(i, 0) for i in ids]
    assert completions("/system op", command_names(), models) == []
    assert completions("hello /he", command_names(), models) == []
    assert completions("/model a b", command_names(), models) == []


def test_cached_model_ids_of_any_age() -> None:
    from llmost_cli.core import models

    url = "http://x/api/v1"
    listed = [{"id": "c/d"}, {"id": "a/b", "name": "B"}]
    models.write_cache(url, listed, now=1.0)  # decades old: completion still offers them
    assert sorted(cached_model_ids(url)) == ["a/b", "c/d"]
    assert cached_model_ids("http://other/v1") == []


def test_cached_model_ids_when_absent_or_garbage() -> None:
    assert cached_model_ids("http://x/api/v1") == []
    path = paths.models_cache_file("http://x/api/v1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff{not json")
    assert cached_model_ids("http://x/api/v1") == []


def test_describe() -> None:
    msg = Message(
        role="user",
        content=[
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    )
    assert describe(msg) == "you: look\n[image]"
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    tool = Message(role="assistant", content=None, tool_calls=[call], partial=True)
    assert describe(tool) == 'assistant: [tool call f({"a":1})] [cut off]'


def test_stdin_lines() -> None:
    data = io.BytesIO(b"one\r\ntwo\n\xffbad\nlast without newline")
    assert list(stdin_lines(data)) == ["one", "two", "\ufffdbad", "last without newline"]
    assert list(stdin_lines(None)) == []


def test_tool_calls_are_printed_and_explained(
    chat: MakeChat, server: fs.FakeServer, tmp_path: Path
) -> None:
    server.add(fs.stream_tool_calls([("call_1", "get_time", '{"tz": "UTC"}')]))
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"name": "get_time", "parameters": {"type": "object"}}]))
    c = chat(tools=str(tools))
    c("what time is it?")
    assert c.out == '{"id": "call_1", "name": "get_time", "arguments": {"tz": "UTC"}}\n'
    assert "answer them with: llmost ask -c --tool-result ID=VALUE" in c.err
    call = {"name": "get_time", "arguments": '{"tz": "UTC"}'}
    assert c.stored()[1].tool_calls == [{"id": "call_1", "type": "function", "function": call}]
    assert server.chat_requests()[0].json["tools"][0]["function"]["name"] == "get_time"


def test_chat_core_does_not_import_prompt_toolkit() -> None:
    code = "import sys, llmost_cli.core.chat; assert 'prompt_toolkit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
