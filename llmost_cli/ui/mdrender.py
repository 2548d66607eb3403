"""How an answer's markdown looks on a terminal: rich's ``Markdown`` with what a chat needs.

* Every piece of text the model sent is escaped (``ui/escape.py``): text, inline code, code
  blocks, link targets, image sources and alt texts. This happens after parsing, so a
  character reference (``&#x202e;``) is caught as well as the raw character.
* A single newline inside a paragraph is a line break, as in chat interfaces.
* A link shows where it goes: ``text (url)`` when its text is not the URL itself, the URL
  alone when it is. No OSC 8 hyperlinks: a link cannot show one URL and open another.
* Code blocks are highlighted line by line, the lexer's state carried from one line to the
  next (``LineLexer``), so a block printed line by line while it streams looks exactly like
  the whole block rendered at once. Highlighting stops after ``HIGHLIGHT_LIMIT`` characters of
  a block (the rest is plain text): huge blocks stay fast.
* Rendered lines carry no trailing spaces: padding is dropped, and a background colour that
  reaches the right edge (a code block) is drawn with "erase to end of line" in that colour.

This module imports rich and pygments at the top: import it inside the functions that draw.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any, ClassVar

from markdown_it.token import Token
from rich.cells import cell_len, get_character_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown, MarkdownContext, MarkdownElement, TextElement
from rich.segment import ControlType, Segment
from rich.style import Style
from rich.syntax import Syntax, SyntaxTheme

from llmost_cli.ui.escape import escape

__all__ = [
    "HIGHLIGHT_LIMIT",
    "AnswerMarkdown",
    "CodePainter",
    "LineLexer",
    "code_lines",
    "final_lines",
    "print_markdown",
    "tidy",
]

HIGHLIGHT_LIMIT = 32_000  # characters of one code block that are syntax-highlighted
TAB_SIZE = 4  # as rich's Syntax
ERASE = "\x1b[K"  # erase to the end of the line (in the current background colour)
Row = list[Segment]


# --------------------------------------------------------------------------- markdown


def _prepare(tokens: Iterable[Token]) -> None:
    for token in tokens:
        if token.children:
            _prepare_inline(token.children)
        if token.type in ("fence", "code_block"):
            token.content = escape(token.content)


def _prepare_inline(tokens: list[Token]) -> None:
    for index, token in enumerate(tokens):
        kind = token.type
        if kind == "softbreak":
            token.type = "hardbreak"  # a single newline stays a line break
        elif kind in ("text", "code_inline", "image"):
            token.content = escape(token.content)
            if kind == "image":
                token.attrSet("src", escape(str(token.attrGet("src") or "")))
                if token.children:
                    _prepare_inline(token.children)
        elif kind == "link_open":
            href = escape(str(token.attrGet("href") or ""))
            token.attrSet("href", href)
            if _link_text(tokens, index + 1) in (href, href.removeprefix("mailto:")):
                _plain_url(tokens, index)


def _link_text(tokens: Sequence[Token], start: int) -> str:
    """The plain text of a link (its tokens up to ``link_close``), as the source has it."""
    parts = []
    for token in tokens[start:]:
        if token.type == "link_close":
            break
        if token.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        else:
            parts.append(token.content)
    return escape("".join(parts))


def _plain_url(tokens: Sequence[Token], start: int) -> None:
    """A link whose text is its URL: shown once, styled as a URL (an inline style, no link)."""
    depth = 0
    for token in tokens[start:]:
        if token.type == "link_open":
            depth += 1
        elif token.type == "link_close":
            depth -= 1
        else:
            continue
        token.type = "link_url_open" if token.nesting == 1 else "link_url_close"
        token.tag = "link_url"  # rendered with the theme's "markdown.link_url" style
        if depth == 0:
            return


class CodeBlock(TextElement):
    """A fenced or indented code block, painted line by line (see ``CodePainter``)."""

    @classmethod
    def create(cls, markdown: Markdown, token: Token) -> CodeBlock:
        return cls(lexer_name(token.info), markdown.code_theme)

    def __init__(self, lexer: str, theme: str) -> None:
        self.lexer = lexer
        self.theme = theme
        self.code: list[str] = []

    def on_text(self, context: MarkdownContext, text: Any) -> None:
        self.code.append(text if isinstance(text, str) else text.plain)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        painter = CodePainter(self.lexer, self.theme, options.max_width, fill=can_fill(console))
        new_line = Segment.line()
        for row in painter.block(code_lines("".join(self.code))):
            yield from row
            yield new_line


class AnswerMarkdown(Markdown):
    """rich's Markdown, with model text escaped, line breaks kept and links shown."""

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "fence": CodeBlock,
        "code_block": CodeBlock,
    }

    def __init__(self, markup: str, code_theme: str = "monokai") -> None:
        super().__init__(markup, code_theme=code_theme, hyperlinks=False)
        self.inlines = {*Markdown.inlines, "link_url"}  # a link shown as its bare URL
        _prepare(self.parsed)


