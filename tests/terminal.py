"""A terminal emulator for the tests (pyte): the screen that bytes leave, scrollback included.

Fed without the coverage tracer (``untraced``): the emulator is not llmost, and traced it is
several times slower.
"""

from __future__ import annotations

from typing import Any

import pyte
from pyte.screens import Margins

from tests.conftest import untraced


class ScrollbackScreen(pyte.Screen):
    """A screen that keeps the lines scrolled off its top in ``history.top``, as pyte's
    ``HistoryScreen`` does, without its paging: that wraps every attribute access of the screen
    in a function call, which makes feeding it several times slower."""

    def __init__(self, columns: int, lines: int) -> None:
        self.history = _History()
        super().__init__(columns, lines)

    def reset(self) -> None:
        super().reset()
        self.history.top.clear()

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        super().erase_in_display(how, *args, **kwargs)
        if how == 3:  # "erase the scrollback"
            self.history.top.clear()

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y == bottom:
            self.history.top.append(self.buffer[top])
        super().index()


class _History:
    def __init__(self) -> None:
        self.top: list[Any] = []


def screen_lines(
    data: str, width: int, height: int, *, newline_mode: bool
) -> tuple[list[str], ScrollbackScreen]:
    """Final scrollback + screen text (trailing blank lines dropped) of a terminal that received
    ``data``; ``newline_mode``: "\\n" also returns the carriage, as a tty's output does."""
    term = ScrollbackScreen(width, height)
    if newline_mode:
        term.set_mode(pyte.modes.LNM)
    with untraced():
        pyte.Stream(term).feed(data)
    lines = ["".join(line[x].data for x in range(width)).rstrip() for line in term.history.top]
    return _trimmed([*lines, *(line.rstrip() for line in term.display)]), term


def all_lines(term: ScrollbackScreen) -> list[str]:
    """Scrollback + screen text of a terminal that may have been resized on the way."""
    rows = [*term.history.top, *(term.buffer[y] for y in range(term.lines))]
    return _trimmed(["".join(row[x].data for x in sorted(row)).rstrip() for row in rows])


def _trimmed(lines: list[str]) -> list[str]:
    """``lines`` without the blank lines at the end."""
    while lines and not lines[-1]:
        lines.pop()
    return lines


def xterm_resize(term: ScrollbackScreen, lines: int, columns: int) -> None:
    """Shrink like xterm: rows above the cursor that no longer fit scroll into the history,
    where no program can erase them any more; columns are cut."""
    y = term.cursor.y
    push = max(0, y + 1 - lines)
    term.cursor.y = term.lines - 1
    for _ in range(push):
        term.index()
    term.cursor.y = y - push
    for row in range(lines, term.lines):
        term.buffer.pop(row, None)
    for line in term.buffer.values():
        for x in range(columns, term.columns):
            line.pop(x, None)
    term.lines, term.columns = lines, columns
    term.set_margins()
