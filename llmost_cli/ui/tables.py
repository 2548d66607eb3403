"""Tables and detail views (``llmost models``): drawn for a terminal, plain text when piped.

Part of the rendering layer: rich is imported inside the functions that draw, so a pipeline
never pays for it. Model ids, names and descriptions come from the server: on a terminal they
are escaped (``ui/escape.py``) and handed to rich as ``Text``/segments, never as markup;
piped, they are written as received.

The terminal table is laid out here rather than by ``rich.table.Table``: rich measures and
renders every cell through its generic layout machinery (hundreds of microseconds a cell, and
worse than linear over a long table), and a server may list 100,000 models. Column widths are
one pass over the cells; each row is then a handful of segments. Lines carry no trailing
spaces.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from llmost_cli.core.models import Summary, format_decimal
from llmost_cli.ui.escape import escape

if TYPE_CHECKING:
    from rich.console import Console
    from rich.segment import Segment
    from rich.style import Style

    from llmost_cli.ui.output import UI

HEADERS = ("ID", "CONTEXT", "PROMPT", "COMPLETION", "INPUT")  # prices: per 1M, in the caption
PLAIN_WIDTH = 80
GAP = "  "  # between columns
MIN_ID_WIDTH = 12

# A cell: its text, a style name ("" for none) and its width in cells; the id column is
# left-aligned, the numbers right-aligned, the input modalities (last) left-aligned and never
# padded.
Cell = tuple[str, str, int]


def models_table(ui: UI, rows: Iterable[Summary]) -> None:
    """One model per line. Piped: tab-separated, no header, unknown values "-", written in
    batches as ``rows`` come (a long list is never all in memory as rows or text)."""
    if not ui.out_tty:
        lines = ("\t".join(row.cells()) + "\n" for row in rows)
        while batch := "".join(itertools.islice(lines, 4096)):
            ui.write(batch)
        return
    rows = list(rows)
    from rich.cells import cell_len

    console = ui.console("out")
    table = [_cells(row, cell_len) for row in rows]
    console.print(_Lines(list(_table_lines(console, table, len(rows)))), crop=False)


def _cells(row: Summary, cell_len: Callable[[str], int]) -> list[Cell]:
    model_id = escape(row.id)
    inputs = escape(", ".join(row.input_modalities)) if row.input_modalities else ""
    return [
        (model_id, "", len(model_id) if model_id.isascii() else cell_len(model_id)),
        _DASH if row.context_length is None else _plain(f"{row.context_length:,}"),
        _money(row.prompt_per_m),
        _money(row.completion_per_m),
        (inputs, "", len(inputs) if inputs.isascii() else cell_len(inputs)) if inputs else _DASH,
    ]


def _plain(text: str) -> Cell:
    return (text, "", len(text))


_DASH: Cell = ("-", "dim", 1)
_FREE: Cell = ("free", "green", 4)


def _money(value: Decimal | None) -> Cell:
    if value is None:
        return _DASH
    if value == 0:
        return _FREE
    return _plain(format_decimal(value))


def _table_lines(console: Console, table: list[list[Cell]], count: int) -> Iterator[Segment]:
    from rich.cells import cell_len, chop_cells
    from rich.segment import Segment

    width = console.width
    columns = len(HEADERS)
    widths = [max((cells[index][2] for cells in table), default=0) for index in range(columns)]
    widths = [max(size, len(header)) for size, header in zip(widths, HEADERS, strict=True)]
    if sum(widths) + len(GAP) * (columns - 1) > width:
        columns = 4  # a narrow terminal: the input column goes first, the id matters more
    widths = widths[:columns]
    others = sum(widths[1:]) + len(GAP) * (columns - 1)
    widths[0] = min(widths[0], max(width - others, MIN_ID_WIDTH))
    styles: dict[str, Style | None] = {"": None}
    for name in ("bold", "dim", "green"):
        styles[name] = console.get_style(name)
    new_line = Segment.line()

    def row(cells: list[Cell]) -> Iterator[Segment]:
        """One table row; plain text runs are merged into one segment (a row is few)."""
        first, name, size = cells[0]
        id_style = styles[name]
        pieces = [first] if size <= widths[0] else chop_cells(first, widths[0])
        plain: list[str] = []
        if id_style is None:
            plain.append(pieces[0])
        else:
            yield Segment(pieces[0], id_style)
        pad = widths[0] - (size if len(pieces) == 1 else cell_len(pieces[0]))
        for index in range(1, columns):
            text, name, size = cells[index]
            if index == 4:  # the input column: left-aligned, nothing after it
                plain.append(" " * pad + GAP)
            else:
                plain.append(" " * (pad + len(GAP) + widths[index] - size))
            pad = 0
            cell_style = styles[name]
            if cell_style is None:
                plain.append(text)
            else:
                yield Segment("".join(plain))
                plain.clear()
                yield Segment(text, cell_style)
        plain.append("\n")
        yield Segment("".join(plain))
        for piece in pieces[1:]:  # an id longer than its column folds onto lines of its own
            yield Segment(piece, id_style)
            yield new_line

    yield from row([(header, "bold", len(header)) for header in HEADERS])
    yield Segment("─" * min(sum(widths) + len(GAP) * (columns - 1), width))
    yield new_line
    for cells in table:
        yield from row(cells)
    noun = "model" if count == 1 else "models"
    yield Segment(f"{count} {noun}; prices per million tokens", styles["dim"])
    yield new_line


class _Lines:
    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments

    def __rich_console__(self, console: object, options: object) -> Iterator[Segment]:
        yield from self.segments


def model_detail(ui: UI, fields: Sequence[tuple[str, str]], description: str | None) -> None:
    """Every field, one per line, then the description wrapped to the width."""
    if not ui.out_tty:
        width = max((len(label) for label, _ in fields), default=0)
        lines = [f"{label.ljust(width)}  {value}".rstrip() for label, value in fields]
        if description:
            lines += ["", *_wrap(description, PLAIN_WIDTH)]
        ui.write("\n".join(lines) + "\n")
        return
    from rich.cells import cell_len
    from rich.segment import Segment

    console = ui.console("out")
    shown = [(escape(label), escape(value)) for label, value in fields]
    label_width = max((cell_len(label) for label, _ in shown), default=0)
    room = max(console.width - label_width - len(GAP), 8)
    bold, dim = console.get_style("bold"), console.get_style("dim")
    out: list[Segment] = []
    for label, value in shown:
        out.append(Segment(label, bold))
        for index, line in enumerate(_wrapped(console, value, room)):
            indent = label_width - cell_len(label) if index == 0 else label_width
            if line:
                out.append(Segment(" " * indent + GAP))
                out.append(Segment(line, dim if value == "-" else None))
            out.append(Segment.line())
    if description:
        out.append(Segment.line())
        for line in _wrapped(console, escape(description), console.width):
            out += [Segment(line), Segment.line()]
    console.print(_Lines(out), crop=False)


def _wrapped(console: Console, text: str, width: int) -> list[str]:
    """``text`` wrapped at spaces to ``width`` cells (a longer word is folded), its own line
    breaks kept, no trailing spaces."""
    from rich.text import Text

    return [line.plain.rstrip() for line in Text(text).wrap(console, width, overflow="fold")]


def _wrap(text: str, width: int) -> list[str]:
    """Each line wrapped to ``width``; the text's own line breaks and blank lines stay."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(textwrap.wrap(line, width) or [""])
    return out
