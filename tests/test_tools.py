"""Local tool declarations, runs and pending-call bookkeeping."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from llmost_cli.core import tools
from llmost_cli.core.messages import Message, ToolCall
from llmost_cli.errors import ConfigError, UsageError


def call(cid: str, name: str = "f") -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": "{}"}}


def test_declared_tools_defaults_and_definition() -> None:
    found = tools.declared_tools({"w": {"command": ["w", "--json"], "description": "d"}})
    tool = found["w"]
    assert (tool.command, tool.timeout) == (["w", "--json"], tools.DEFAULT_TIMEOUT)
    assert tool.definition()["function"] == {
        "name": "w",
        "description": "d",
        "parameters": {"type": "object", "properties": {}},
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"command": "w"}, "command must be a list"),
        ({"command": []}, "command must be a list"),
        ({"command": ["w"], "timeout": 0}, "timeout must be a positive"),
        ({"command": ["w"], "parameters": "x"}, "parameters must be a table"),
        ({"command": ["w"], "shell": True}, "unknown key 'shell'"),
    ],
)
def test_declared_tools_invalid(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tools.declared_tools({"w": table})


def test_run_tool_passes_arguments_on_stdin_without_shell() -> None:
    tool = tools.LocalTool("t", [sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"])
    run = tools.run_tool(tool, '{"a": "$HOME"}')
    assert (run.ok, run.content) == (True, '}"EMOH$" :"a"{\n')


def test_run_tool_missing_command() -> None:
    run = tools.run_tool(tools.LocalTool("t", ["/nonexistent/tool"]), "{}")
    assert not run.ok and "command not found" in run.content


def test_truncate() -> None:
    assert tools.truncate(b"short") == ("short", None)
    text, note = tools.truncate("ж".encode() * tools.MAX_OUTPUT)
    assert note is not None and text.endswith(f"[{note}]")
    assert len(text.encode()) <= tools.MAX_OUTPUT + 100


def test_pending_calls() -> None:
    history = [
        Message(role="user", content="q"),
        Message(role="assistant", content=None, tool_calls=[call("a"), call("b")]),
        Message(role="tool", content="1", tool_call_id="a"),
    ]
    assert [c["id"] for c in tools.pending_calls(history)] == ["b"]
    assert tools.pending_calls([*history, Message(role="user", content="next")]) == []
    assert tools.pending_calls([]) == []


def test_tool_result_messages_need_every_pending_call() -> None:
    history = [Message(role="assistant", content=None, tool_calls=[call("a"), call("b", "g")])]
    with pytest.raises(UsageError, match="no result for b"):
        tools.tool_result_messages(history, ["a=1"])
    msgs = tools.tool_result_messages(history, ["b=2", "a=x=y"])
    assert [(m.tool_call_id, m.content, m.name) for m in msgs] == [
        ("a", "x=y", "f"),
        ("b", "2", "g"),
    ]
    with pytest.raises(UsageError, match="given twice"):
        tools.tool_result_messages(history, ["a=1", "a=2", "b=3"])


def test_runnable() -> None:
    local = tools.declared_tools({"f": {"command": ["f"]}})
    assert tools.runnable([ToolCall("1", "f", "{}")], local)
    assert not tools.runnable([ToolCall("1", "f", "{}"), ToolCall("2", "g", "{}")], local)
    assert not tools.runnable([], local)
