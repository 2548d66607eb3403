"""``batch`` on stderr: a rich progress bar when stderr is a terminal, else only warnings.

The bar shows lines written of the total, failed lines, tokens, cost, the rate and the time
left; notes (a shared pause) are printed above it. Nothing here reaches stdout, which may be
the batch's OUTPUT.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llmost_cli.core.batch import cost_text, count

if TYPE_CHECKING:
    from llmost_cli.core.batch import BatchStats
    from llmost_cli.ui.output import UI


class QuietView:
    """stderr is not a terminal: no bar, no notes; warnings as ``llmost: warning:`` lines."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui

    def __enter__(self) -> QuietView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, stats: BatchStats) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def warn(self, text: str) -> None:
        self.ui.warn(text)


class ProgressView:
    """A live progress bar on a terminal's stderr (cleared at the end: the summary follows)."""

    def __init__(self, ui: UI, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.ui = ui
        self._progress = Progress(
            TextColumn("batch", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed", markup=False),
            TextColumn("{task.fields[tokens]} tokens", markup=False),
            TextColumn("{task.fields[cost]}", markup=False),
            TextColumn("{task.fields[rate]}", markup=False),
            TimeRemainingColumn(),
            console=ui.console("err"),
            transient=True,
            refresh_per_second=8,
        )
        self._task = self._progress.add_task(
            "batch", total=total, failed=0, tokens="0", cost="$0", rate=""
        )
        self._started = time.monotonic()

    def __enter__(self) -> ProgressView:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, stats: BatchStats) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._progress.update(
            self._task,
            completed=stats.written,
            failed=stats.failed,
            tokens=count(stats.tokens),
            cost=cost_text(stats),
            rate=f"{stats.written / elapsed:.1f} lines/s",
        )

    def note(self, text: str) -> None:
        self._line(text, "dim")

    def warn(self, text: str) -> None:
        self._line(f"warning: {text}", "yellow")

    def _line(self, text: str, style: str) -> None:
        from rich.text import Text

        line = Text("llmost: ", style=style)
        line.append(" ".join(text.splitlines()), style=style)
        self._progress.console.print(line, soft_wrap=True, highlight=False)


def batch_view(ui: UI, total: int) -> Any:
    """The view for a run: a progress bar only when stderr is a terminal."""
    if ui.err_tty:
        return ProgressView(ui, total)
    return QuietView(ui)
