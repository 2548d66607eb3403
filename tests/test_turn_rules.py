"""The one turn engine's rules, end to end: what is sent, what is stored, what is reported.

Each test here reproduces a bug of the first release (ask and chat assembling and storing
turns in two ways) and holds the rule that fixed it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from llmost_cli import paths
from llmost_cli.core.messages import Message
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import Runner, declare_recording_tool, write_config


def bodies(server: fs.FakeServer) -> list[dict[str, Any]]:
    return [r.json for r in server.chat_requests()]


def stored(name: str | None = None) -> list[Message]:
    with Store(paths.database_file()) as store:
        conv = store.get(name) if name else store.latest()
        assert conv is not None
        return store.messages(conv.id)


def conversations() -> int:
    with Store(paths.database_file()) as store:
        return len(store.list())


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


# -- the system prompt is sent once -------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [[], ["--no-stream"], ["--session", "S"]],
    ids=["plain", "no-stream", "session"],
)
def test_system_prompt_is_sent_once(
    llmost: Runner, server: fs.FakeServer, extra: list[str]
) -> None:
    server.set_default(fs.completion("ok") if "--no-stream" in extra else fs.adaptive("ok"))
    r = llmost("ask", "-s", "Be terse", *extra, "q")
    assert r.rc == 0, r
    (body,) = bodies(server)
    assert body["messages"] == [
        {"role": "system", "content": "Be terse"},
        {"role": "user", "content": "q"},
    ]
    assert [m.role for m in stored()] == ["system", "user", "assistant"]


def test_system_prompt_from_file_and_config_is_sent_once_and_again_on_continue(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path, tmp_path: Path
) -> None:
    server.set_default(fs.adaptive("ok"))
    write_config(isolated_env, '[profiles.default]\nsystem = "from config"\n')
    assert llmost("ask", "q1").rc == 0
    assert llmost("ask", "-c", "q2").rc == 0
    prompt = tmp_path / "sys.txt"
    prompt.write_text("from file")
    assert llmost("ask", "-s", f"@{prompt}", "-c", "q3").rc == 0
    first, second, third = bodies(server)
    assert roles(first["messages"]) == ["system", "user"]
    assert roles(second["messages"]) == ["system", "user", "assistant", "user"]
    assert second["messages"][0] == {"role": "system", "content": "from config"}
    assert roles(third["messages"]).count("system") == 1
    assert third["messages"][0] == {"role": "system", "content": "from file"}
    # stored once, and again only when it changed
    assert [(m.role, m.content) for m in stored() if m.role == "system"] == [
        ("system", "from config"),
        ("system", "from file"),
    ]


# -- checks run before anything is stored -------------------------------------------------------


def test_failed_checks_store_nothing_and_continue_finds_the_real_last(
    llmost: Runner, llmost_bare: Runner, server: fs.FakeServer
) -> None:
    assert llmost("ask", "--session", "real", "the real question").rc == 0
    before = conversations()
    assert llmost("ask", "-t", "5", "q").rc == 2  # out of range
    assert llmost("ask", "-i", "/nonexistent.png", "q").rc == 2
    assert llmost_bare("ask", "q", env={"LLMOST_BASE_URL": "https://llmost.ru/api/v1"}).rc == 3
    refused = {"LLMOST_BASE_URL": "http://example.com/v1", "LLMOST_API_KEY": "k-123456789"}
    assert llmost_bare("ask", "q", env=refused).rc == 3
    assert conversations() == before
    assert llmost("ask", "-c", "and then?").rc == 0
    assert bodies(server)[-1]["messages"][0] == {"role": "user", "content": "the real question"}


# -- a continued conversation keeps its model -------------------------------------------------


@pytest.mark.parametrize("how", [["-c"], ["--session", "M"]], ids=["continue", "session"])
def test_continued_conversation_keeps_its_model(
    llmost: Runner, server: fs.FakeServer, how: list[str]
) -> None:
    server.set_default(fs.adaptive("ok"))
    assert llmost("ask", "-m", "mistralai/mistral-small", "--session", "M", "q1").rc == 0
    assert llmost("ask", *how, "q2", env={"LLMOST_MODEL": "openai/gpt-4o"}).rc == 0
    assert llmost("ask", *how, "-m", "anthropic/claude-3.5-sonnet", "q3").rc == 0
    models = [b.get("model") for b in bodies(server)]
    assert models == [
        "mistralai/mistral-small",
        "mistralai/mistral-small",
        "anthropic/claude-3.5-sonnet",
    ]


# -- a failed turn leaves no trace ---------------------------------------------------------------


def test_a_failed_turn_is_not_sent_twice(llmost: Runner, server: fs.FakeServer) -> None:
    assert llmost("ask", "--session", "F", "first").rc == 0
    server.add(fs.error(402, "Insufficient credits"))
    assert llmost("ask", "--session", "F", "costly").rc == 5
    server.add(fs.stream_text("fine"))
    assert llmost("ask", "--session", "F", "costly").rc == 0
    last = bodies(server)[-1]["messages"]
    assert [m["content"] for m in last if m["role"] == "user"] == ["first", "costly"]
    assert [m.content for m in stored("F") if m.role == "user"] == ["first", "costly"]


def test_chat_after_a_failure_sends_the_message_once(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.error(402, "Insufficient credits"), fs.stream_text("done"), fs.stream_text("ok"))
    r = llmost("chat", "--retries", "0", input="pricey\n/retry\nnext\n")
    assert r.rc == 5 and r.stdout == "done\n\nok\n"
    retried, following = bodies(server)[1:]
    assert retried["messages"] == [{"role": "user", "content": "pricey"}]
    assert [m["content"] for m in following["messages"]] == ["pricey", "done", "next"]


# -- /clear starts a new conversation ------------------------------------------------------------


def test_clear_never_deletes_a_stored_conversation(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("chat", "--session", "keep", input="one\n/clear\ntwo\n")
    assert r.rc == 0, r
    assert [m.content for m in stored("keep") if m.role == "user"] == ["one"]
    assert bodies(server)[-1]["messages"] == [{"role": "user", "content": "two"}]
    assert conversations() == 2


# -- tool calls never stay unanswered ----------------------------------------------------------


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def test_printed_tool_calls_are_answered_as_not_run_when_the_user_goes_on(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    server.add(fs.stream_tool_calls([("call_1", "lookup", '{"q": "x"}')]))
    r = llmost("ask", "--tools", str(tools), "look it up")
    assert r.rc == 0 and json.loads(r.stdout)["id"] == "call_1"
    assert llmost("ask", "-c", "never mind, tell me a joke").rc == 0
    messages = bodies(server)[-1]["messages"]
    assert roles(messages) == ["user", "assistant", "tool", "user"]
    assert messages[2]["tool_call_id"] == "call_1" and "not run" in messages[2]["content"]


def test_tool_result_still_answers_the_printed_calls(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    server.add(fs.stream_tool_calls([("call_1", "lookup", "{}")]), fs.stream_text("42"))
    assert llmost("ask", "--tools", str(tools), "q").rc == 0
    r = llmost("ask", "-c", "--tool-result", "call_1=the answer")
    assert (r.rc, r.stdout) == (0, "42\n")
    messages = bodies(server)[-1]["messages"]
    assert messages[-1] == {
        "role": "tool",
        "content": "the answer",
        "tool_call_id": "call_1",
        "name": "lookup",
    }
    assert bodies(server)[-1]["tools"] == TOOLS  # offered again


def test_tool_loop_usage_is_the_sum_over_requests(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    declare_recording_tool(isolated_env, isolated_env / "ran.txt")
    first = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.5}
    second = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25, "cost": 0.25}
    server.add(
        fs.stream_tool_calls([("c1", "get_weather", '{"city": "Oslo"}')], usage=first),
        fs.stream_text("3 °C", usage=second),
    )
    r = llmost("ask", "--tool", "get_weather", "--yes", "-o", "json", "-u", "weather?")
    assert r.rc == 0, r
    out = r.json
    assert out["usage"] == {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    assert out["cost"] == 0.75
    assert "30 prompt + 7 completion = 37 total" in r.stderr


# -- -o json keeps what arrived --------------------------------------------------------------


def test_json_output_after_a_midstream_error_keeps_the_content(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.add(fs.midstream_error(["Half ", "an answer"]))
    r = llmost("ask", "-o", "json", "q")
    assert r.rc == 7
    out = r.json
    assert out["content"] == "Half an answer"
    assert out["error"]["code"] == 502 and "Provider disconnected" in out["error"]["message"]
    assert out["conversation"]


def test_json_output_is_strict_even_when_the_server_sends_nan(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.add(
        fs.raw_response(
            200,
            b'{"id": "g", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant",'
            b' "content": "hi"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1,'
            b' "completion_tokens": 1, "total_tokens": 2, "cost": NaN}}',
            content_type="application/json",
        )
    )
    r = llmost("ask", "--no-stream", "-o", "json", "q")
    assert r.rc == 0, r
    assert "NaN" not in r.stdout and "Infinity" not in r.stdout
    out = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert out["content"] == "hi" and (out["cost"] is None or math.isfinite(out["cost"]))


# -- forks and announcements ---------------------------------------------------------------


def test_fork_in_chat_copies_and_leaves_the_original(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("chat", "--session", "orig", input="one\n/fork branch\ntwo\n")
    assert r.rc == 0, r
    assert [m.content for m in stored("orig") if m.role == "user"] == ["one"]
    assert [m.content for m in stored("branch") if m.role == "user"] == ["one", "two"]
    assert bodies(server)[-1]["messages"][0] == {"role": "user", "content": "one"}


def test_continue_announces_the_conversation_by_name_or_first_words(
    server: fs.FakeServer,
) -> None:
    import os

    from tests.conftest import TEST_KEY, run_in_process

    environ = dict(os.environ, LLMOST_BASE_URL=server.base_url, LLMOST_API_KEY=TEST_KEY)

    def ask(*args: str) -> str:
        r = run_in_process(list(args), b"", environ, stderr_tty=True)
        assert r.rc == 0, r
        return r.stderr

    ask("ask", "How do I rebase onto main without losing work?")
    assert "continuing “How do I rebase onto main without losing work?”" in ask("ask", "-c", "x")
    ask("ask", "--session", "notes", "q")
    assert "continuing 'notes'" in ask("ask", "--session", "notes", "again")
