"""Live markdown rendering of a streamed answer, in time linear in its length.

Popular clients re-render the whole answer on every chunk (quadratic), and rich's ``Live``
cannot redraw lines that scrolled off the top of the terminal.  Here the answer is cut into
top-level markdown blocks as it arrives:

* ``BlockSplitter`` (pure, no rich) looks only at newly completed lines.  A cheap per-line
  test picks the lines that may start a new top-level block; only then markdown-it parses the
  unfinished region (block level only) and every block followed by the start of another is
  final.  Finished blocks never change, whatever text comes later.
* ``LiveMarkdown`` prints each finished block once, permanently, rendered exactly as in a
  whole-answer render (``mdrender.print_markdown``), and redraws only the unfinished tail in a
  live region of at most ``height - 1`` rows, at a bounded frame rate.
* A top-level fenced code block is printed line by line while it streams (``_Fence``): its
  complete lines are final (highlighting is line by line, ``mdrender.LineLexer``), so the live
  region holds at most its incomplete last line. A code block of any height is then linear,
  and a resized terminal cannot leave copies of a tall live region in its scrollback.

All text is escaped on the way (``mdrender``): the model cannot drive the terminal.
Rich separates top-level elements with a blank line depending on the element before (a
thematic break has none), so the renderer carries that one bit of state from block to block;
the concatenated output is then identical to ``print_markdown(console, full_text)``.
Known limit: a link reference definition applies only to the block it is committed with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING

from llmost_cli.ui.escape import escape
from llmost_cli.ui.mdblocks import BlockSplitter, columns

if TYPE_CHECKING:
    from markdown_it.token import Token
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.segment import Segment

    from llmost_cli.ui.mdrender import CodePainter

__all__ = ["BlockSplitter", "LiveMarkdown", "Spinner"]

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


def _dedent(line: str, indent: int) -> str:
    """A line of a fenced code block as markdown-it takes it: up to ``indent`` columns of
    leading whitespace removed (``StateBlock.getLines``; tabs stop every 4 columns)."""
    if not indent or not line or line[0] not in " \t":
        return line
    columns = first = 0
    while first < len(line) and columns < indent and line[first] in " \t":
        columns += 4 - columns % 4 if line[first] == "\t" else 1
        first += 1
    return " " * (columns - indent) + line[first:] if columns > indent else line[first:]


class _Fence:
    """A top-level fenced code block printed line by line while it streams.

    Its complete lines are final (the lexer state of a line depends only on the lines before
    it), so they are printed for good as they arrive and the live region never holds more
    than the incomplete last line: a tall code block cannot leave copies of itself in the
    scrollback when the terminal is resized.
    """

    def __init__(self, painter: CodePainter, start: int, indent: int) -> None:
        self.painter = painter
        self.start = start  # index of the opening line in the splitter's lines (and chunk)
        self.indent = indent  # columns of the opening line's indentation
        self.done = 0  # code lines printed
        self.ended = False  # the splitter committed the block; its end is pending

    def code(self, line: str) -> str:
        """A line of code as markdown-it gives it to the renderer, escaped."""
        line = line[:-1] if line.endswith("\n") else line
        return escape(_dedent(line.replace("\0", "\ufffd"), self.indent))

    def code_lines(self, lines: list[str]) -> list[str]:
        """``code`` of complete lines, escaped in one pass."""
        block = escape("".join(lines).replace("\0", "\ufffd")).split("\n")
        block.pop()  # after the last newline
        if self.indent:
            block = [_dedent(line, self.indent) for line in block]
        return block


def _split_lines(text: str) -> list[str]:
    """Lines ending with "\n" (and a last one without), split only at "\n"."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return lines


class _FenceEnd:
    """A pending item: the committed text of a block that streamed as a ``_Fence``."""

    def __init__(self, fence: _Fence, text: str) -> None:
        self.fence = fence
        self.text = text

    def rest(self) -> str:
        """The source of the opening line and of every line not printed yet."""
        lines = _split_lines(self.text)
        start = self.fence.start
        return lines[start] + "".join(lines[start + 1 + self.fence.done :])


