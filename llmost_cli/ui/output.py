"""Everything the user sees: the streamed answer, JSON, tables, warnings and errors.

rich is imported inside the functions that draw with it: piped output is written as raw UTF-8
bytes, so a pipeline never pays for rich.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TextIO

from llmost_cli.core.events import ReasoningDelta, StreamEvent, TextDelta

if TYPE_CHECKING:
    from rich.console import Console

    from llmost_cli.core.messages import Reply, ToolCall
    from llmost_cli.errors import LlmostError


@dataclass
class UI:
    """The process's streams and what they are connected to, decided once."""

    out: BinaryIO
    err: TextIO
    out_tty: bool
    err_tty: bool
    no_color: bool = False
    _consoles: dict[str, Console] = field(default_factory=dict)

    # --- stderr: errors, warnings, notes -------------------------------------------------
    def error(self, exc: LlmostError) -> None:
        self._stderr_line("error", str(exc), "bold red")

    def warn(self, text: str) -> None:
        self._stderr_line("warning", text, "yellow")

    def note(self, text: str) -> None:
        self._stderr_line(None, text, "dim")

    def _stderr_line(self, label: str | None, text: str, style: str) -> None:
        prefix = f"llmost: {label}: " if label else "llmost: "
        text = " ".join(text.splitlines())  # one line, always
        if self.err_tty and not self.no_color:
            from rich.text import Text

            line = Text(prefix, style=style)
            line.append(text)
            self.console("err").print(line, soft_wrap=True, highlight=False)
        else:
            self.err.write(prefix + text + "\n")
            self.err.flush()

    # --- stdout: the answer only ---------------------------------------------------------
    def write(self, text: str) -> None:
        self.out.write(text.encode("utf-8", "surrogateescape"))
        self.out.flush()

    def json(self, obj: Any, *, pretty: bool = False) -> None:
        text = json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None)
        self.write(text + "\n")

    def console(self, which: str = "out") -> Console:
        """A rich Console on stdout or stderr, built on first use."""
        if which not in self._consoles:
            from rich.console import Console

            stream = self.err if which == "err" else sys.stdout
            self._consoles[which] = Console(
                file=stream,
                no_color=self.no_color or None,
                highlight=False,
                soft_wrap=False,
            )
        return self._consoles[which]

    def answer_writer(self, *, markdown: bool, quiet: bool = False) -> AnswerWriter:
        """How a streamed answer reaches the user.

        quiet: nothing on stdout while streaming (``-o json`` prints the result afterwards).
        """
        spinner = self.out_tty and self.err_tty
        if quiet:
            return QuietWriter(self, spinner=self.err_tty)
        if markdown and self.out_tty:
            return MarkdownWriter(self)
        return PlainWriter(self, spinner=spinner)

    def tool_calls(self, calls: list[ToolCall]) -> None:
        """One JSON line per call on stdout (DESIGN.md §2); a warning for unparsable arguments."""
        for call in calls:
            if call.parsed_arguments() is None:
                self.warn(
                    f"tool call {call.id} has arguments that are not valid JSON; shown as received"
                )
            self.write(tool_call_line(call) + "\n")

    def usage(self, reply: Reply, cost: float | None) -> None:
        u = reply.usage
        if u is None:
            self.note("usage: the server sent no token counts")
            return
        text = (
            f"tokens: {_n(u.prompt_tokens)} prompt + {_n(u.completion_tokens)} completion"
            f" = {_n(u.total_tokens)} total"
        )
        if cost is not None:
            text += f", cost {format_cost(cost)}"
        self.note(text)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def format_cost(cost: float) -> str:
    return f"${cost:.6f}".rstrip("0").rstrip(".") if cost else "$0"


def make_ui() -> UI:
    return UI(
        out=sys.stdout.buffer,
        err=sys.stderr,
        out_tty=sys.stdout.isatty(),
        err_tty=sys.stderr.isatty(),
        no_color="NO_COLOR" in os.environ and os.environ["NO_COLOR"] != "",
    )


def tool_call_line(call: ToolCall) -> str:
    """DESIGN.md §2: one JSON line per call; arguments as JSON when they parse."""
    parsed = call.parsed_arguments()
    arguments = parsed if parsed is not None else call.arguments
    return json.dumps(
        {"id": call.id, "name": call.name, "arguments": arguments}, ensure_ascii=False
    )


class AnswerWriter(Protocol):
    show_tool_calls: bool  # print tool calls as JSON lines when the answer finishes

    def start(self, prefill: str) -> None: ...
    def event(self, event: StreamEvent) -> None: ...
    def finish(self, reply: Reply) -> None: ...
    def abort(self) -> None: ...


class _SpinnerMixin:
    ui: UI
    _spinner: Any = None
    show_tool_calls: bool = True

    def _spin(self) -> None:
        from llmost_cli.ui.livemd import Spinner

        self._spinner = Spinner(self.ui.console("err"))
        self._spinner.start()

    def _unspin(self) -> None:
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None


class PlainWriter(_SpinnerMixin):
    """Text exactly as received, flushed per chunk; one final newline if missing."""

    def __init__(self, ui: UI, *, spinner: bool = False) -> None:
        self.ui = ui
        self._use_spinner = spinner
        self._last = ""

    def start(self, prefill: str) -> None:
        if prefill:
            self._emit(prefill)
        elif self._use_spinner:
            self._spin()

    def event(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._unspin()
            self._emit(event.text)
        elif isinstance(event, ReasoningDelta) and self.ui.err_tty:
            self._unspin()
            self.ui.err.write(event.text)

    def _emit(self, text: str) -> None:
        self.ui.write(text)
        self._last = text

    def finish(self, reply: Reply) -> None:
        self._unspin()
        self._end_line()
        if self.show_tool_calls:
            self.ui.tool_calls(reply.tool_calls)

    def abort(self) -> None:
        self._unspin()
        self._end_line()

    def _end_line(self) -> None:
        if self._last and not self._last.endswith("\n"):
            self.ui.write("\n")
        self._last = ""


class MarkdownWriter(_SpinnerMixin):
    """Live markdown on a terminal: finished blocks once, only the tail redrawn."""

    def __init__(self, ui: UI) -> None:
        from llmost_cli.ui.livemd import LiveMarkdown

        self.ui = ui
        self._live = LiveMarkdown(ui.console("out"))

    def start(self, prefill: str) -> None:
        if prefill:
            self._live.feed(prefill)
        else:
            self._spin()

    def event(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._unspin()
            self._live.feed(event.text)

    def finish(self, reply: Reply) -> None:
        self._unspin()
        self._live.finish()
        if self.show_tool_calls:
            self.ui.tool_calls(reply.tool_calls)

    def abort(self) -> None:
        self._unspin()
        self._live.abort()


class QuietWriter(_SpinnerMixin):
    def __init__(self, ui: UI, *, spinner: bool) -> None:
        self.ui = ui
        self._use_spinner = spinner

    def start(self, prefill: str) -> None:
        if self._use_spinner:
            self._spin()

    def event(self, event: StreamEvent) -> None:
        pass

    def finish(self, reply: Reply) -> None:
        self._unspin()

    def abort(self) -> None:
        self._unspin()
