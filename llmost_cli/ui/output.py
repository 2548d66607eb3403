"""Everything the user sees: the streamed answer, JSON, tables, warnings and errors.

rich is imported inside the functions that draw with it: piped output is written as raw UTF-8
bytes, so a pipeline never pays for rich.

Text from the server or the model goes through ``ui.escape`` before it reaches a terminal
(DESIGN.md §2, §9): the answer when stdout is a terminal (markdown or plain), reasoning on
stderr, every stderr line (errors, warnings, notes, ``say``, ``detail``, ``rule``), tool-call
and JSON lines on a terminal, tables. stderr lines are escaped even when stderr is not a
terminal (a log file is read in a terminal later). Only the piped answer (and piped JSON) is
written byte for byte. Rich markup is never interpreted: rich gets ``Text`` objects.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from llmost_cli.core.events import ReasoningDelta, StreamEvent, TextDelta
from llmost_cli.ui.escape import StreamEscaper, escape, escape_lines

if TYPE_CHECKING:
    from rich.console import Console

    from llmost_cli.core.events import Usage
    from llmost_cli.core.messages import Reply, ToolCall
    from llmost_cli.core.turn import AnswerWriter
    from llmost_cli.env import Environment
    from llmost_cli.errors import LlmostError
    from llmost_cli.ui.livemd import Spinner


@dataclass
class UI:
    """The process's streams and what they are connected to, decided once."""

    out: BinaryIO | None
    err: TextIO
    out_tty: bool
    err_tty: bool
    no_color: bool = False
    show_reasoning: bool = True  # reasoning text on stderr when it is a terminal
    _consoles: dict[str, Console] = field(default_factory=dict)
    _spinner: Spinner | None = None  # the spinner on stderr, while it runs

    # --- stderr: errors, warnings, notes -------------------------------------------------
    def error(self, exc: LlmostError) -> None:
        self._stderr_line("error", str(exc), "bold red")

    def warn(self, text: str) -> None:
        self._stderr_line("warning", text, "yellow")

    def note(self, text: str) -> None:
        self._stderr_line(None, text, "dim")

    def say(self, text: str) -> None:
        """Command output in the REPL: stderr, so that stdout carries answers only.
        Wrapped to the width of a terminal."""
        text = escape(text)
        if self.err_tty:
            from rich.text import Text

            console = self.console("err")
            lines = Text(text).wrap(console, console.width, overflow="fold")
            text = "\n".join(line.plain.rstrip() for line in lines)
        with self._spinner_paused():
            self._err_write(text + "\n")

    def rule(self, text: str) -> None:
        """A dim line between turns (a terminal only)."""
        from rich.text import Text

        with self._spinner_paused():
            line = Text(f"── {escape_lines(text)}", style="dim", overflow="fold")
            self.console("err").print(line, highlight=False)

    def detail(self, text: str) -> None:
        """An indented stderr line under a note (tool commands, arguments, output), kept whole:
        escaped, every line indented, long lines folded at the width of a terminal (never cut,
        never re-spaced)."""
        lines = escape(text).split("\n")
        if self.err_tty:
            from rich.cells import chop_cells

            width = max(self.console("err").width - 4, 8)
            lines = [part for line in lines for part in (chop_cells(line, width) or [""])]
        with self._spinner_paused():
            self._err_write("".join(f"    {line}\n" for line in lines))

    def _stderr_line(self, label: str | None, text: str, style: str) -> None:
        prefix = f"llmost: {label}: " if label else "llmost: "
        text = escape_lines(text)  # one line, always
        with self._spinner_paused():
            if self.err_tty and not self.no_color:
                from rich.text import Text

                line = Text(prefix, style=style)
                line.append(text)
                self.console("err").print(line, soft_wrap=True, highlight=False)
            else:
                self._err_write(prefix + text + "\n")

    def _err_write(self, text: str) -> None:
        self.err.write(text)
        self.err.flush()

    def _spinner_paused(self) -> AbstractContextManager[None]:
        """Around a stderr write: the spinner's line is cleared first and redrawn later."""
        spinner = self._spinner
        return spinner.paused() if spinner is not None else nullcontext()

    def reasoning(self, text: str) -> None:
        """Reasoning text, dimmed on stderr (escaped; callers check ``err_tty``)."""
        if not text:
            return
        if self.no_color:
            self._err_write(text)
            return
        from rich.text import Text

        self.console("err").print(Text(text, style="dim"), end="", soft_wrap=True)
        self.err.flush()

    # --- stdout: the answer only ---------------------------------------------------------
    def write(self, text: str) -> None:
        write_out(self.out, text)

    def json(self, obj: Any, *, pretty: bool = False) -> None:
        text = json.dumps(obj, ensure_ascii=False, indent=2 if pretty else None, allow_nan=False)
        self.write_data(text + "\n")

    def json_array(self, items: Iterable[str], *, pretty: bool = False) -> None:
        """What :meth:`json` writes for a list, from its items already as JSON text (as
        ``json.dumps(item, ensure_ascii=False)`` gives them), written in batches: a list of
        100,000 models is never one string."""
        first, sep = ("[\n  ", ",\n  ") if pretty else ("[", ", ")
        batch: list[str] = []
        size = 0  # characters in batch
        started = False
        for item in items:
            if pretty:
                item = json.dumps(json.loads(item), ensure_ascii=False, indent=2)
                item = item.replace("\n", "\n  ")
            batch += (sep if started else first, item)
            started = True
            size += len(item)
            if size > 1 << 20 or len(batch) > 4000:
                self.write_data("".join(batch))
                batch.clear()
                size = 0
        batch.append(("\n]\n" if pretty else "]\n") if started else "[]\n")
        self.write_data("".join(batch))

    def write_data(self, text: str) -> None:
        """Data from the server on stdout: escaped on a terminal, byte for byte when piped."""
        self.write(escape(text) if self.out_tty else text)

    def console(self, which: str = "out") -> Console:
        """A rich Console on stdout or stderr, built on first use."""
        if which not in self._consoles:
            from rich.console import Console

            err = which == "err"
            stream: Any = self.err if err else _TextOut(self.out, self.out_tty)
            self._consoles[which] = Console(
                file=stream,
                force_terminal=self.err_tty if err else self.out_tty,
                no_color=self.no_color or None,
                highlight=False,
                soft_wrap=False,
            )
        return self._consoles[which]

    def answer_writer(self, *, markdown: bool, quiet: bool = False) -> AnswerWriter:
        """How a streamed answer reaches the user.

        quiet: nothing on stdout while streaming (``-o json`` prints the result afterwards).
        A spinner waits for the first token on stderr whenever that is a terminal.
        """
        if quiet:
            return QuietWriter(self, spinner=self.err_tty)
        if markdown and self.out_tty:
            return MarkdownWriter(self)
        return PlainWriter(self, spinner=self.err_tty)

    def tool_calls(self, calls: list[ToolCall]) -> None:
        """One JSON line per call on stdout (DESIGN.md §2); a warning for unparsable arguments."""
        for call in calls:
            if call.parsed_arguments() is None:
                self.warn(
                    f"tool call {call.id} has arguments that are not valid JSON; shown as received"
                )
            self.write_data(tool_call_line(call) + "\n")

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
    _spinner: Spinner | None = None

    def _spin(self) -> None:
        from llmost_cli.ui.livemd import Spinner

        self._spinner = self.ui._spinner = Spinner(self.ui.console("err"))
        self._spinner.start()

    def _unspin(self) -> None:
        if self._spinner is not None:
            self._spinner.stop()
            if self.ui._spinner is self._spinner:
                self.ui._spinner = None
            self._spinner = None


