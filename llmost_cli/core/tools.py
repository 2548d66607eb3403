"""Local tools declared in the config file, and the bookkeeping of pending tool calls.

A declared tool is an argv list run without a shell, in the current directory, with the call's
arguments as JSON on stdin and a timeout; its stdout (truncated at ``MAX_OUTPUT``) is the result.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmost_cli.core.messages import Message
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
    output: str = ""  # what the tool printed (kept part), for the user to see


# Never handed to a tool: the key is the user's, not the model's (DESIGN §9).
SECRET_ENV = frozenset({"LLMOST_API_KEY"})
MAX_STDERR = 8 * 1024


def tool_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in SECRET_ENV}


def run_tool(tool: LocalTool, arguments: str, environ: Mapping[str, str] | None = None) -> ToolRun:
    """Run ``tool`` with ``arguments`` (a JSON string) on stdin; never raises for tool failures.

    The tool runs in its own process group, without the API key in its environment. It is done
    when its process exits: what it printed until then is its result (read up to a limit, the
    rest discarded unread into memory); children it left in the background keep running, but
    their output is no longer read. On timeout, or Ctrl-C, the whole group is killed.
    """
    env = tool_environment(os.environ if environ is None else environ)
    try:
        proc = subprocess.Popen(
            tool.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=os.getcwd(),
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError:
        return _failed(tool, f"command not found: {tool.command[0]}")
    except PermissionError:
        return _failed(tool, f"command not executable: {tool.command[0]}")
    except OSError as exc:
        return _failed(tool, f"cannot start {tool.command[0]}: {exc.strerror}")
    try:
        out, err, timed_out = _communicate(proc, arguments.encode("utf-8", "replace"), tool.timeout)
    except BaseException:
        _kill_group(proc)
        raise
    if timed_out:
        _kill_group(proc)
        return _failed(tool, f"timed out after {tool.timeout:g} s")
    if proc.returncode != 0:
        detail = err.kept.decode("utf-8", "replace").strip()[-2000:]
        return _failed(tool, f"exit code {proc.returncode}" + (f": {detail}" if detail else ""))
    content, note = truncate(out.kept, out.total)
    return ToolRun(content, ok=True, note=note, output=content)


class _Sink:
    """Keeps the first ``limit`` bytes of a stream and counts the rest without holding it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(data[:room])
            self.size += min(room, len(data))

    @property
    def kept(self) -> bytes:
        return b"".join(self.parts)


def _communicate(
    proc: subprocess.Popen[bytes], data: bytes, timeout: float
) -> tuple[_Sink, _Sink, bool]:
    """Feed stdin, read stdout/stderr within limits until the process exits or time runs out."""
    import selectors
    import time

    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = _Sink(MAX_OUTPUT + 1), _Sink(MAX_STDERR)
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    stdin_fd = proc.stdin.fileno()
    if data:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    view = memoryview(data)
    exited_at: float | None = None
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                return out, err, True
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.2:
                break  # exited; a background child may hold the pipes open: stop reading
            for key, _ in sel.select(timeout=min(0.1, deadline - now)):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        written = os.write(fd, view[:65536])
                    except (BrokenPipeError, BlockingIOError) as exc:
                        written = 0 if isinstance(exc, BlockingIOError) else len(view)
                    view = view[written:]
                    if not view:
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if chunk:
                    streams[fd].add(chunk)
                else:
                    sel.unregister(fd)
        remaining = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            return out, err, True
        return out, err, False
    finally:
        sel.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    import signal

    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _failed(tool: LocalTool, why: str) -> ToolRun:
    return ToolRun(
        f"error: tool {tool.name} failed: {why}", ok=False, note=f"tool {tool.name} failed: {why}"
    )


def truncate(raw: bytes, total: int | None = None) -> tuple[str, str | None]:
    total = len(raw) if total is None else total
    if total <= MAX_OUTPUT:
        return raw.decode("utf-8", "replace"), None
    kept = raw[:MAX_OUTPUT].decode("utf-8", "ignore")
    note = f"output truncated to {MAX_OUTPUT // 1024} KiB of {total} bytes"
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


def tool_result_messages(
    history: Sequence[Message], items: Sequence[str], stdin: Callable[[], str] | None = None
) -> list[Message]:
    """``--tool-result ID=VALUE`` items as ``tool`` messages answering the pending calls."""
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
        results[call_id] = _result_value(value, stdin)
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


def _result_value(value: str, stdin: Callable[[], str] | None) -> str:
    if value == "-":
        return stdin() if stdin is not None else ""
    if value.startswith("@") and len(value) > 1:
        from llmost_cli.core.inputs import read_text_arg

        return read_text_arg(value, "--tool-result")
    return value


def runnable(calls: Sequence[ToolCall], tools: Mapping[str, LocalTool]) -> bool:
    return bool(calls) and all(call.name in tools for call in calls)


def result_message(call: ToolCall, run: ToolRun) -> Message:
    return Message(role="tool", content=run.content, tool_call_id=call.id, name=call.name)
