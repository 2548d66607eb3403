"""Live markdown rendering of a streamed answer, in time linear in its length.

Popular clients re-render the whole answer on every chunk (quadratic), and rich's ``Live``
cannot redraw lines that scrolled off the top of the terminal.  Here the answer is cut into
top-level markdown blocks as it arrives:

* ``BlockSplitter`` (pure, no rich) looks only at newly completed lines.  A cheap per-line
  test picks the lines that may start a new top-level block; only then markdown-it parses the
  unfinished region (block level only) and every block followed by the start of another is
  final.  Finished blocks never change, whatever text comes later.
* ``LiveMarkdown`` prints each finished block once, permanently, rendered by rich's
  ``Markdown`` exactly as in a whole-answer render, and redraws only the unfinished tail in a
  live region of at most ``height - 1`` rows, at a bounded frame rate.

Rich separates top-level elements with a blank line depending on the element before (a
thematic break has none), so the renderer carries that one bit of state from block to block;
the concatenated output is then identical to ``console.print(Markdown(full_text))``.
Known limit: a link reference definition applies only to the block it is committed with.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it.token import Token
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.markdown import Markdown
    from rich.segment import Segment

__all__ = ["BlockSplitter", "LiveMarkdown", "Spinner"]

# First characters of lines that may interrupt a paragraph or end a list, quote or table.
_STRUCT = frozenset("#`~*-_+<>|:=0123456789")
_ORDERED = re.compile(r"[0-9]{1,9}([.)])(?:[ \t]|$)")
_HR = re.compile(r"(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")


def _columns(prefix: str) -> int:
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
        self._items: list[int] = []  # indexes in _lines of its list items
        self._prev_blank = True
        self._prev = ""

    @property
    def tail(self) -> str:
        """The unfinished text (the last block, possibly incomplete)."""
        return "".join(self._lines) + "".join(self._parts)

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
        return out

    def close(self) -> str:
        """End of text: return the tail (the last block) and reset."""
        if self._cr:
            self._parts.append("\n")
        tail = self.tail
        self._reset()  # ``definitions`` stay: the tail is rendered after this call
        return tail

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
        return "".join(head) + body + "".join(self._parts)

    def _add_line(self, line: str, out: list[str]) -> None:
        self._lines.append(line)
        stripped = line.lstrip(" \t")
        if stripped == "\n":
            self._prev_blank = True
            return
        lead = line[: len(line) - len(stripped)]
        indent = _columns(lead) if "\t" in lead else len(lead)
        if self._is_candidate(stripped, indent):
            self._split(out)
        self._prev_blank = False
        self._prev = stripped

    def _is_candidate(self, stripped: str, indent: int) -> bool:
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
            shift = last.map[0] if last.map else 0
            self._keep_definitions(shift, [tokens[i].map for i in tops[:-1]])
            out.append("".join(self._lines[:shift]))
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
            for line in self._lines[self._start + 1 :]:
                stripped = line.lstrip(" \t")
                if stripped != "\n" and self._kind == "fence":
                    indent = _columns(line[: len(line) - len(stripped)])
                    self._is_candidate(stripped, indent)


# --- rendering (rich is imported lazily: `llmost --version` must not load rich.markdown) ---


def _flatten(tokens: Iterable[Token]) -> Iterator[Token]:
    for token in tokens:
        if token.children and not (token.type == "fence" or token.tag == "img"):
            yield from _flatten(token.children)
        else:
            yield token


_NO_ELEMENT = frozenset({"text", "hardbreak", "softbreak", "link_open", "link_close"})


def _ends_with_new_line(markdown: Markdown) -> bool:
    """The ``new_line`` flag rich's Markdown renderer holds after the last token.

    It decides whether the next top-level element is preceded by a blank line; this mirrors
    the loop in ``rich.markdown.Markdown.__rich_console__``.
    """
    from rich.markdown import MarkdownElement, UnknownElement

    elements, inlines = markdown.elements, markdown.inlines
    stack: list[type[MarkdownElement]] = []
    new_line = False
    for token in _flatten(markdown.parsed):
        kind = token.type
        if kind in _NO_ELEMENT or kind == "html_inline":
            continue
        if token.tag in inlines and kind not in ("fence", "code_block"):
            continue
        if token.nesting == 1:
            stack.append(elements.get(kind) or UnknownElement)
        elif token.nesting == -1:
            new_line = stack.pop().new_line if stack else True
        else:
            new_line = (elements.get(kind) or UnknownElement).new_line
    return new_line


def _drop_first_line(segments: list[Segment]) -> list[Segment]:
    for index, segment in enumerate(segments):
        if not segment.control and "\n" in segment.text:
            rest = segment.text.split("\n", 1)[1]
            tail = segments[index + 1 :]
            return [segment._replace(text=rest), *tail] if rest else tail
    return []


def _rstrip_line(line: list[Segment]) -> list[Segment]:
    """Drop invisible padding, so a narrowed terminal that re-wraps lines wraps fewer."""
    line = list(line)
    while line:
        segment = line[-1]
        style = segment.style
        if segment.control or (style and (style.bgcolor or style.reverse or style.underline)):
            break
        text = segment.text.rstrip(" ")
        if text:
            line[-1] = segment._replace(text=text)
            break
        line.pop()
    return line


class _Segments:
    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.segments


class LiveMarkdown:
    """Render streamed markdown: finished blocks printed once, the tail redrawn live.

    On a console that is not a terminal, blocks are printed as they finish and no live
    region is drawn.  ``auto_refresh`` redraws a pending tail from a background thread when
    the stream pauses (rate-limited like ``feed``).
    """

    def __init__(
        self,
        console: Console,
        *,
        code_theme: str = "monokai",
        max_fps: float = 12.0,
        clock: Callable[[], float] = time.monotonic,
        auto_refresh: bool = True,
    ) -> None:
        from rich.markdown import Markdown

        self._markdown = Markdown
        self._console = console
        self._code_theme = code_theme
        self._clock = clock
        self._interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self._live = console.is_terminal and not console.is_dumb_terminal
        self._auto_refresh = auto_refresh and self._live and self._interval > 0
        self._splitter = BlockSplitter()
        self._new_line = False  # rich's blank-line flag after the committed output
        self._height = 0  # rows of the live region on screen
        self._last_draw = float("-inf")
        self._dirty = False
        self._pending: list[str] = []  # finished blocks waiting for the next frame
        self._started = False
        self._closed = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LiveMarkdown:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def feed(self, text: str) -> None:
        """Append streamed text: print blocks that finished, redraw the tail (rate-limited)."""
        if not text:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("LiveMarkdown: feed() after finish() or abort()")
            self._start()
            blocks = self._splitter.feed(text)
            if not self._live:
                if blocks:
                    self._draw(self._render_final("".join(blocks)))
                return
            # Finished blocks wait for the next frame too: the screen changes <= max_fps times
            # a second, and blocks finished within one frame are rendered together.
            self._pending.extend(blocks)
            self._dirty = True
            if self._clock() - self._last_draw >= self._interval:
                self._frame()

    def finish(self) -> None:
        """Print the tail as final output and leave the cursor on the line after it."""
        self._close(self._render_final)

    def abort(self) -> None:
        """Stop mid-stream: print the tail as it stands, leave the terminal clean."""

        def render(text: str) -> list[Segment]:
            try:
                return self._render_final(text)
            except Exception:  # the tail must reach the user even if rendering fails
                from rich.segment import Segment

                return [Segment(text if text.endswith("\n") or not text else text + "\n")]

        self._close(render)

    # -- internals --

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._live:
            self._console.show_cursor(False)
        if self._auto_refresh:
            self._thread = threading.Thread(
                target=self._refresh_loop, name="llmost-livemd", daemon=True
            )
            self._thread.start()

    def _close(self, render: Callable[[str], list[Segment]]) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._pending.append(self._splitter.close())
                text = "".join(self._pending)
                self._pending.clear()
                self._draw(render(text), final=True)
            finally:
                if self._live and self._started:
                    self._console.show_cursor(True)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                if self._closed:
                    return
                if self._dirty and self._clock() - self._last_draw >= self._interval:
                    try:
                        self._frame()
                    except OSError:  # the terminal went away; the main thread will see it
                        return

    def _frame(self) -> None:
        # Blocks finished within one frame render as one text: one parse instead of one each.
        committed = self._render_final("".join(self._pending)) if self._pending else []
        self._pending.clear()
        self._draw(committed)

    def _render(self, source: str, new_line: bool) -> tuple[list[Segment], bool]:
        """Segments of ``source`` as they appear in a whole render after the text before.

        With the blank-line flag set, render after a one-line paragraph and drop that line:
        rich then emits exactly the separator it would emit in the whole document.
        """
        console = self._console
        definitions = self._splitter.definitions
        if definitions:
            source = definitions + "\n" + source
        markdown = self._markdown(("x\n\n" + source) if new_line else source, self._code_theme)
        options = console.options.update(
            justify=None, overflow=None, height=None, no_wrap=None, markup=None, highlight=None
        )
        segments = list(console.render(markdown, options))
        if new_line:
            segments = _drop_first_line(segments)
        return segments, _ends_with_new_line(markdown)

    def _render_final(self, source: str) -> list[Segment]:
        """Finished blocks (concatenated) as they are printed for good."""
        from rich.segment import Segment

        segments, self._new_line = self._render(source, self._new_line)
        out: list[Segment] = []
        for line in Segment.split_and_crop_lines(segments, self._console.width, pad=False):
            out.extend(line)
        return out

    def _draw(self, committed: list[Segment], final: bool = False) -> None:
        """One write: erase the live region, print committed lines, draw the tail."""
        from rich.control import Control
        from rich.segment import ControlType, Segment

        console = self._console
        lines: list[list[Segment]] = []
        if self._live and not final:
            rows = max(console.height - 1, 1)
            source = self._splitter.preview(rows + 1)
            if source.strip():
                segments, _ = self._render(source, self._new_line)
                lines = [_rstrip_line(line) for line in Segment.split_lines(segments)][-rows:]
            self._last_draw = self._clock()
            self._dirty = False
        out: list[Segment] = []
        if self._height:
            up = ((ControlType.CURSOR_UP, 1), (ControlType.ERASE_IN_LINE, 2)) * (self._height - 1)
            out.append(
                Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2), *up).segment
            )
        out.extend(committed)
        for index, line in enumerate(lines):
            if index:
                out.append(Segment.line())
            out.extend(line)
        self._height = len(lines)
        if out:
            console.print(_Segments(out), crop=False)


class Spinner:
    """A one-line spinner on a terminal (stderr) until the first token; no trace once stopped."""

    _FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    _ASCII_FRAMES = "|/-\\"

    def __init__(self, console: Console, text: str = "waiting for the model…") -> None:
        self._console = console
        self._text = text
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False
        self.interval = 0.08

    def start(self) -> None:
        console = self._console
        if self._thread is not None or not console.is_terminal or console.is_dumb_terminal:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llmost-spinner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=2.0)
        self._thread = None
        with self._lock:
            if self._drawn:
                from rich.control import Control
                from rich.segment import ControlType

                self._drawn = False
                self._console.control(
                    Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2))
                )
                self._console.show_cursor(True)

    def _run(self) -> None:
        from rich.control import Control
        from rich.segment import ControlType
        from rich.text import Text

        console = self._console
        utf8 = console.encoding.lower().startswith("utf")
        frames = self._FRAMES if utf8 else self._ASCII_FRAMES
        text = self._text if utf8 else self._text.encode("ascii", "replace").decode()
        index = 0
        # The first frame waits one interval: a fast answer then never flashes a spinner.
        while not self._stop.wait(self.interval):
            line = Text.assemble((frames[index % len(frames)], "status.spinner"), " ", text)
            line.truncate(max(console.width - 1, 1), overflow="ellipsis")
            index += 1
            with self._lock:
                if self._stop.is_set():
                    return
                if not self._drawn:
                    console.show_cursor(False)
                    self._drawn = True
                clear = Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2))
                try:
                    console.print(clear, line, sep="", end="", crop=False, soft_wrap=True)
                except OSError:
                    return
