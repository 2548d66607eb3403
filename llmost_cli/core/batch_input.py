"""``batch`` input: JSONL lines, read lazily, checked line by line.

The file is read twice, a line at a time, and never held: a first pass checks every line and
every id before anything is sent; the run reads it again. Standard input (``-``) and other
files that cannot be read twice (a FIFO, ``<(cmd)``) are first copied to an unnamed temporary
file, which costs disk, not memory.

A line is one of::

    "a bare JSON string"                      its id is its line number
    {"id": "q1", "prompt": "..."}             id: a string or an integer; default: line number
    {"id": 7, "messages": [{"role": "user", "content": "..."}]}

and may set ``model``, ``system`` and the sampling parameters of ``params.SAMPLING``, checked
by the same table as the flags. Blank lines are skipped; line numbers count every line.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from llmost_cli.core import params
from llmost_cli.core.messages import Message
from llmost_cli.errors import UsageError

MAX_LINE_BYTES = 64 * 1024 * 1024  # one input line (images as data URLs can be large)
ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name"})
LINE_KEYS = frozenset({"id", "prompt", "messages", "model", "system", *params.SAMPLING})

LineId = str | int


@dataclass(frozen=True)
class Line:
    """One checked input line."""

    lineno: int
    id: LineId
    prompt: str | None = None
    messages: tuple[Message, ...] = ()
    system: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)  # model and sampling, checked


@dataclass(frozen=True)
class BadLine:
    """A line that cannot be run; with ``--skip-invalid`` it is written as a failed line."""

    lineno: int
    id: LineId
    error: UsageError


def id_key(value: LineId) -> int:
    """A compact key for an id (``3`` and ``"3"`` differ). Ids are kept as these 64-bit hashes
    only, so the sets of ids cost the same whatever the ids look like."""
    return hash(json.dumps(value, ensure_ascii=False))


class InputFile:
    """The INPUT of a batch, readable several times from the start (not concurrently)."""

    def __init__(self, spec: str, stdin: IO[bytes] | None) -> None:
        self.name = "standard input" if spec == "-" else spec
        self._file: BinaryIO = _open(spec, stdin)

    def close(self) -> None:
        self._file.close()

    def raw_lines(self) -> Iterator[tuple[int, bytes | None]]:
        """``(line number, bytes without the line break)`` of every non-blank line; ``None``
        for a line longer than MAX_LINE_BYTES (skipped, never held)."""
        f = self._file
        f.seek(0)
        lineno = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(1024 * 1024)
                yield lineno, None
                continue
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield lineno, raw

    def lines(self) -> Iterator[Line | BadLine]:
        for lineno, raw in self.raw_lines():
            yield parse_line(lineno, raw)


def _open(spec: str, stdin: IO[bytes] | None) -> BinaryIO:
    if spec == "-":
        if stdin is None:
            raise UsageError("INPUT is '-' but there is no standard input")
        return _spool(stdin)
    try:
        f = open(spec, "rb")  # noqa: SIM115  # kept open for both passes, closed by close()
    except FileNotFoundError:
        raise UsageError(f"INPUT {spec}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"INPUT {spec} is a directory") from None
    except PermissionError:
        raise UsageError(f"INPUT {spec}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"INPUT {spec}: cannot read it ({exc.strerror})") from None
    if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        return f
    with f:  # a FIFO or a device: read once, into a file that can be read twice
        return _spool(f)


def _spool(source: IO[bytes]) -> BinaryIO:
    spool = tempfile.TemporaryFile(prefix="llmost-batch-")  # noqa: SIM115
    try:
        shutil.copyfileobj(source, spool, 1024 * 1024)
    except OSError as exc:
        spool.close()
        raise UsageError(f"cannot copy the input to a temporary file ({exc.strerror})") from None
    return spool


def parse_line(lineno: int, raw: bytes | None) -> Line | BadLine:
    where = f"input line {lineno}"
    if raw is None:
        size = MAX_LINE_BYTES // (1024 * 1024)
        return BadLine(lineno, lineno, UsageError(f"{where} is longer than {size} MiB"))
    value: Any = None
    try:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{where} is not valid UTF-8") from None
        try:
            value = params.loads_strict(text, where)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{where} is not valid JSON: {exc.msg} at column {exc.colno}"
            ) from None
        return _line(lineno, value, where)
    except UsageError as exc:
        return BadLine(lineno, _id_of(value, lineno), exc)


def _id_of(value: Any, lineno: int) -> LineId:
    line_id = value.get("id") if isinstance(value, dict) else None
    return line_id if isinstance(line_id, str | int) and _valid_id(line_id) else lineno


def _valid_id(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _line(lineno: int, value: Any, where: str) -> Line:
    if isinstance(value, str):
        if not value.strip():
            raise UsageError(f"{where}: the prompt is empty")
        return Line(lineno, lineno, prompt=value)
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a JSON object or a string")
    unknown = sorted(set(value) - LINE_KEYS)
    if unknown:
        known = ", ".join(sorted(LINE_KEYS))
        raise UsageError(f"{where}: unknown key {params.shown(unknown[0])} (known: {known})")
    line_id = value.get("id", lineno)
    if not _valid_id(line_id):
        raise UsageError(f"{where}: id must be a non-empty string or an integer")
    has_prompt, has_messages = "prompt" in value, "messages" in value
    if has_prompt == has_messages:
        raise UsageError(f"{where} needs either prompt or messages (exactly one)")
    prompt = value.get("prompt")
    if has_prompt and (not isinstance(prompt, str) or not prompt.strip()):
        raise UsageError(f"{where}: prompt must be a non-empty string")
    messages = _messages(value["messages"], where) if has_messages else ()
    system = value.get("system")
    if system is not None and not isinstance(system, str):
        raise UsageError(f"{where}: system must be a string")
    overrides: dict[str, Any] = {}
    for key in ("model", *params.SAMPLING):
        if key in value and value[key] is not None:
            overrides[key] = params.check(key, value[key], source=f"{where}: {key}")
    if "model" in overrides and not overrides["model"].strip():
        raise UsageError(f"{where}: model must not be empty")
    return Line(lineno, line_id, prompt, messages, system or None, overrides)


def _messages(value: Any, where: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where}: messages must be a non-empty list")
    out = tuple(_message(item, f"{where}: messages[{i}]") for i, item in enumerate(value))
    if all(m.role == "system" for m in out):
        raise UsageError(f"{where}: messages holds only system messages")
    return out


def _message(item: Any, where: str) -> Message:
    if not isinstance(item, dict):
        raise UsageError(f"{where} must be an object")
    unknown = sorted(set(item) - MESSAGE_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {params.shown(unknown[0])}")
    role = item.get("role")
    if role not in ROLES:
        raise UsageError(f"{where}: role must be one of {', '.join(ROLES)}")
    content = item.get("content")
    parts_ok = isinstance(content, list) and all(isinstance(p, dict) for p in content)
    if content is not None and not isinstance(content, str) and not parts_ok:
        raise UsageError(f"{where}: content must be a string or a list of parts")
    calls = item.get("tool_calls")
    if calls is not None:
        good = isinstance(calls, list) and all(
            isinstance(c, dict) and isinstance(c.get("function", {}), dict) for c in calls
        )
        if not good or role != "assistant":
            raise UsageError(f"{where}: tool_calls must be a list of calls, on an assistant")
    for key in ("tool_call_id", "name"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise UsageError(f"{where}: {key} must be a string")
    return Message(
        role=role,
        content=content,
        tool_calls=calls,
        tool_call_id=item.get("tool_call_id"),
        name=item.get("name"),
    )
