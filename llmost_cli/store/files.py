"""Files that hold conversations outside the store: exports and the files that are imported.

An export is written whole or not at all (a temporary file beside it, then renamed), with mode
0600 like the store, unless the file already exists: then it keeps its mode. A symlink is
written through; a path that is not a regular file (``/dev/stdout``, a FIFO) is written
directly.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from llmost_cli.errors import UsageError


def write(path: Path, chunks: Iterable[str]) -> None:
    """Write the text of ``chunks`` (UTF-8) to ``path``; a usage error when it cannot be."""
    target = path.resolve()
    try:
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o600
        if target.exists() and not target.is_file():
            with open(target, "wb") as out:
                for chunk in chunks:
                    out.write(chunk.encode("utf-8", "surrogateescape"))
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _cannot("write", path, exc) from None
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            for chunk in chunks:
                out.write(chunk.encode("utf-8", "surrogateescape"))
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot("write", path, exc) from None
        raise


def read(name: str, stdin: bytes | None = None) -> str:
    """The text of file ``name`` (``-``: ``stdin``, already read); UTF-8 or a usage error."""
    try:
        data = stdin if name == "-" and stdin is not None else Path(name).read_bytes()
    except OSError as exc:
        raise _cannot("read", Path(name), exc) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text (byte {exc.start})") from None


def _cannot(verb: str, path: Path, exc: OSError) -> UsageError:
    return UsageError(f"cannot {verb} {path}: {exc.strerror or exc}")
