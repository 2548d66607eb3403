"""Everything the user sees: the streamed answer, JSON, tables, warnings and errors.

rich is imported inside the functions that draw with it: piped output is written as raw UTF-8
bytes, so a pipeline never pays for rich.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from llmost_cli.core.events import ReasoningDelta, StreamEvent, TextDelta

if TYPE_CHECKING:
    from rich.console import Console

    from llmost_cli.core.events import Usage
    from llmost_cli.core.messages import Reply, ToolCall
    from llmost_cli.core.turn import AnswerWriter
    from llmost_cli.env import Environment
    from llmost_cli.errors import LlmostError


@dataclass
class UI:
    """The process's streams and what they are connected to, decided once."""

    out: BinaryIO | None
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

    def say(self, text: str) -> None:
        """Command output in the REPL: stderr, so that stdout carries answers only."""
        self.err.write(text + "\n")
        self.err.flush()

    def rule(self, text: str) -> None:
        """A dim line between turns (a terminal only)."""
        from rich.text import Text

        self.console("err").print(Text(f"── {text}", style="dim"), highlight=False)

    def detail(self, text: str) -> None:
        """An indented stderr line under a note (tool commands, arguments, output), kept whole."""
        self.err.write("    " + text.replace("\n", "\n    ") + "\n")
        self.err.flush()

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
        write_out(self.out, text)

    def json(self, obj: Any, *, pretty: bool = False) -> None:
        text = json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None, allow_nan=False)
        self.write(text + "\n")

    def console(self, which: str = "out") -> Console:
        """A rich Console on stdout or stderr, built on first use."""
        if which not in self._consoles:
            from rich.console import Console

            stream: Any = self.err if which == "err" else _TextOut(self.out, self.out_tty)
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

    def usage(self, u: Usage | None, cost: float | None) -> None:
        if u is None:
            self.note("usage: unknown (the server sent no token counts)")
            return
        text = (
            f"tokens: {_n(u.prompt_tokens)} prompt + {_n(u.completion_tokens)} completion"
            f" = {_n(u.total_tokens)} total"
        )
        if u.reasoning_tokens is not None:
            text += f" ({u.reasoning_tokens} reasoning)"
        if cost is not None:
            text += f", cost {format_cost(cost)}"
        self.note(text)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


from llmost_cli.core.text import format_cost  # noqa: E402  # re-exported for the UI


def make_ui(env: Environment) -> UI:
    return UI(
        out=env.stdout,
        err=env.stderr,
        out_tty=env.stdout_isatty,
        err_tty=env.stderr_isatty,
        no_color=env.no_color,
    )


def write_out(out: BinaryIO | None, text: str, *, flush: bool = True) -> None:
    """Write to stdout; a reader that went away or a disk that is full ends the output."""
    from llmost_cli.errors import OutputClosed

    if out is None:
        raise OutputClosed("standard output is closed")
    try:
        if text:
            out.write(text.encode("utf-8", "replace"))
        if flush:
            out.flush()
    except BrokenPipeError:
        raise OutputClosed() from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "standard output is closed"
        raise OutputClosed(reason) from None


class _TextOut(io.TextIOBase):
    """stdout as text for rich, written through to the one binary stream (no second buffer)."""

    def __init__(self, raw: BinaryIO | None, tty: bool) -> None:
        self._raw = raw
        self._tty = tty

    def write(self, text: str) -> int:
        write_out(self._raw, text, flush=False)
        return len(text)

    def flush(self) -> None:
        write_out(self._raw, "")

    def isatty(self) -> bool:
        return self._tty

    def fileno(self) -> int:
        if self._raw is None:
            raise OSError("stdout is closed")
        return self._raw.fileno()


def tool_call_line(call: ToolCall) -> str:
    """DESIGN.md §2: one JSON line per call; arguments as JSON when they parse."""
    parsed = call.parsed_arguments()
    arguments = parsed if parsed is not None else call.arguments
    return json.dumps(
        {"id": call.id, "name": call.name, "arguments": arguments}, ensure_ascii=False
    )


class _SpinnerMixin:
    ui: UI
    _spinner: Any = None

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