def lexer_name(info: str | None) -> str:
    """The lexer of a fence's info string, as rich's CodeBlock picks it."""
    return (info or "").partition(" ")[0] or "text"


def code_lines(code: str) -> list[str]:
    """The lines of a code block's content (which ends with a newline)."""
    lines = code.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --------------------------------------------------------------------------- code blocks


@lru_cache(maxsize=32)
def _lexer(name: str) -> Any:
    from pygments.lexers import get_lexer_by_name  # type: ignore[import-untyped]
    from pygments.util import ClassNotFound  # type: ignore[import-untyped]

    if name == "text":
        return None
    try:
        return get_lexer_by_name(name)
    except ClassNotFound:
        return None


@lru_cache(maxsize=8)
def _theme(name: str) -> SyntaxTheme:
    return Syntax.get_theme(name)


class LineLexer:
    """pygments tokens of one line at a time, the lexer state carried between lines.

    For a ``RegexLexer`` (most languages) this is pygments' own loop, run one line at a time
    with its state stack kept: the tokens of a line depend only on the lines before it.
    Other lexers see each line on its own.
    """

    def __init__(self, name: str) -> None:
        from pygments.lexer import RegexLexer  # type: ignore[import-untyped]

        self.lexer = _lexer(name)
        self.regex = (
            self.lexer is not None
            and type(self.lexer).get_tokens_unprocessed is RegexLexer.get_tokens_unprocessed
        )
        self.stack: list[str] = ["root"]

    def copy(self) -> LineLexer:
        other = object.__new__(LineLexer)
        other.lexer, other.regex, other.stack = self.lexer, self.regex, list(self.stack)
        return other

    def tokens(self, line: str) -> list[tuple[Any, str]]:
        """The (token type, text) pairs of ``line`` (no newline in it)."""
        from pygments.token import Text  # type: ignore[import-untyped]

        if self.lexer is None:
            return [(Text, line)]
        text = line + "\n"
        try:
            if self.regex:
                tokens = self._regex_tokens(text)
            else:
                tokens = [(t, v) for _, t, v in self.lexer.get_tokens_unprocessed(text)]
        except Exception:  # a lexer bug must not lose the answer: show the line plain
            return [(Text, line)]
        if tokens and tokens[-1][1].endswith("\n"):
            kind, value = tokens[-1]
            tokens[-1] = (kind, value[:-1])
        return tokens

    def _regex_tokens(self, text: str) -> list[tuple[Any, str]]:
        # pygments.lexer.RegexLexer.get_tokens_unprocessed, with the state stack kept.
        from pygments.token import Error, Whitespace, _TokenType

        lexer = self.lexer
        out: list[tuple[Any, str]] = []
        pos = 0
        tokendefs = lexer._tokens
        statestack = self.stack
        statetokens = tokendefs[statestack[-1]]
        while True:
            for rexmatch, action, new_state in statetokens:
                m = rexmatch(text, pos)
                if m:
                    if action is not None:
                        if type(action) is _TokenType:
                            out.append((action, m.group()))
                        else:
                            out.extend((t, v) for _, t, v in action(lexer, m))
                    pos = m.end()
                    if new_state is not None:
                        _transition(statestack, new_state)
                        statetokens = tokendefs[statestack[-1]]
                    break
            else:
                if pos >= len(text):
                    break
                if text[pos] == "\n":  # at the end of a line pygments resets to "root"
                    statestack[:] = ["root"]
                    statetokens = tokendefs["root"]
                    out.append((Whitespace, "\n"))
                else:
                    out.append((Error, text[pos]))
                pos += 1
        return out


