"""Compose text in the user's editor ($VISUAL, $EDITOR, else vi)."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from llmost_cli.errors import UsageError

if TYPE_CHECKING:
    from llmost_cli.ui.output import UI

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def edit_text(ui: UI, initial: str = "") -> str | None:
    """Open a temporary file (0600) in the editor; its text when the editor succeeds."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, name = tempfile.mkstemp(prefix="llmost-message-", suffix=".md")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(initial)
        try:
            done = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except FileNotFoundError:
            raise UsageError(f"editor {editor!r} not found", hint="set VISUAL or EDITOR") from None
        if done.returncode != 0:
            ui.warn(f"the editor exited with code {done.returncode}; nothing sent")
            return None
        if path.stat().st_size > MAX_MESSAGE_BYTES:
            raise UsageError("the message is larger than 8 MiB, the limit")
        return path.read_text(encoding="utf-8", errors="replace")
    finally:
        path.unlink(missing_ok=True)
