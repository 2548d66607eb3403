"""``batch`` output: one JSON line per input line, each written whole, and ``--resume``.

Every line is encoded first and written with one ``write`` on a file opened ``O_APPEND`` (or
one write and a flush on standard output), so a process killed at any moment leaves complete
lines, plus at most a torn last line when a write was cut short (a full disk). ``--resume``
reads the ids of the complete lines and cuts such a torn tail off before appending.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from llmost_cli.core.ask import finite
from llmost_cli.core.batch_input import LineId, id_key
from llmost_cli.errors import LlmostError, OutputClosed, UsageError

# Characters that Python's str.splitlines() (and JavaScript) take as line breaks but JSON
# leaves raw: NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR.
_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")
FIELDS = ("id", "model", "content", "finish_reason", "tool_calls", "usage", "cost", "error")


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def record(
    line_id: LineId, fields: dict[str, Any] | None = None, error: LlmostError | None = None
) -> bytes:
    """The output line: the fields of ``ask -o json`` (DESIGN §4) with the input line's id,
    and ``error`` null or ``{"code", "message"}``. Strict JSON, one line, newline-terminated."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    out["tool_calls"] = []
    out.update(fields or {})
    out["id"] = line_id
    out["error"] = None if error is None else {"code": error.code, "message": str(error)}
    text = json.dumps(finite(out), ensure_ascii=False, allow_nan=False)
    if _LINE_BREAKS.search(text):  # only inside strings: escaped, so every reader sees one line
        text = _LINE_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8", "replace") + b"\n"


def _unwritable(name: str, reason: str) -> OutputClosed:
    error = OutputClosed(reason)  # exit 74
    error.message = f"cannot write {name}: {reason}"
    return error


class FileSink:
    """OUTPUT opened for appending; a line is one ``write`` (repeated only if the kernel took
    part of it, which for a regular file means the disk is full)."""

    def __init__(self, path: str, truncate_to: int | None = None) -> None:
        self.name = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            if truncate_to is not None:
                os.ftruncate(self._fd, truncate_to)
        except OSError as exc:
            raise _unwritable(path, exc.strerror or str(exc)) from None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise _unwritable(self.name, exc.strerror or str(exc)) from None

    def close(self) -> None:
        os.close(self._fd)


class StreamSink:
    """Standard output: one write and a flush per line."""

    def __init__(self, out: BinaryIO | None) -> None:
        self._out = out

    def write(self, data: bytes) -> None:
        if self._out is None:
            raise OutputClosed("standard output is closed")
        try:
            self._out.write(data)
            self._out.flush()
        except BrokenPipeError:
            raise OutputClosed() from None  # the reader went away (`| head`): stop quietly
        except (OSError, ValueError) as exc:
            raise OutputClosed(getattr(exc, "strerror", None) or "it is closed") from None

    def close(self) -> None:
        pass


@dataclass
class Previous:
    """What ``--resume`` found in OUTPUT."""

    ids: set[int] = field(default_factory=set)  # id_key of every complete line
    lines: int = 0
    truncate_to: int | None = None  # cut a torn last line off here before appending
    torn_bytes: int = 0


def check_new_output(path: str) -> None:
    """Without ``--resume`` a non-empty regular OUTPUT is not overwritten: it holds answers
    that were paid for."""
    try:
        st = os.stat(path)
    except OSError:
        return
    import stat

    if stat.S_ISREG(st.st_mode) and st.st_size > 0:
        raise UsageError(
            f"OUTPUT {path} already holds lines",
            hint="add --resume to run only the lines it lacks, or remove it",
        )


def read_previous(path: str) -> Previous:
    """The ids of the complete lines of OUTPUT, and where a torn last line starts."""
    found = Previous()
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return found
    except OSError as exc:
        raise _unwritable(path, exc.strerror or str(exc)) from None
    with f:
        end = 0
        for raw in f:
            if not raw.endswith(b"\n"):
                found.truncate_to, found.torn_bytes = end, len(raw)
                break
            end += len(raw)
            found.lines += 1
            if raw.strip():
                found.ids.add(id_key(_line_id(raw, path, found.lines)))
    return found


def _line_id(raw: bytes, path: str, lineno: int) -> LineId:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    line_id = value.get("id") if isinstance(value, dict) else None
    if not isinstance(line_id, str | int) or isinstance(line_id, bool):
        raise UsageError(
            f"OUTPUT {path} line {lineno} is not a line written by llmost batch; "
            "not appending to it",
            hint="give another -o OUTPUT",
        )
    return line_id