class LiveMarkdown:
    """Render streamed markdown: finished blocks printed once, the tail redrawn live.

    On a console that is not a terminal, blocks are printed as they finish and no live
    region is drawn.  ``auto_refresh`` redraws a pending tail from a background thread when
    the stream pauses (rate-limited like ``feed``).  All text is escaped (``mdrender``).
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
        from llmost_cli.ui.mdrender import can_fill

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
        self._pending: list[str | _FenceEnd] = []  # finished blocks waiting for the next frame
        self._fence: _Fence | None = None
        self._started = False
        self._closed = False
        self._fill = can_fill(console)  # a background colour reaching the edge is drawn
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
            self._queue(self._splitter.feed(text))
            if not self._live:
                committed = self._commit()
                if committed:
                    self._draw(committed)
                return
            # Finished blocks wait for the next frame too: the screen changes <= max_fps times
            # a second, and blocks finished within one frame are rendered together.
            self._dirty = True
            if self._clock() - self._last_draw >= self._interval:
                self._frame()

    def finish(self) -> None:
        """Print the tail as final output and leave the cursor on the line after it."""
        self._close(safe=False)

    def abort(self) -> None:
        """Stop mid-stream: print the tail as it stands, leave the terminal clean."""
        self._close(safe=True)

    # -- internals --

    def _queue(self, blocks: list[str]) -> None:
        fence = self._fence
        if blocks and fence is not None and not fence.ended:
            fence.ended = True  # the block that streamed line by line is the first one
            self._pending.append(_FenceEnd(fence, blocks[0]))
            blocks = blocks[1:]
        self._pending.extend(blocks)

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

    def _close(self, *, safe: bool) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._queue([self._splitter.close()])
                if not safe:
                    self._draw(self._commit(), final=True)
                    return
                try:
                    committed = self._commit()
                except Exception:  # the tail must reach the user even if rendering fails
                    committed = self._unrendered()
                self._draw(committed, final=True)
            finally:
                if self._live and self._started:
                    self._console.show_cursor(True)

    def _unrendered(self) -> list[Segment]:
        from rich.segment import Segment

        text = "".join(p if isinstance(p, str) else p.rest() for p in self._pending)
        self._pending.clear()
        return [Segment(escape(text if text.endswith("\n") or not text else text + "\n"))]

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
        self._draw(self._commit())

    def _commit(self) -> list[Segment]:
        """Segments to print for good: finished blocks, then new lines of a streaming fence."""
        out: list[Segment] = []
        texts: list[str] = []
        for item in self._pending:
            if isinstance(item, str):
                texts.append(item)
                continue
            if texts:  # blocks finished within one frame render as one text: one parse
                out += self._render_final("".join(texts))
                texts.clear()
            out += self._end_fence(item)
        if texts:
            out += self._render_final("".join(texts))
        self._pending.clear()
        out += self._fence_lines()
        return out

    def _fence_lines(self) -> list[Segment]:
        """Start or continue printing the tail's fenced code block, line by line."""
        from rich.segment import Segment

        span = self._splitter.open_fence()
        if span is None or (self._fence is not None and self._fence.ended):
            return []
        start, end = span
        lines = self._splitter.lines
        out: list[Segment] = []
        fence = self._fence
        if fence is None:
            opener = lines[start]
            tokens = self._splitter.parse(opener)
            if not tokens or tokens[0].type != "fence":  # cannot happen; never guess
                return []
            stripped = opener.lstrip(" \t")
            fence = self._fence = _Fence(
                self._painter(tokens[0].info),
                start,
                columns(opener[: len(opener) - len(stripped)]),
            )
            if self._new_line:
                out.append(Segment.line())
            self._new_line = True  # what a code block leaves, once it is over
            out += self._rows([fence.painter.blank()], tidied=True)
        first = start + 1 + fence.done
        if end > first:
            rows: list[list[Segment]] = []
            for line in fence.code_lines(lines[first:end]):
                rows += fence.painter.rows(line)
            fence.done += end - first
            out += self._rows(rows, tidied=True)
        return out

    def _end_fence(self, end: _FenceEnd) -> list[Segment]:
        """The lines of a streamed fence not printed yet, its bottom row, and the blocks after
        it in the same text (at the end of the answer the tail may hold more than the fence).
        """
        from llmost_cli.ui.mdrender import code_lines

        fence = end.fence
        rest = _split_lines(end.rest())
        tokens = self._splitter.parse("".join(rest))
        code, after = "", []
        if tokens and tokens[0].type == "fence":
            code = escape(tokens[0].content)
            after = rest[tokens[0].map[1] :] if tokens[0].map else []
        rows: list[list[Segment]] = []
        for line in code_lines(code):
            rows += fence.painter.rows(line)
        rows.append(fence.painter.blank())
        self._fence = None
        self._new_line = True
        out = self._rows(rows, tidied=True)
        if "".join(after).strip():
            out += self._render_final("".join(after))
        return out

    def _painter(self, info: str) -> CodePainter:
        from llmost_cli.ui.mdrender import CodePainter, lexer_name

        return CodePainter(lexer_name(info), self._code_theme, self._console.width, fill=self._fill)

    def _rows(self, rows: list[list[Segment]], *, tidied: bool = False) -> list[Segment]:
        """Rows as printed lines (a code painter's rows are tidy already)."""
        from rich.segment import Segment

        from llmost_cli.ui.mdrender import tidy

        width, fill, new_line = self._console.width, self._fill, Segment.line()
        out: list[Segment] = []
        for row in rows:
            out += row if tidied else tidy(row, width, fill)
            out.append(new_line)
        return out

    def _render(self, source: str, new_line: bool) -> tuple[list[Segment], bool]:
        """Segments of ``source`` as they appear in a whole render after the text before.

        With the blank-line flag set, render after a one-line paragraph and drop that line:
        rich then emits exactly the separator it would emit in the whole document.
        """
        console = self._console
        definitions = self._splitter.definitions
        if definitions:
            source = definitions + "\n" + source
        from llmost_cli.ui.mdrender import AnswerMarkdown, render_options

        markdown = AnswerMarkdown(("x\n\n" + source) if new_line else source, self._code_theme)
        segments = list(console.render(markdown, render_options(console)))
        if new_line:
            segments = _drop_first_line(segments)
        return segments, _ends_with_new_line(markdown)

    def _render_final(self, source: str) -> list[Segment]:
        """Finished blocks (concatenated) as they are printed for good."""
        segments, self._new_line = self._render(source, self._new_line)
        from llmost_cli.ui.mdrender import final_lines

        return final_lines(self._console, segments)

    def _live_lines(self, rows: int) -> list[list[Segment]]:
        """The rows of the live region: the bottom of the unfinished tail."""
        from rich.segment import Segment

        from llmost_cli.ui.mdrender import tidy

        console = self._console
        width, fill = console.width, self._fill
        fence = self._fence
        if fence is not None and not fence.ended:
            span = self._splitter.open_fence()
            if span is None:
                return []
            painter = fence.painter.copy()  # a preview: the painter's state stays
            lines: list[list[Segment]] = []
            if span[1] == len(self._splitter.lines):  # still open: the incomplete line
                inner = max(width - 2, 1)
                # a huge line: paint only what the rows show, folded where the whole line is
                tail, start = self._splitter.partial_tail((rows + 1) * inner)
                if start:
                    skip = -start % inner if tail.isascii() else 0
                    partial = escape(tail[skip:].replace("\0", "\ufffd"))
                else:
                    partial = fence.code(tail)
                if partial:
                    lines = painter.rows(partial)
            else:  # a closing line arrived: the bottom row of the block
                lines = [painter.blank()]
            return [tidy(line, width, fill) for line in lines][-rows:]
        source = self._splitter.preview(rows + 1)
        if not source.strip():
            return []
        segments, _ = self._render(source, self._new_line)
        return [tidy(line, width, fill) for line in Segment.split_lines(segments)][-rows:]

    def _draw(self, committed: list[Segment], final: bool = False) -> None:
        """One write: erase the live region, print committed lines, draw the tail."""
        from rich.control import Control
        from rich.segment import ControlType, Segment

        console = self._console
        lines: list[list[Segment]] = []
        if self._live and not final:
            lines = self._live_lines(max(console.height - 1, 1))
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
            from llmost_cli.ui.mdrender import Segments

            console.print(Segments(out), crop=False)


class Spinner:
    """A one-line spinner on a terminal (stderr) until the first token; no trace once stopped.

    ``paused()`` wraps other writes to the same terminal (a retry note, a warning): the
    spinner's line is cleared first and drawn again on the next tick.
    """

    _FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    _ASCII_FRAMES = "|/-\\"

    def __init__(self, console: Console, text: str = "waiting for the model…") -> None:
        self._console = console
        self._text = text
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False  # the spinner's line is on the screen
        self._hidden = False  # the cursor is hidden
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
            self._clear()
            if self._hidden:
                self._hidden = False
                self._console.show_cursor(True)

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            self._clear()
            yield

    def _clear(self) -> None:
        if self._drawn:
            from rich.control import Control
            from rich.segment import ControlType

            self._drawn = False
            self._console.control(
                Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2))
            )

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
                if not self._hidden:
                    console.show_cursor(False)
                    self._hidden = True
                self._drawn = True
                clear = Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2))
                try:
                    console.print(clear, line, sep="", end="", crop=False, soft_wrap=True)
                except OSError:
                    return