def _transition(statestack: list[str], new_state: Any) -> None:
    if isinstance(new_state, tuple):
        for state in new_state:
            if state == "#pop":
                if len(statestack) > 1:
                    statestack.pop()
            elif state == "#push":
                statestack.append(statestack[-1])
            else:
                statestack.append(state)
    elif isinstance(new_state, int):
        if abs(new_state) >= len(statestack):
            del statestack[1:]
        else:
            del statestack[new_state:]
    elif new_state == "#push":
        statestack.append(statestack[-1])


class CodePainter:
    """The rows of a code block, one source line at a time, like rich's ``Syntax`` with
    ``padding=1``: a blank row above and below, one column on the left, the theme's
    background. Long lines are folded at the width, never cut.

    Rows come out already as ``tidy`` leaves them (``tidy`` does nothing to them): no trailing
    spaces, and with colours on, the background drawn to the edge by "erase to end of line".
    """

    def __init__(self, lexer: str, theme: str, width: int, *, fill: bool = True) -> None:
        from pygments.token import Text

        self._theme = _theme(theme)
        self.base = self._theme.get_background_style()
        self._styles: dict[Any, Style] = {}
        self.lexer = LineLexer(lexer)
        self.width = max(width, 3)
        self.fill = fill
        self.budget = HIGHLIGHT_LIMIT if self.lexer.lexer is not None else 0
        self._plain = self._style(Text)
        self._pad = Segment(" ", self.base)
        self._erase = Segment(ERASE, self.base, ((ControlType.ERASE_IN_LINE, 0),))

    def copy(self) -> CodePainter:
        other = object.__new__(CodePainter)
        other.__dict__.update(self.__dict__)
        other.lexer = self.lexer.copy()
        return other

    def block(self, lines: Iterable[str]) -> Iterator[Row]:
        yield self.blank()
        for line in lines:
            yield from self.rows(line)
        yield self.blank()

    def blank(self) -> Row:
        return [self._erase] if self.fill else []

    def _style(self, kind: Any) -> Style:
        style = self._styles.get(kind)
        if style is None:
            style = self._styles[kind] = self.base + self._theme.get_style_for_token(kind)
        return style

    def rows(self, line: str) -> list[Row]:
        if "\t" in line:
            line = line.expandtabs(TAB_SIZE)
        if 0 < len(line) <= self.budget:
            self.budget -= len(line) + 1
            style = self._style
            segments = [
                Segment(text, style(kind)) for kind, text in self.lexer.tokens(line) if text
            ]
        else:  # no lexer, or over the budget: this line and every later one are plain
            self.budget = 0 if line else self.budget
            segments = [Segment(line, self._plain)] if line else []
        if (len(line) if line.isascii() else cell_len(line)) <= self.width - 2:
            return [self._row(segments)]
        return [self._row(part) for part, _ in _fold(segments, self.width - 2)]

    def _row(self, segments: list[Segment]) -> Row:
        while segments and segments[-1].text.endswith(" "):
            text = segments[-1].text.rstrip(" ")
            if text:
                segments[-1] = segments[-1]._replace(text=text)
            else:
                segments.pop()
        if not segments:
            return self.blank()
        return [self._pad, *segments, self._erase] if self.fill else [self._pad, *segments]


def _fold(segments: list[Segment], width: int) -> Iterator[tuple[list[Segment], int]]:
    """Cut a line of segments into rows of at most ``width`` cells; no character is split
    or lost (one wider than a whole row gets a row of its own). Linear in the line."""
    row: list[Segment] = []
    used = 0
    for segment in segments:
        text, style = segment.text, segment.style
        ascii_text = text.isascii()
        pos, size = 0, len(text) if ascii_text else cell_len(text)  # size: cells from pos
        while pos < len(text):
            if used + size <= width:
                row.append(Segment(text[pos:] if pos else text, style))
                used += size
                break
            room = width - used
            cut = min(room, len(text) - pos) if ascii_text else _fit(text, room, pos)
            if not cut and not used:
                cut = 1  # a character wider than the row
            if cut:
                piece = text[pos : pos + cut]
                piece_size = cut if ascii_text else cell_len(piece)
                row.append(Segment(piece, style))
                used += piece_size
                size -= piece_size
                pos += cut
            yield row, used
            row, used = [], 0
    if row:
        yield row, used


