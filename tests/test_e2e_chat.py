"""End-to-end: ``llmost chat`` with piped stdin, and conversations carried across processes.

Each call is a separate ``llmost`` process; the store is the only thing they share.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from llmost_cli import paths
from llmost_cli.core.messages import Message
from llmost_cli.errors import ExitCode
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner, declare_recording_tool, llmost_executable

ROUNDS = "[profiles.default]\nmax_tool_rounds = 2\n"

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def bodies(server: fs.FakeServer) -> list[dict[str, Any]]:
    return [r.json for r in server.chat_requests()]


def stored(name_or_latest: str | None = None) -> list[Message]:
    with Store(paths.database_file()) as store:
        conv = store.get(name_or_latest) if name_or_latest else store.latest()
        assert conv is not None
        return store.messages(conv.id)


def conversations() -> int:
    with Store(paths.database_file()) as store:
        return len(store.list())


# -- chat with piped stdin ---------------------------------------------------------------------


def test_one_message_per_line_multi_turn(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("Первый ответ"), fs.stream_text(["second", " answer\n"]))
    r = llmost("chat", "-s", "be brief", input="hi there\n\nand again\n")
    assert (r.rc, r.stdout, r.stderr) == (0, "Первый ответ\n\nsecond answer\n", "")
    first, second = bodies(server)
    assert first["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi there"},
    ]
    assert second["messages"] == [
        *first["messages"],
        {"role": "assistant", "content": "Первый ответ"},
        {"role": "user", "content": "and again"},
    ]
    assert [(m.role, m.content) for m in stored()] == [
        ("system", "be brief"),
        ("user", "hi there"),
        ("assistant", "Первый ответ"),
        ("user", "and again"),
        ("assistant", "second answer\n"),
    ]


def test_prompt_argument_is_the_first_turn(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("chat", "what", "is", "this?", input="and this?\n")
    assert r.rc == 0 and r.stdout == "Hello!\n\nHello!\n"  # answers apart by a blank line
    assert [b["messages"][-1]["content"] for b in bodies(server)] == ["what is this?", "and this?"]


def test_empty_stdin_sends_nothing_and_saves_nothing(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("chat", input=b"")
    assert (r.rc, r.stdout, r.stderr) == (0, "", "")
    assert server.chat_requests() == []
    assert not paths.database_file().exists() or conversations() == 0


def test_slash_commands_in_line_mode_keep_stdout_for_answers(
    llmost: Runner, server: fs.FakeServer
) -> None:
    script = (
        "/model mistralai/mistral-small\n/set temperature 0.2\n/system Talk like a pirate.\n"
        "q\n/usage\n/history\n//slash message\n/exit\nnever sent\n"
    )
    r = llmost("chat", input=script)
    assert r.rc == 0, r
    assert r.stdout == "Hello!\n\nHello!\n"
    body = bodies(server)[0]
    assert body["model"] == "mistralai/mistral-small" and body["temperature"] == 0.2
    assert body["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert "this session: 1 answer, 12 prompt + 3 completion = 15 tokens" in r.stderr
    assert "you: q\n\nassistant: Hello!" in r.stderr
    assert bodies(server)[1]["messages"][-1]["content"] == "/slash message"
    assert len(server.chat_requests()) == 2


def test_failures_keep_the_session_and_set_the_exit_code(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.add(fs.error(402, "top up"), fs.stream_text("fine"))
    r = llmost("chat", "--retries", "0", input="one\ntwo\n/nope\n")
    assert r.rc == ExitCode.CREDITS, r  # the first failure
    assert r.stdout == "fine\n"
    lines = r.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("llmost: error: HTTP 402: top up")
    assert lines[1] == "llmost: error: unknown command /nope (/help lists the commands)"


def test_partial_reply_stored_when_the_connection_drops(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.add(
        fs.stream(
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "half of it"}}]}),
            fs.drop(),
        ),
        fs.stream_text("next"),
    )
    r = llmost("chat", "--retries", "0", input="q1\nq2\n")
    assert r.rc == ExitCode.NETWORK and r.stdout == "half of it\nnext\n"
    messages = stored()
    assert [(m.content, m.partial) for m in messages] == [
        ("q1", False),
        ("half of it", True),
        ("q2", False),
        ("next", False),
    ]
    assert bodies(server)[1]["messages"][1] == {"role": "assistant", "content": "half of it"}


@contextmanager
def streaming_chat(server: fs.FakeServer) -> Iterator[subprocess.Popen[bytes]]:
    """``llmost chat`` fed two lines, once the first answer has started to stream."""
    server.add(fs.stream_text([f"w{i} " for i in range(300)], delay=0.02))
    env = os.environ | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    with subprocess.Popen(
        [llmost_executable(), "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"long answer please\nnot sent\n")
            proc.stdin.close()
            assert proc.stdout.read(3) == b"w0 "  # the answer is streaming
            yield proc
        finally:
            proc.kill()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_stream_stores_the_partial_reply(
    server: fs.FakeServer, sig: int, code: int
) -> None:
    with streaming_chat(server) as proc:
        proc.send_signal(sig)
        proc.wait(timeout=10)
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    assert proc.returncode == code, err
    assert len(server.chat_requests()) == 1
    reply = stored()[1]
    assert reply.partial and isinstance(reply.content, str)
    assert reply.content.startswith("w0 ") and len(reply.content) < len("w0 ") * 300
    assert (b"w0 " + out).decode().startswith(reply.content)  # stored what was printed


def test_reader_closing_stdout_ends_quietly_and_keeps_the_partial(server: fs.FakeServer) -> None:
    with streaming_chat(server) as proc:
        proc.stdout.close()  # type: ignore[union-attr]  # like `llmost chat | head -c 3`
        proc.wait(timeout=10)
        err = proc.stderr.read()  # type: ignore[union-attr]
    assert (proc.returncode, err) == (0, b"")
    assert len(server.chat_requests()) == 1
    assert stored()[1].partial


def test_missing_key_is_a_config_error_before_anything(llmost_bare: Runner) -> None:
    r = llmost_bare("chat", input="hi\n")
    assert r.rc == ExitCode.CONFIG
    assert r.stdout == "" and r.stderr.startswith("llmost: error: no API key is set")


def test_bad_option_is_a_usage_error_before_anything(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("chat", "--json-mode", "--schema", "{}", input="hi\n")
    assert r.rc == ExitCode.USAGE and server.chat_requests() == []


# -- conversations across processes ------------------------------------------------------------


def test_ask_continue_carries_system_turns_prefill_and_images(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(PNG)
    server.add(fs.stream_text("a dot"), fs.stream_text(' "x": 1}'), fs.stream_text("done"))
    assert llmost("ask", "-s", "You see images.", "-i", str(png), "what is it?").rc == 0
    r = llmost("ask", "-c", "--prefill", "{", "as JSON")
    assert r.rc == 0 and r.stdout == '{ "x": 1}\n'
    assert llmost("ask", "-c", "thanks").rc == 0
    first_turn = [
        {"role": "system", "content": "You see images."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
            ],
        },
        {"role": "assistant", "content": "a dot"},
    ]
    second, third = bodies(server)[1:]
    assert second["messages"] == [
        *first_turn,
        {"role": "user", "content": "as JSON"},
        {"role": "assistant", "content": "{"},
    ]
    assert third["messages"] == [
        *first_turn,
        {"role": "user", "content": "as JSON"},
        {"role": "assistant", "content": '{ "x": 1}'},
        {"role": "user", "content": "thanks"},
    ]
    assert conversations() == 1


def test_ask_session_across_processes_and_isolated(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("A1"), fs.stream_text("B1"), fs.stream_text("A2"))
    llmost("ask", "--session", "alpha", "a1")
    llmost("ask", "--session", "beta", "b1")
    llmost("ask", "--session", "alpha", "a2")
    assert [m["content"] for m in bodies(server)[2]["messages"]] == ["a1", "A1", "a2"]
    assert [m.content for m in stored("beta")] == ["b1", "B1"]


def test_chat_session_across_processes_and_with_ask(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("C1"), fs.stream_text("C2"), fs.stream_text("C3"))
    assert llmost("chat", "--session", "work", "-m", "openai/gpt-4o", input="one\n").rc == 0
    assert llmost("chat", "--session", "work", input="two\n").rc == 0
    assert llmost("ask", "--session", "work", "three").rc == 0
    second, third = bodies(server)[1:]
    assert second["model"] == "openai/gpt-4o"  # the conversation's model, kept
    assert [m["content"] for m in second["messages"]] == ["one", "C1", "two"]
    assert [m["content"] for m in third["messages"]] == ["one", "C1", "two", "C2", "three"]
    assert conversations() == 1


def test_chat_continue_resumes_the_latest(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("old"), fs.stream_text("recent"), fs.stream_text("more"))
    llmost("ask", "older question")
    llmost("ask", "-s", "sys", "recent question")
    r = llmost("chat", "--continue", input="follow-up\n")
    assert r.rc == 0 and r.stdout == "more\n"
    assert bodies(server)[2]["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "recent question"},
        {"role": "assistant", "content": "recent"},
        {"role": "user", "content": "follow-up"},
    ]
    r = llmost("ask", "-c", "and?")
    assert [m["content"] for m in bodies(server)[3]["messages"]][-3:] == [
        "follow-up",
        "more",
        "and?",
    ]


def test_chat_save_then_session(llmost: Runner, server: fs.FakeServer) -> None:
    llmost("chat", input="remember 42\n/save numbers\n")
    llmost("chat", input="another chat\n")
    r = llmost("chat", "--session", "numbers", input="what number?\n")
    assert r.rc == 0
    assert [m["content"] for m in bodies(server)[-1]["messages"]] == [
        "remember 42",
        "Hello!",
        "what number?",
    ]


def test_tool_call_in_chat_answered_with_ask_tool_result(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"name": "get_time", "parameters": {"type": "object"}}]))
    server.add(fs.stream_tool_calls([("call_1", "get_time", "{}")]), fs.stream_text("noon"))
    r = llmost("chat", "--tools", str(tools), input="what time is it?\n")
    assert r.rc == 0
    assert r.stdout == '{"id": "call_1", "name": "get_time", "arguments": {}}\n'
    assert "llmost ask -c --tool-result ID=VALUE" in r.stderr
    r = llmost("ask", "-c", "--tool-result", "call_1=12:00")
    assert (r.rc, r.stdout) == (0, "noon\n"), r
    body = bodies(server)[1]
    assert body["tools"][0]["function"]["name"] == "get_time"
    assert body["messages"][-1]["tool_call_id"] == "call_1"
    assert body["messages"][-1]["content"] == "12:00"


def test_declared_tools_in_line_mode_run_only_with_yes(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    marker = isolated_env / "ran.txt"
    declare_recording_tool(isolated_env, marker, extra=ROUNDS)
    server.add(fs.stream_tool_calls([("c1", "get_weather", '{"city": "Oslo"}')]))
    r = llmost("chat", "--tool", "get_weather", input="weather?\n")
    assert r.rc == 0
    assert json.loads(r.stdout) == {
        "id": "c1",
        "name": "get_weather",
        "arguments": {"city": "Oslo"},
    }
    assert "pass --yes to run them" in r.stderr
    assert not marker.exists() and len(bodies(server)) == 1

    server.reset()
    server.add(fs.stream_tool_calls([("c2", "get_weather", '{"city": "Oslo"}')]))
    server.add(fs.stream_text("Oslo: 3 °C."))
    r = llmost("chat", "--tool", "get_weather", "--yes", input="weather?\nthanks\n")
    assert (r.rc, r.stdout) == (0, "Oslo: 3 °C.\n\nHello!\n"), r
    assert "running tool get_weather: " in r.stderr and 'arguments: {"city": "Oslo"}' in r.stderr
    assert marker.read_text() == "Oslo\n"
    _, second, third = bodies(server)
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == '{"city": "Oslo", "temp_c": 3}\n'
    # the next line of stdin carries the whole exchange, tool round included
    assert [m["role"] for m in third["messages"]] == [
        "user", "assistant", "tool", "assistant", "user"
    ]  # fmt: skip


def test_chat_tool_round_limit(llmost: Runner, server: fs.FakeServer, isolated_env: Path) -> None:
    declare_recording_tool(isolated_env, isolated_env / "ran.txt", extra=ROUNDS)
    for i in range(4):
        server.add(fs.stream_tool_calls([(f"c{i}", "get_weather", '{"city": "X"}')]))
    r = llmost("chat", "--tools-all", "--yes", input="loop\n")
    assert r.rc == 0
    assert "stopped after 2 tool rounds (max_tool_rounds)" in r.stderr
    assert len(bodies(server)) == 3
    assert (isolated_env / "ran.txt").read_text() == "X\nX\n"
    assert r.stdout == ""  # the last round's calls are answered as not run, not left open
    assert [m.role for m in stored()][-2:] == ["assistant", "tool"]


def test_undeclared_tool_call_in_line_mode_is_printed_once(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    declare_recording_tool(isolated_env, isolated_env / "ran.txt")
    server.add(fs.stream_tool_calls([("c1", "other_tool", "{}")]))
    r = llmost("chat", "--tool", "get_weather", input="hi\n")
    assert r.rc == 0
    assert r.stdout.splitlines() == ['{"id": "c1", "name": "other_tool", "arguments": {}}']
