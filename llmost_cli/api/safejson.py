"""JSON from the server, parsed so that no value can hurt what comes after.

* nesting deeper than MAX_JSON_DEPTH is refused before parsing (no RecursionError, here or in
  any code that walks the value later);
* numbers Python refuses (a 5000-digit integer) are a refusal, not a crash;
* ``NaN``, ``Infinity`` and numbers too large for a float (``1e999``) become ``None``, so the
  value can always be written back as strict JSON;
* lone surrogates (``"\\ud800"``) become U+FFFD, so every string can be encoded as UTF-8.

Everything is in C or a single pass over bytes unless a payload needs it: an ordinary SSE event
costs two ``bytes.count`` calls and two substring searches on top of the C scanner of ``json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from llmost_cli.api.limits import MAX_JSON_DEPTH


class Rejected(ValueError):
    """The bytes are not acceptable JSON; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _finite(text: str) -> float | None:
    value = float(text)
    return value if value - value == 0.0 else None  # inf - inf and nan - nan are nan


def _constant(name: str) -> None:
    return None  # NaN, Infinity, -Infinity


DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_constant)
# What JSONDecoder.raw_decode calls (set in its __init__; typeshed does not declare it).
_SCAN: Callable[[str, int], tuple[Any, int]] = DECODER.scan_once  # type: ignore[attr-defined]
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_OTHER = bytes(c for c in range(256) if c not in b'[]{}"')
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string is quote to quote
_SURROGATE = re.compile("[\ud800-\udfff]")


def depth_ok(data: bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> bool:
    """False if the JSON text nests deeper than ``limit``; unbalanced text is left to the
    parser. Whole-buffer C operations only (about 0.2 s for 70 MB): escapes are removed, then
    everything but quotes and brackets; strings go, and innermost bracket pairs are removed
    ``limit`` times."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return True
    s: bytes | bytearray = data
    if b"\\" in s:
        # Left to right, `\\` pairs are exactly the escaped backslashes; then `\"` is a quote
        # inside a string.
        s = s.replace(b"\\\\", b"").replace(b'\\"', b"")
    s = s.translate(_BRACKETS, _OTHER).replace(b'""', b"")  # most strings hold no bracket
    if b'"' in s:
        s = _STRING.sub(b"", s)
    for _ in range(limit):
        if not s:
            return True
        shorter = s.replace(b"[]", b"")
        if len(shorter) == len(s):
            return True  # unbalanced: not JSON, and the parser will say so
        s = shorter
    return not s


def may_have_surrogates(data: bytes | bytearray) -> bool:
    """Only a ``\\uD8xx``-``\\uDFxx`` escape can put a lone surrogate into a parsed string."""
    return b"\\ud" in data or b"\\uD" in data


def loads(data: bytes | bytearray) -> Any:
    """Parse and sanitise; raises :class:`Rejected`. Invalid UTF-8 becomes U+FFFD."""
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH and (
        b"\\u" not in data or not may_have_surrogates(data)  # one search for the usual text
    ):
        # The usual small SSE event: nothing to check or clean, so the C scanner alone, without
        # the Python frames of JSONDecoder.decode around it. Whatever it does not take whole
        # (whitespace around, an error) goes the full way below, which accepts and refuses
        # exactly the same texts.
        text = data.decode("utf-8", "replace")
        try:
            value, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(text):
                return value
    if not depth_ok(data):
        raise Rejected(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = DECODER.decode(data.decode("utf-8", "replace"))
    except RecursionError:
        raise Rejected(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
        raise Rejected(str(exc).split(":")[0][:80]) from None
    return clean(value) if may_have_surrogates(data) else value


def fix_text(text: str) -> str:
    """Lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def clean(value: Any, limit: int = MAX_JSON_DEPTH) -> Any:
    """``value`` with lone surrogates replaced and non-finite floats made ``None``, in place
    for containers, at any depth (no recursion); Rejected if it nests deeper than ``limit``."""
    if isinstance(value, str):
        return fix_text(value)
    if isinstance(value, float):
        return value if value - value == 0.0 else None
    if not isinstance(value, dict | list):
        return value
    stack: list[tuple[dict[Any, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise Rejected(f"nested deeper than {limit} levels")
        if isinstance(node, dict):
            for key in [k for k in node if isinstance(k, str) and _SURROGATE.search(k)]:
                node[fix_text(key)] = node.pop(key)
            items: Any = node.items()
        else:
            items = enumerate(node)
        for key, item in list(items):
            if isinstance(item, str):
                if _SURROGATE.search(item):
                    node[key] = fix_text(item)
            elif isinstance(item, float):
                if item - item != 0.0:
                    node[key] = None
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1))
    return value


# Tool-call arguments arrive as JSON text in fragments; their depth is tracked across fragments
# so that the parse at the end of the turn (in core) never meets a RecursionError.
_ARG_TOKENS = re.compile(r'\\.?|["\[\]{}]', re.S)


class DepthGauge:
    """Nesting depth of JSON text fed in pieces (strings and escapes are understood)."""

    __slots__ = ("depth", "escape", "in_string")

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escape = False

    def feed(self, text: str, limit: int = MAX_JSON_DEPTH) -> bool:
        """False once the text so far has nested deeper than ``limit``."""
        if self.escape:
            text = text[1:]
            self.escape = False
        depth, in_string = self.depth, self.in_string
        for match in _ARG_TOKENS.finditer(text):
            token = match.group()
            if token[0] == "\\":
                self.escape = len(token) == 1  # the escaped character is in the next piece
            elif token == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif token in "[{":
                depth += 1
                if depth > limit:
                    return False
            else:
                depth -= 1
        self.depth, self.in_string = depth, in_string
        return True
