"""The one choke point for text bound to a terminal (DESIGN.md §2 and §9, STYLE.md 21).

Everything the server or the model sends is untrusted. Before such text reaches a terminal,
``escape`` makes every character that could drive the terminal visible instead:

* C0 controls other than newline and tab (``\\x00``-``\\x1f``) and DEL become their Unicode
  control pictures: ESC is ``␛``, a carriage return ``␍``, BEL ``␇``, DEL ``␡``. A carriage
  return directly before a newline is a line ending and is kept.
* C1 controls (``\\x80``-``\\x9f``, among them the one-byte CSI ``\\x9b``, OSC ``\\x9d``, DCS
  ``\\x90``, ST ``\\x9c``) are written as the four characters ``\\x9b``.
* Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
  make text read in another order than it is stored, are written as ``\\u202e``.

An escape sequence (CSI ``ESC [``, OSC ``ESC ]`` with OSC 0 titles, OSC 8 links and OSC 52
clipboard writes, DCS ``ESC P``, APC, PM, SOS, two-character ``ESC x`` sequences) cannot start
without ESC or a C1 introducer, so once its introducer is shown it is plain, visible text:
``\\x1b]52;c;aGk=\\x07`` prints as ``␛]52;c;aGk=␇``. This needs no parser and no state, so a
sequence cut between two streamed chunks is escaped just as well, and the cost is one
precompiled regular expression over the text (text without such characters is returned as
is, without a per-character Python loop).

The piped answer bypasses this on purpose: piped stdout is byte-exact (the user's choice).
"""

from __future__ import annotations

import re

__all__ = ["StreamEscaper", "escape", "escape_lines"]

_TABLE: dict[str, str] = {chr(c): chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_TABLE["\x7f"] = "\u2421"  # ␡
_TABLE.update({chr(c): f"\\x{c:02x}" for c in range(0x80, 0xA0)})
_TABLE.update({chr(c): f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})

# A carriage return is shown unless a newline follows (then it is half of a line ending).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|\r(?!\n)")
_SUB = _UNSAFE.sub


def _visible(match: re.Match[str]) -> str:
    return _TABLE[match.group()]


def escape(text: str) -> str:
    """``text`` with every terminal control made visible; newline and tab are kept."""
    return _SUB(_visible, text)


def escape_lines(text: str) -> str:
    """``escape`` joined into one line: a line break of any kind becomes a space."""
    return " ".join(escape(text).splitlines())


class StreamEscaper:
    """``escape`` over a stream of chunks.

    A carriage return at the end of one chunk may be the first half of a ``\\r\\n`` split
    across two chunks: it is held back until the next chunk shows which.
    """

    def __init__(self) -> None:
        self._cr = False

    def feed(self, text: str) -> str:
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r"):
            self._cr = True
            text = text[:-1]
        return escape(text)

    def close(self) -> str:
        """What is still held back (a final carriage return, shown)."""
        if self._cr:
            self._cr = False
            return _TABLE["\r"]
        return ""
