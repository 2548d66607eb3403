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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO


def _isatty(stream: object) -> bool:
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (ValueError, OSError):  # closed or unusable
        return False


@dataclass
class Environment:
    """Where input comes from and output goes, decided once per run."""

    stdin: BinaryIO | None
    stdout: BinaryIO | None
    stderr: TextIO
    stdin_isatty: bool = False
    stdout_isatty: bool = False
    stderr_isatty: bool = False
    environ: Mapping[str, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic

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

    def flag(self, name: str) -> bool:
        """An environment variable that is set to something other than "" or "0"."""
        return self.environ.get(name, "") not in ("", "0")

    @property
    def no_color(self) -> bool:
        return self.environ.get("NO_COLOR", "") != ""
