"""Environment: the process's streams, what they are connected to, and its variables.

Built once in ``main`` (httpie's ``Environment``) and passed down; no other module touches
``sys.stdin``/``sys.stdout``/``sys.stderr`` or reads ``os.environ`` for behaviour. Tests build
one over byte buffers and run ``llmost`` in-process.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import BinaryIO, TextIO


def _isatty(stream: object) -> bool:
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (ValueError, OSError):  # closed or unusable
        return False


class Environment:
    """Where input comes from and output goes, decided once per run.

    A plain class, not a dataclass: ``llmost --version`` builds one, and importing
    ``dataclasses`` (with ``inspect``) was most of its own start-up time.
    """

    def __init__(
        self,
        stdin: BinaryIO | None,
        stdout: BinaryIO | None,
        stderr: TextIO,
        stdin_isatty: bool = False,
        stdout_isatty: bool = False,
        stderr_isatty: bool = False,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.stdin_isatty = stdin_isatty
        self.stdout_isatty = stdout_isatty
        self.stderr_isatty = stderr_isatty
        self.environ: Mapping[str, str] = {} if environ is None else environ
        self.sleep = sleep
        self.monotonic = monotonic

    def __repr__(self) -> str:
        ttys = (self.stdin_isatty, self.stdout_isatty, self.stderr_isatty)
        return f"Environment(stdin={self.stdin!r}, stdout={self.stdout!r}, ttys={ttys})"

    @classmethod
    def from_system(cls) -> Environment:
        stdin = getattr(sys.stdin, "buffer", None) if sys.stdin is not None else None
        stdout = getattr(sys.stdout, "buffer", None) if sys.stdout is not None else None
        stderr: TextIO = sys.stderr if sys.stderr is not None else io.StringIO()
        return cls(
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            stdin_isatty=_isatty(sys.stdin),
            stdout_isatty=_isatty(sys.stdout),
            stderr_isatty=_isatty(sys.stderr),
            environ=os.environ,
        )

    @contextmanager
    def as_sys_streams(self) -> Iterator[None]:
        """``sys.stdout``/``sys.stderr`` pointed at this environment's streams, for libraries
        that print on their own (click's help). The streams of the process are restored."""
        saved = sys.stdout, sys.stderr
        sys.stdout = _TextStream(self.stdout, self.stdout_isatty)
        sys.stderr = self.stderr
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved

    def flag(self, name: str) -> bool:
        """An environment variable that is set to something other than "" or "0"."""
        return self.environ.get(name, "") not in ("", "0")

    @property
    def no_color(self) -> bool:
        return self.environ.get("NO_COLOR", "") != ""


class _TextStream(io.TextIOBase):
    """Text written straight through to a binary stream (which may be None: closed)."""

    def __init__(self, raw: BinaryIO | None, tty: bool) -> None:
        self._raw = raw
        self._tty = tty

    def write(self, text: str) -> int:
        if self._raw is not None:
            self._raw.write(text.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        if self._raw is not None:
            self._raw.flush()

    def isatty(self) -> bool:
        return self._tty
