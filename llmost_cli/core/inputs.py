"""What the user brings to a turn: prompt words, standard input, images and ``@file`` text.

Every read has a limit checked before the bytes are held: ``read(limit + 1)`` and refuse when
the extra byte arrives (``stat`` is no limit: FIFOs, ``/dev/zero`` and growing files lie).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from llmost_cli.errors import UsageError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_STDIN_BYTES = 64 * 1024 * 1024
MAX_TEXT_FILE_BYTES = 8 * 1024 * 1024  # -s @file, --schema FILE, --tools FILE, @file values

# Magic numbers of the formats the API accepts (llmost-api.md §2.2).
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def size_text(n: int) -> str:
    """A byte count as people read it: 512 bytes, 3.4 KiB, 20 MiB, 20.03 MiB."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB".replace(".0 ", " ")
    mib = n / (1024 * 1024)
    return f"{mib:.0f} MiB" if mib.is_integer() else f"{mib:.2f} MiB"


class TooLarge(Exception):
    """More than the limit arrived; nothing past limit + 1 bytes was read."""


def read_limited(stream: IO[bytes], limit: int) -> bytes:
    """Read to the end, but never hold more than ``limit + 1`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(1024 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge()


def read_file_limited(path: Path, limit: int, what: str) -> bytes:
    """A file's bytes, or a UsageError that names it and what is wrong."""
    try:
        if path.is_dir():
            raise UsageError(f"{what} {path} is a directory")
        with path.open("rb") as fh:
            return read_limited(fh, limit)
    except TooLarge:
        size = _regular_size(path)
        actual = f"is {size_text(size)}" if size is not None and size > limit else "is larger"
        raise UsageError(
            f"{what} {path} {actual}; the limit is {size_text(limit)}",
            hint="send a smaller file",
        ) from None
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{what} {path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None


def _regular_size(path: Path) -> int | None:
    try:
        st = path.stat()
    except OSError:
        return None
    import stat

    return st.st_size if stat.S_ISREG(st.st_mode) else None


def sniff_image_type(head: bytes) -> str | None:
    for signature, mime in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_url(spec: str) -> str:
    """An ``--image`` as the URL to send: http(s) passes through, a file becomes a data URL."""
    if spec.startswith(("http://", "https://", "data:image/")):
        return spec
    path = Path(spec).expanduser()
    data = read_file_limited(path, MAX_IMAGE_BYTES, "image")
    mime = sniff_image_type(data[:16])
    if mime is None:
        raise UsageError(f"image {spec} is not a PNG, JPEG, GIF or WebP image")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def decode_text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not UTF-8 text") from None


def read_text_arg(value: str, what: str) -> str:
    """``@path`` reads a file; anything else is literal."""
    if not value.startswith("@") or value == "@":
        return value
    path = Path(value[1:]).expanduser()
    return decode_text(read_file_limited(path, MAX_TEXT_FILE_BYTES, f"{what} file"), f"{path}")


@dataclass
class StdinText:
    text: str
    replaced: bool = False  # invalid UTF-8 was replaced with U+FFFD


def read_stdin(stream: IO[bytes], limit: int = MAX_STDIN_BYTES) -> StdinText:
    """Standard input to the end, within ``limit``; invalid UTF-8 is replaced (and said)."""
    try:
        raw = read_limited(stream, limit)
    except TooLarge:
        raise UsageError(
            f"standard input is larger than {size_text(limit)}, the limit",
            hint="send a smaller excerpt, or attach a file with -f",
        ) from None
    return decode_stdin(raw)


def decode_stdin(raw: bytes) -> StdinText:
    try:
        return StdinText(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return StdinText(raw.decode("utf-8", errors="replace"), replaced=True)


def combine_prompt(words: Sequence[str], stdin_text: str | None) -> str:
    """PROMPT words joined by spaces, a blank line, then stdin (DESIGN.md §1)."""
    prompt = " ".join(words)
    if stdin_text:
        return f"{prompt}\n\n{stdin_text}" if prompt else stdin_text
    return prompt


def user_content(text: str, images: Sequence[str]) -> str | list[dict[str, Any]]:
    if not images:
        return text
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"type": "text", "text": text})
    parts.extend({"type": "image_url", "image_url": {"url": url}} for url in images)
    return parts
