"""Local tools declared in the config file, and the bookkeeping of pending tool calls.

A declared tool is an argv list run without a shell, in the current directory, with the call's
arguments as JSON on stdin and a timeout; its stdout (truncated at ``MAX_OUTPUT``) is the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmost_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from llmost_cli.core.messages import Message, ToolCall

MAX_OUTPUT = 16 * 1024  # bytes of a tool's stdout sent back to the model
DEFAULT_TIMEOUT = 30.0
DEFAULT_ROUNDS = 8
_TOOL_KEYS = {"description", "command", "parameters", "timeout"}


@dataclass(frozen=True)
class LocalTool:
    name: str
    command: list[str]
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT

    def definition(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters or {"type": "object", "properties": {}},
            },
        }


def declared_tools(tables: dict[str, Any]) -> dict[str, LocalTool]:
    """The ``[tools.NAME]`` tables of the config file, checked."""
    tools: dict[str, LocalTool] = {}
    for name, table in tables.items():
        where = f"[tools.{name}]"
        unknown = set(table) - _TOOL_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        command = table.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) for a in command)
        ):
            raise ConfigError(f'{where}: command must be a list of strings, e.g. ["cmd", "--json"]')
        parameters = table.get("parameters", {})
        if not isinstance(parameters, dict):
            raise ConfigError(f"{where}: parameters must be a table (a JSON schema)")
        timeout = table.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"{where}: timeout must be a positive number of seconds")
        tools[name] = LocalTool(
            name=name,
            command=list(command),
            description=str(table.get("description", "")),
            parameters=parameters,
            timeout=float(timeout),
        )
    return tools


@dataclass
class ToolRun:
    content: str  # what the model receives
    ok: bool
    note: str | None = None  # for stderr


def run_tool(tool: LocalTool, arguments: str) -> ToolRun:
    """Run ``tool`` with ``arguments`` (a JSON string) on stdin; never raises for tool failures."""
    try:
        proc = subprocess.run(
            tool.command,
            input=arguments.encode("utf-8", "surrogateescape"),
            capture_output=True,
            timeout=tool.timeout,
            cwd=os.getcwd(),
            check=False,
        )
    except FileNotFoundError:
        return _failed(tool, f"command not found: {tool.command[0]}")
    except PermissionError:
        return _failed(tool, f"command not executable: {tool.command[0]}")
    except subprocess.TimeoutExpired:
        return _failed(tool, f"timed out after {tool.timeout:g} s")
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
        return _failed(tool, f"exit code {proc.returncode}" + (f": {detail}" if detail else ""))
    content, note = truncate(proc.stdout)
    return ToolRun(content, ok=True, note=note)


def _failed(tool: LocalTool, why: str) -> ToolRun:
    return ToolRun(
        f"error: tool {tool.name} failed: {why}", ok=False, note=f"tool {tool.name} failed: {why}"
    )


def truncate(raw: bytes) -> tuple[str, str | None]:
    if len(raw) <= MAX_OUTPUT:
        return raw.decode("utf-8", "replace"), None
    kept = raw[:MAX_OUTPUT].decode("utf-8", "ignore")
    note = f"output truncated to {MAX_OUTPUT // 1024} KiB of {len(raw)} bytes"
    return f"{kept}\n[{note}]", note


def pending_calls(history: Sequence[Message]) -> list[dict[str, Any]]:
    """Tool calls of the last assistant message that no ``tool`` message has answered yet."""
    for i in range(len(history) - 1, -1, -1):
        message = history[i]
        if message.role == "assistant" and message.tool_calls:
            answered = {m.tool_call_id for m in history[i + 1 :] if m.role == "tool"}
            return [c for c in message.tool_calls if c.get("id") not in answered]
        if message.role == "user":
            break
    return []


def tool_result_messages(history: Sequence[Message], items: Sequence[str]) -> list[Message]:
    """``--tool-result ID=VALUE`` items as ``tool`` messages answering the pending calls."""
    from llmost_cli.core.messages import Message

    pending = {str(c.get("id")): c for c in pending_calls(history)}
    if not pending:
        raise UsageError("--tool-result: the conversation has no pending tool calls")
    results: dict[str, str] = {}
    for item in items:
        call_id, sep, value = item.partition("=")
        if not sep or not call_id:
            raise UsageError(f"--tool-result expects ID=VALUE, got {item!r}")
        if call_id not in pending:
            known = ", ".join(pending)
            raise UsageError(f"--tool-result: {call_id!r} is not a pending tool call ({known})")
        if call_id in results:
            raise UsageError(f"--tool-result: {call_id!r} given twice")
        results[call_id] = _result_value(value)
    missing = [cid for cid in pending if cid not in results]
    if missing:
        raise UsageError(
            f"--tool-result: no result for {', '.join(missing)}",
            hint="every pending call needs one",
        )
    return [
        Message(
            role="tool",
            content=results[cid],
            tool_call_id=cid,
            name=str(pending[cid].get("function", {}).get("name") or "") or None,
        )
        for cid in pending
    ]


def _result_value(value: str) -> str:
    if value == "-":
        return sys.stdin.read() if sys.stdin is not None else ""
    if value.startswith("@") and len(value) > 1:
        path = Path(value[1:]).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--tool-result: cannot read {path}: {exc}") from None
    return value


def runnable(calls: Sequence[ToolCall], tools: dict[str, LocalTool]) -> bool:
    return bool(calls) and all(call.name in tools for call in calls)


def result_message(call: ToolCall, run: ToolRun) -> Message:
    from llmost_cli.core.messages import Message

    return Message(role="tool", content=run.content, tool_call_id=call.id, name=call.name)
