"""What the user brings to a turn: prompt words, standard input, images, ``@file`` text, and the
``messages`` array built from them."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmost_cli.errors import UsageError

if TYPE_CHECKING:
    from llmost_cli.core.messages import Message

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_STDIN_BYTES = 64 * 1024 * 1024

# Magic numbers of the formats the API accepts (llmost-api.md §2.2).
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


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
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise UsageError(f"image {spec}: is a directory")
        if size > MAX_IMAGE_BYTES:
            raise UsageError(
                f"image {spec} is {_mib(size)}; the limit is {_mib(MAX_IMAGE_BYTES)}",
                hint="resize or compress it first",
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"image {spec}: no such file") from None
    except PermissionError:
        raise UsageError(f"image {spec}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"image {spec}: cannot read it ({exc.strerror})") from None
    mime = sniff_image_type(data[:16])
    if mime is None:
        raise UsageError(f"image {spec} is not a PNG, JPEG, GIF or WebP image")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def read_text_arg(value: str, what: str) -> str:
    """``@path`` reads a file (``@-`` is stdin is not supported here); anything else is literal."""
    if not value.startswith("@") or value == "@":
        return value
    path = Path(value[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} file {path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{what} file {path}: cannot read it ({exc.strerror})") from None


@dataclass
class StdinText:
    text: str
    replaced: bool = False  # invalid UTF-8 was replaced with U+FFFD


def decode_stdin(raw: bytes) -> StdinText:
    if len(raw) > MAX_STDIN_BYTES:
        raise UsageError(
            f"standard input is {_mib(len(raw))}; the limit is {_mib(MAX_STDIN_BYTES)}",
            hint="send a smaller excerpt",
        )
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


def build_messages(
    history: Sequence[Message],
    *,
    system: str | None,
    new: Sequence[dict[str, Any]] = (),
    prefill: str | None = None,
) -> list[dict[str, Any]]:
    """The ``messages`` array: system, earlier turns, the new turn, then the prefill.

    A system prompt given for this turn replaces the one stored with the history.
    """
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    for message in history:
        if message.role == "system" and system:
            continue
        messages.append(message.to_api())
    messages.extend(new)
    if prefill:
        messages.append({"role": "assistant", "content": prefill})
    return messages
