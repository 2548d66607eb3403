"""Tables and detail views (``llmost models``): rich on a terminal, plain text when piped.

Part of the rendering layer: rich is imported inside the functions that draw, so a pipeline
never pays for it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from llmost_cli.core.models import Summary, format_decimal

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from llmost_cli.ui.output import UI

HEADERS = ("ID", "CONTEXT", "PROMPT", "COMPLETION", "INPUT")  # prices: per 1M, in the caption
PLAIN_WIDTH = 80


def models_table(ui: UI, rows: Sequence[Summary]) -> None:
    """One model per line. Piped: tab-separated, no header, unknown values "-"."""
    if not ui.out_tty:
        ui.write("".join("\t".join(row.cells()) + "\n" for row in rows))
        return
    from rich.measure import Measurement

    console = ui.console("out")
    table = _table(rows, with_input=True)
    unbounded = console.options.update(width=10_000)  # the natural width, not the clamped one
    if Measurement.get(console, unbounded, table).maximum > console.width:
        table = _table(rows, with_input=False)  # narrow terminal: the id matters more
    console.print(table)


def _table(rows: Sequence[Summary], *, with_input: bool) -> Table:
    from rich import box
    from rich.table import Table

    count = f"{len(rows)} model{'s' * (len(rows) != 1)}; prices per million tokens"
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        header_style="bold",
        caption=count,
        caption_justify="left",
    )
    table.add_column(HEADERS[0], overflow="fold")  # folded, never cut: ids are for copying
    for header in HEADERS[1:4]:
        table.add_column(header, justify="right", no_wrap=True)
    if with_input:
        table.add_column(HEADERS[4])
    for row in rows:
        cells: list[Text | str] = [
            row.id,
            _dash() if row.context_length is None else f"{row.context_length:,}",
            _money(row.prompt_per_m),
            _money(row.completion_per_m),
        ]
        if with_input:
            cells.append(", ".join(row.input_modalities) if row.input_modalities else _dash())
        table.add_row(*cells)
    return table


def _dash() -> Text:
    from rich.text import Text

    return Text("-", style="dim")


def _money(value: Decimal | None) -> Text | str:
    from rich.text import Text

    if value is None:
        return _dash()
    if value == 0:
        return Text("free", style="green")
    return format_decimal(value)


def model_detail(ui: UI, fields: Sequence[tuple[str, str]], description: str | None) -> None:
    """Every field, one per line, then the description wrapped to the width."""
    if not ui.out_tty:
        width = max((len(label) for label, _ in fields), default=0)
        lines = [f"{label.ljust(width)}  {value}".rstrip() for label, value in fields]
        if description:
            lines += ["", *_wrap(description, PLAIN_WIDTH)]
        ui.write("\n".join(lines) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in fields:
        grid.add_row(label, Text(value, style="dim") if value == "-" else value)
    console = ui.console("out")
    console.print(grid)
    if description:
        console.print()
        console.print(Text(description))  # rich wraps it to the terminal


def _wrap(text: str, width: int) -> list[str]:
    """Each line wrapped to ``width``; the text's own line breaks and blank lines stay."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(textwrap.wrap(line, width) or [""])
    return out
