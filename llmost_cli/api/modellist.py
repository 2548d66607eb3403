"""The model list read as it arrives: one entry of ``{"data": [...]}`` at a time.

Parsed whole, a 128 MiB list costs gigabytes of Python objects (a hostile one: ``[],`` is 3
bytes of text and 56 of list). Here the body is decoded piece by piece and each value is
parsed on its own with the C decoder (``raw_decode``), handed on and dropped, so memory holds
one entry (at most MODEL_ENTRY_LIMIT bytes of text, twice while it grows) plus whatever the
caller keeps. Values get the same treatment as :func:`safejson.loads`: nesting is bounded,
lone surrogates and non-finite numbers are cleaned.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from llmost_cli.api import safejson
from llmost_cli.api.limits import MAX_JSON_DEPTH, MODEL_ENTRY_LIMIT, size
from llmost_cli.errors import APIError

_SPACE = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile(r"\\u[dD]")  # only such an escape can make a lone surrogate
# An entry sits two levels down ({"data": [entry]}), so the whole list stays within the limit.
ENTRY_DEPTH = MAX_JSON_DEPTH - 2


class NotAList(APIError):
    def __init__(self) -> None:
        super().__init__("the server's answer to GET /models is not a model list")


class _Text:
    """The body as text, decoded piece by piece; ``pos`` is the next unread character."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _more(self) -> None:
        piece = next(self._pieces, None)
        if piece is None:
            self.eof = True
            tail = self._decoder.decode(b"", final=True)
        else:
            tail = self._decoder.decode(piece)
        self.buf = self.buf[self.pos :] + tail  # what was parsed is dropped
        self.pos = 0

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the body)."""
        while True:
            match = _SPACE.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof:
                return ""
            self._more()

    def take(self, char: str) -> None:
        if self.peek() != char:
            found = self.buf[self.pos : self.pos + 20] or "the end of the body"
            raise safejson.Rejected(f"expected {char!r} at {found!r}")
        self.pos += 1

    def value(self) -> Any:
        """The next JSON value, of at most MODEL_ENTRY_LIMIT characters."""
        self.peek()
        while True:
            try:
                value, end = safejson.DECODER.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise safejson.Rejected(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise safejson.Rejected(str(exc).split(":")[0][:80]) from None
                end = -1  # most likely cut short: read on
            except ValueError as exc:  # an integer over Python's digit limit
                raise safejson.Rejected(str(exc).split(":")[0][:80]) from None
            if end >= 0 and (end < len(self.buf) or self.eof):
                break  # (a number that ends the buffer may go on in the next piece)
            held = len(self.buf) - self.pos
            if held > MODEL_ENTRY_LIMIT:
                raise safejson.Rejected(f"one value is larger than {size(MODEL_ENTRY_LIMIT)}")
            while not self.eof and len(self.buf) - self.pos < 2 * held + 1:
                self._more()  # doubling: a long value is parsed O(1) times, not once a piece
        start, self.pos = self.pos, end
        return _checked(value, self.buf, start, end)


def _checked(value: Any, text: str, start: int, end: int) -> Any:
    if end - start > MODEL_ENTRY_LIMIT:  # (it may have arrived whole in one piece)
        raise safejson.Rejected(f"one value is larger than {size(MODEL_ENTRY_LIMIT)}")
    # Nesting deeper than ENTRY_DEPTH needs more brackets than that: short entries skip it.
    if end - start > ENTRY_DEPTH and (
        text.count("[", start, end) + text.count("{", start, end) > ENTRY_DEPTH
        and not safejson.depth_ok(text[start:end].encode("utf-8", "replace"), ENTRY_DEPTH)
    ):
        raise safejson.Rejected(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if _SURROGATE.search(text, start, end):
        value = safejson.clean(value)
    return value


def entries(pieces: Iterable[bytes]) -> Iterator[Any]:
    """The values of the ``data`` array of ``{"data": [...], ...}`` (or of a bare array), one
    at a time; other keys are skipped. Raises :class:`safejson.Rejected` for invalid JSON or a
    value over the limit, :class:`NotAList` for valid JSON of another shape."""
    text = _Text(pieces)
    first = text.peek()
    if first == "[":
        yield from _array(text)
    elif first == "{":
        text.pos += 1
        found = False
        while text.peek() != "}":
            key = text.value()
            text.take(":")
            if key == "data" and not found and text.peek() == "[":
                found = True
                yield from _array(text)
            elif key == "data" and not found:
                raise NotAList()
            else:
                text.value()  # another key (``object``, ``links``...): read and dropped
            if text.peek() != ",":
                break
            text.pos += 1
        text.take("}")
        if not found:
            raise NotAList()
    else:
        text.value()  # valid JSON of another kind is not a list; invalid JSON is Rejected
        raise NotAList()
    if text.peek():
        raise safejson.Rejected("Extra data")


def _array(text: _Text) -> Iterator[Any]:
    text.take("[")
    if text.peek() == "]":
        text.pos += 1
        return
    scan: Callable[[str, int], tuple[Any, int]] = safejson.DECODER.scan_once  # type: ignore[attr-defined]
    while True:
        # The usual case first, in few steps: a whole entry in the buffer, then "," (a million
        # tiny entries must not cost a million trips through value() and peek()).
        buf, pos = text.buf, text.pos
        try:
            value, end = scan(buf, pos)
        except (StopIteration, ValueError, RecursionError):
            end = -1
        if 0 <= end < len(buf) - 1 and buf[end] == "," and buf[end + 1] not in " \t\n\r":
            text.pos = end + 1
            yield _checked(value, buf, pos, end)
            continue
        yield text.value()  # white space, the end of the buffer, or an error: the careful way
        if text.peek() != ",":
            break
        text.pos += 1
    text.take("]")