class _ReasoningMixin(_SpinnerMixin):
    """Reasoning text, dimmed and escaped on stderr when that is a terminal."""

    _reasoning: StreamEscaper | None = None
    _reasoning_open = False  # reasoning shown, not yet ended with a newline

    def _reason(self, text: str) -> None:
        ui = self.ui
        if not (ui.err_tty and ui.show_reasoning):
            return
        self._unspin()
        if self._reasoning is None:
            self._reasoning = StreamEscaper()
        shown = self._reasoning.feed(text)
        if shown:
            ui.reasoning(shown)
            self._reasoning_open = not shown.endswith("\n")

    def _end_reasoning(self) -> None:
        """Before the answer: the reasoning ends with a line of its own."""
        if self._reasoning is not None:
            rest = self._reasoning.close()
            if rest:
                self.ui.reasoning(rest)
                self._reasoning_open = True
        if self._reasoning_open:
            self.ui.reasoning("\n")
            self._reasoning_open = False


class PlainWriter(_ReasoningMixin):
    """Text exactly as received, flushed per chunk; one final newline if missing.

    On a terminal (``--no-markdown``) the text is escaped; piped it is byte for byte.
    """

    def __init__(self, ui: UI, *, spinner: bool = False) -> None:
        self.ui = ui
        self._use_spinner = spinner
        self._last = ""
        self._escaper = StreamEscaper() if ui.out_tty else None

    def start(self, prefill: str) -> None:
        if prefill:
            self._emit(prefill)
        elif self._use_spinner:
            self._spin()

    def event(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._unspin()
            self._end_reasoning()
            self._emit(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reason(event.text)

    def _emit(self, text: str) -> None:
        if self._escaper is not None:
            text = self._escaper.feed(text)
        if text:
            self.ui.write(text)
            self._last = text

    def finish(self, reply: Reply) -> None:
        self._unspin()
        self._end_reasoning()
        self._end_line()

    def abort(self) -> None:
        self._unspin()
        self._end_reasoning()
        self._end_line()

    def _end_line(self) -> None:
        if self._escaper is not None:
            rest = self._escaper.close()
            if rest:
                self.ui.write(rest)
                self._last = rest
        if self._last and not self._last.endswith("\n"):
            self.ui.write("\n")
        self._last = ""


class MarkdownWriter(_ReasoningMixin):
    """Live markdown on a terminal: finished blocks once, only the tail redrawn.

    Reasoning is shown on stderr until the answer starts; after that it would tear the live
    region apart (both are on the terminal), so it is not shown.
    """

    def __init__(self, ui: UI) -> None:
        from llmost_cli.ui.livemd import LiveMarkdown

        self.ui = ui
        self._live = LiveMarkdown(ui.console("out"))
        self._answering = False

    def start(self, prefill: str) -> None:
        if prefill:
            self._answering = True
            self._live.feed(prefill)
        else:
            self._spin()

    def event(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._unspin()
            if not self._answering:
                self._answering = True
                self._end_reasoning()
            self._live.feed(event.text)
        elif isinstance(event, ReasoningDelta) and not self._answering:
            self._reason(event.text)

    def finish(self, reply: Reply) -> None:
        self._unspin()
        self._end_reasoning()
        self._live.finish()

    def abort(self) -> None:
        self._unspin()
        self._end_reasoning()
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
