"""Top-level markdown blocks of a streamed answer, found as the text arrives (pure: no rich).

``BlockSplitter`` looks only at newly completed lines. A cheap per-line test picks the lines
that may start a new top-level block; only then does markdown-it parse the unfinished region
(block level only), and every block followed by the start of another is final: it never
changes, whatever text comes later. ``LiveMarkdown`` (livemd.py) prints those blocks.
"""

from __future__ import annotations

import bisect
import re
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it.token import Token

__all__ = ["BlockSplitter", "columns"]

# First characters of lines that may interrupt a paragraph or end a list, quote or table.
_STRUCT = frozenset("#`~*-_+<>|:=0123456789")
_ORDERED = re.compile(r"[0-9]{1,9}([.)])(?:[ \t]|$)")
_HR = re.compile(r"(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")


def columns(prefix: str) -> int:
    """The width of a line's leading blanks, tabs stopping every 4 columns (CommonMark)."""
    col = 0
    for ch in prefix:
        col = col + 4 - col % 4 if ch == "\t" else col + 1
    return col


class BlockSplitter:
    """Incrementally cut markdown text into finished top-level blocks and a tail.

    ``feed`` returns the text of blocks that became final (their concatenation followed by
    ``tail`` is always everything fed so far, with line endings normalised).  Each finished
    chunk starts at a top-level block boundary, so markdown-it parses the whole text as the
    concatenation of the parses of the chunks.
    """

    def __init__(self) -> None:
        from markdown_it import MarkdownIt

        self._md = MarkdownIt().enable("strikethrough").enable("table")  # as rich.markdown
        self.definitions = ""  # link reference definitions in committed blocks
        self._reset()

    def _reset(self) -> None:
        self._lines: list[str] = []  # complete lines not yet committed
        self._parts: list[str] = []  # pieces of the incomplete last line
        self._cr = False  # a trailing "\r" that may be the first half of "\r\n"
        self._kind: str | None = None  # how the last block can end (see _is_candidate)
        self._block = ""  # token type of the last block
        self._marker = ""  # its list marker or fence string
        self._start = 0  # index in _lines of its first line
        self._closer = 0  # index in _lines of the line that closed a fence
        self._items: list[int] = []  # indexes in _lines of its list items
        self._prev_blank = True
        self._prev = ""

    @property
    def tail(self) -> str:
        """The unfinished text (the last block, possibly incomplete)."""
        return "".join(self._lines) + "".join(self._parts)

    @property
    def lines(self) -> list[str]:
        """The complete lines of the tail (not a copy: do not change it)."""
        return self._lines

    @property
    def partial(self) -> str:
        """The incomplete last line of the tail."""
        return "".join(self._parts)

    def partial_tail(self, limit: int) -> tuple[str, int]:
        """The last ``limit`` characters of the incomplete last line (all of it when shorter),
        and the offset in that line where they start: a frame need not copy a huge line."""
        parts, size, count = self._parts, 0, 0
        for part in reversed(parts):
            size += len(part)
            count += 1
            if size >= limit:
                break
        first = len(parts) - count
        start = sum(map(len, parts[:first]))
        if size > limit:  # the first piece may be long: slice it (a copy of what is kept)
            cut = size - limit
            return parts[first][cut:] + "".join(parts[first + 1 :]), start + cut
        return "".join(parts[first:]), start

    def open_fence(self) -> tuple[int, int] | None:
        """When the tail is a top-level fenced code block: the index in ``lines`` of its
        opening line and the index after its last line that is certainly code (the lines
        after the opening one are code while the fence is open; a line that looks like the
        closing fence ends them)."""
        if self._block != "fence":
            return None
        return self._start, self._closer if self._kind == "closed" else len(self._lines)

    def feed(self, text: str) -> list[str]:
        """Append text; return the chunks of text that became final blocks."""
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r"):
            self._cr = True
            text = text[:-1]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        out: list[str] = []
        pos = 0
        nl = text.find("\n")
        while nl >= 0:
            piece = text[pos : nl + 1]
            if self._parts:
                self._parts.append(piece)
                piece = "".join(self._parts)
                self._parts.clear()
            self._add_line(piece, out)
            pos = nl + 1
            nl = text.find("\n", pos)
        if pos < len(text):
            self._parts.append(text[pos:])
            if len(self._parts) > 256:  # a huge line: keep the pieces few (amortised)
                self._parts[:] = ["".join(self._parts)]
        return out

    def close(self) -> str:
        """End of text: return the tail (the last block) and reset."""
        if self._cr:
            self._parts.append("\n")
        tail = self.tail
        self._reset()  # ``definitions`` stay: the tail is rendered after this call
        return tail

    def parse(self, source: str) -> list[Token]:
        """Block-level tokens of ``source`` (markdown-it, set up as rich's Markdown)."""
        tokens: list[Token] = []
        self._md.block.parse(source.replace("\0", "\ufffd"), self._md, {}, tokens)
        return tokens

    def preview(self, max_lines: int) -> str:
        """A suffix of the tail of about ``max_lines`` source lines that renders like its end.

        The live view shows only the bottom of the tail, so a long list, code block or table
        need not be rendered whole on every frame: keep a fence opener / table header and cut
        at a line where a list item starts.
        """
        lines, n = self._lines, len(self._lines)
        if n <= max_lines:
            return self.tail
        cut = n - max_lines
        head: list[str] = []
        start = self._start
        if self._block == "fence" and cut > start:
            head = [lines[start]]
        elif self._block == "table_open" and cut > start + 1:
            head = lines[start : start + 2]
        elif self._items:
            i = bisect.bisect_left(self._items, cut)
            item = self._items[i] if i < len(self._items) else self._items[-1]
            if n - item <= 2 * max_lines:
                cut = item
        body = "".join(lines[cut:])
        if self._block == "paragraph_open":
            body = body.lstrip(" \t")
        tail, _ = self.partial_tail(max_lines * 512)  # enough for the rows that show
        return "".join(head) + body + tail

    def _add_line(self, line: str, out: list[str]) -> None:
        self._lines.append(line)
        stripped = line.lstrip(" \t")
        if stripped == "\n":
            self._prev_blank = True
            return
        lead = line[: len(line) - len(stripped)]
        indent = columns(lead) if "\t" in lead else len(lead)
        if self._is_candidate(stripped, indent, len(self._lines) - 1):
            self._split(out)
        self._prev_blank = False
        self._prev = stripped

    def _is_candidate(self, stripped: str, indent: int, index: int) -> bool:
        """Whether this line may start a new top-level block (cheap; may say yes wrongly).

        A wrong "no" only delays a commit until a later candidate line; markdown-it decides.
        """
        kind = self._kind
        if kind is None or kind == "closed":
            return True
        if kind == "fence":
            char = self._marker[0]
            run = len(stripped) - len(stripped.lstrip(char))
            if indent < 4 and run >= len(self._marker) and not stripped[run:].strip():
                self._kind = "closed"
                self._closer = index
            return False
        if kind == "code":
            return indent < 4
        after_blank = self._prev_blank
        if kind == "html":
            return after_blank or ">" in self._prev
        if indent >= 4:
            return after_blank and kind != "list"
        first = stripped[0]
        if kind == "list":
            if indent:
                return False  # item content or a nested list
            if self._same_marker(stripped) and not _HR.match(stripped.rstrip()):
                self._items.append(len(self._lines) - 1)
                return False
            return after_blank or first in _STRUCT
        if after_blank:
            return True
        if first not in _STRUCT:
            return False
        if kind == "quote":
            return first != ">"
        if kind == "table":
            return first != "|"
        return True

    def _same_marker(self, stripped: str) -> bool:
        marker = self._marker
        if marker in ".)":
            m = _ORDERED.match(stripped)
            return m is not None and m.group(1) == marker
        return stripped[0] == marker and stripped[1:2] in (" ", "\t", "\n", "")

    def _split(self, out: list[str]) -> None:
        tokens: list[Token] = []
        self._md.block.parse("".join(self._lines), self._md, {}, tokens)
        tops = [i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0 and t.map]
        if not tops:
            self._kind = None
            return
        last = tokens[tops[-1]]
        shift = 0
        if len(tops) > 1:  # every block followed by the start of another is final
            starts = [0] + [m[0] for m in (tokens[i].map for i in tops[1:]) if m]
            shift = starts[-1]
            self._keep_definitions(shift, [tokens[i].map for i in tops[:-1]])
            lines = self._lines
            # one chunk per block: a block that streamed line by line is then a chunk alone
            out.extend("".join(lines[a:b]) for a, b in pairwise(starts))
            del self._lines[:shift]
        self._set_kind(last, tokens[tops[-1] :], shift)

    def _keep_definitions(self, end: int, maps: list[list[int] | None]) -> None:
        """Keep link reference definitions: later blocks are rendered after them.

        Definitions make no token, so they are the non-blank lines outside every block.
        """
        covered = [False] * end
        for span in maps:
            if span:
                covered[span[0] : span[1]] = [True] * (span[1] - span[0])
        lines = self._lines
        found = [lines[i] for i in range(end) if not covered[i] and lines[i].strip()]
        if found:
            self.definitions += "".join(found)

    def _set_kind(self, last: Token, tokens: list[Token], shift: int) -> None:
        kinds = {
            "fence": "fence",
            "heading_open": "closed",
            "hr": "closed",
            "code_block": "code",
            "html_block": "html",
            "blockquote_open": "quote",
            "table_open": "table",
            "bullet_list_open": "list",
            "ordered_list_open": "list",
        }
        self._block = last.type
        self._kind = kinds.get(last.type, "paragraph")
        self._marker = last.markup
        self._start = (last.map[0] if last.map else shift) - shift
        self._items = []
        if self._kind == "list":
            self._items = [
                t.map[0] - shift
                for t in tokens
                if t.type == "list_item_open" and t.level == 1 and t.map
            ]
        elif self._kind == "fence":
            for index in range(self._start + 1, len(self._lines)):
                line = self._lines[index]
                stripped = line.lstrip(" \t")
                if stripped != "\n" and self._kind == "fence":
                    indent = columns(line[: len(line) - len(stripped)])
                    self._is_candidate(stripped, indent, index)