def _fit(text: str, room: int, start: int = 0) -> int:
    """How many characters of ``text`` from ``start`` fit in ``room`` cells."""
    used = 0
    for index in range(start, len(text)):
        used += get_character_cell_size(text[index])
        if used > room:
            return index - start
    return len(text) - start


# --------------------------------------------------------------------------- lines


def _background(style: Style | None) -> bool:
    return bool(style and style.bgcolor and not style.bgcolor.is_default)


def _is_erase(segment: Segment) -> bool:
    return bool(segment.control) and segment.text == ERASE


def tidy(line: Row, width: int, fill: bool) -> Row:
    """A rendered line without trailing spaces.

    Trailing spaces are dropped. When the line ends in spaces of a background colour (a code
    block padded to its width) or holds "erase to end of line" after its text (a code
    painter's row, perhaps indented and padded by a list), the colour is drawn by erasing to
    the end of the line from the column where it began; spaces before that column (a list's
    indentation) become a cursor movement, not characters. The same look, nothing to copy.
    ``fill`` is False when colours are off.
    """
    last = len(line) - 1
    while last >= 0 and line[last].control:
        last -= 1
    if last < 0 or not line[last].text.endswith(" "):
        return line  # nothing to strip (a code painter's row is always so)
    fill_style: Style | None = None
    column = used = 0
    for segment in line:  # the last "erase to end of line" and the column it starts at
        if segment.control:
            if _is_erase(segment):
                fill_style, column = segment.style, used
        else:
            used += segment.cell_length
    if fill_style is None and fill and _background(line[last].style):
        fill_style = line[last].style
        bgcolor = fill_style.bgcolor if fill_style else None
        column = used
        for segment in reversed(line[: last + 1]):  # where the background's spaces begin
            if segment.style is None or segment.style.bgcolor != bgcolor:
                break
            text = segment.text.rstrip(" ")
            column -= len(segment.text) - len(text)
            if text:
                break
    out = line[: last + 1]
    while out:
        segment = out[-1]
        if segment.control:
            out.pop()
            continue
        text = segment.text.rstrip(" ")
        if text:
            out[-1] = segment._replace(text=text)
            break
        out.pop()
    if fill_style is not None:
        used = sum(segment.cell_length for segment in out)
        if column > used:
            move = column - used
            out.append(Segment(f"\x1b[{move}C", None, ((ControlType.CURSOR_FORWARD, move),)))
        out.append(Segment(ERASE, fill_style, ((ControlType.ERASE_IN_LINE, 0),)))
    return out


def can_fill(console: Console) -> bool:
    return console.color_system is not None and not console.no_color


def final_lines(console: Console, segments: Iterable[Segment]) -> list[Segment]:
    """Rendered segments as they are printed for good: lines cropped, tidied."""
    width, fill = console.width, can_fill(console)
    out: list[Segment] = []
    for line in Segment.split_and_crop_lines(segments, width, pad=False):
        if line and line[-1].text == "\n" and not line[-1].control:
            out.extend(tidy(line[:-1], width, fill))
            out.append(line[-1])
        else:
            out.extend(tidy(line, width, fill))
    return out


def render_options(console: Console) -> ConsoleOptions:
    return console.options.update(
        justify=None, overflow=None, height=None, no_wrap=None, markup=None, highlight=None
    )


class Segments:
    """Already rendered segments, printed as they are."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.segments


def print_markdown(console: Console, text: str, code_theme: str = "monokai") -> None:
    """A whole markdown text, rendered at once exactly as ``LiveMarkdown`` streams it."""
    segments = console.render(AnswerMarkdown(text, code_theme), render_options(console))
    lines = final_lines(console, segments)
    if lines:
        console.print(Segments(lines), crop=False)
