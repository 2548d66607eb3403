"""How a turn of the engine (``core/turn.py``) reaches the user: answer, tool calls, tool runs."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llmost_cli.core.events import ReasoningDelta

if TYPE_CHECKING:
    from llmost_cli.core.events import StreamEvent, Usage
    from llmost_cli.core.messages import Message, Reply, ToolCall
    from llmost_cli.core.tools import LocalTool, ToolRun
    from llmost_cli.core.turn import AnswerWriter, TurnResult
    from llmost_cli.errors import LlmostError
    from llmost_cli.ui.output import UI

# Asks a yes/no question on the terminal: True, False, or None when the user cancelled.
Ask = Callable[[str], "bool | None"]
SHOWN_OUTPUT_LINES = 8


class TurnScreen:
    """The ``TurnView`` of ``ask`` and ``chat``.

    quiet: nothing on stdout while streaming (``-o json`` prints the result afterwards).
    ask: asks before each tool run (the REPL); None runs without asking (``--yes``).
    """

    def __init__(
        self,
        ui: UI,
        *,
        markdown: bool,
        quiet: bool = False,
        ask: Ask | None = None,
        reasoning: bool = True,
    ) -> None:
        self.ui = ui
        self.markdown = markdown
        self.quiet = quiet
        self.ask = ask
        self.reasoning = reasoning  # --show-reasoning (default) / --hide-reasoning

    def answer_writer(self) -> AnswerWriter:
        writer = self.ui.answer_writer(markdown=self.markdown, quiet=self.quiet)
        return writer if self.reasoning else _WithoutReasoning(writer)

    def tool_calls(self, calls: Sequence[ToolCall]) -> None:
        if not self.quiet:
            self.ui.tool_calls(list(calls))

    def confirm_tool(self, tool: LocalTool, call: ToolCall) -> bool | None:
        if self.ask is None:
            return True
        self.ui.note(f"the model wants to run tool {call.name}:")
        for line in describe_call(tool, call):
            self.ui.detail(line)
        return self.ask(f"run {call.name}?")

    def tool_started(self, tool: LocalTool, call: ToolCall) -> None:
        if self.ask is None:  # asked already: the call was shown in full
            self.ui.note(f"running tool {call.name}: {command_line(tool)}")
            self.ui.detail(f"arguments: {shown_arguments(call)}")

    def tool_finished(self, tool: LocalTool, call: ToolCall, run: ToolRun) -> None:
        if run.note:
            (self.ui.note if run.ok else self.ui.warn)(run.note)
        if run.ok and self.ask is not None:
            lines = run.output.splitlines() or ["(no output)"]
            for line in lines[:SHOWN_OUTPUT_LINES]:
                self.ui.detail(f"│ {line}")
            if len(lines) > SHOWN_OUTPUT_LINES:
                self.ui.detail(f"│ … {len(lines) - SHOWN_OUTPUT_LINES} more lines")

    def warn(self, text: str) -> None:
        self.ui.warn(text)

    def note(self, text: str) -> None:
        self.ui.note(text)


class _WithoutReasoning:
    """A writer that never sees the reasoning (``--hide-reasoning``); the reply keeps it."""

    def __init__(self, writer: AnswerWriter) -> None:
        self._writer = writer

    def start(self, prefill: str) -> None:
        self._writer.start(prefill)

    def event(self, event: StreamEvent) -> None:
        if not isinstance(event, ReasoningDelta):
            self._writer.event(event)

    def finish(self, reply: Reply) -> None:
        self._writer.finish(reply)

    def abort(self) -> None:
        self._writer.abort()


def command_line(tool: LocalTool) -> str:
    return " ".join(shlex.quote(a) for a in tool.command)


def shown_arguments(call: ToolCall) -> str:
    """The arguments exactly as the tool will read them on stdin, whole (the UI escapes them)."""
    return call.arguments or "{}"


def describe_call(tool: LocalTool, call: ToolCall) -> list[str]:
    """What the user confirms: the real command and the real arguments (escaped on display)."""
    return [f"command: {command_line(tool)}", f"stdin: {shown_arguments(call)}"]


class ChatScreen(TurnScreen):
    """The ``ChatView`` of the REPL and of line mode (``chat`` with a pipe on stdin).

    declared: tools declared in the config file are offered; runs: they may run.
    """

    def __init__(
        self,
        ui: UI,
        *,
        markdown: bool,
        ask: Ask | None = None,
        declared: bool = False,
        runs: bool = False,
        reasoning: bool = True,
    ) -> None:
        super().__init__(ui, markdown=markdown, ask=ask, reasoning=reasoning)
        self._answered = False
        self._declared = declared
        self._runs = runs

    def tool_calls(self, calls: Sequence[ToolCall]) -> None:
        super().tool_calls(calls)
        if not self._declared:
            self.ui.warn(
                "the model asked to call tools, which chat runs only when they are declared in "
                "the config file (--tool NAME); answer them with: "
                "llmost ask -c --tool-result ID=VALUE"
            )
        elif not self._runs:
            self.ui.warn(
                "not running declared tools: chat reads messages from standard input, so it "
                "cannot ask first; pass --yes to run them"
            )

    def answer_writer(self) -> AnswerWriter:
        if self._answered and not self.ui.out_tty:
            self.ui.write("\n")  # line mode: a blank line between answers
        self._answered = False
        return super().answer_writer()

    def error(self, exc: LlmostError) -> None:
        self.ui.error(exc)

    def say(self, text: str) -> None:
        self.ui.say(text)

    def history(self, messages: Sequence[Message]) -> None:
        self.ui.say("\n\n".join(describe(m) for m in messages))

    def usage(self, usage: Usage | None, cost: float | None) -> None:
        self.ui.usage(usage, cost)

    def compose(self) -> str | None:
        """The next message, written in $VISUAL/$EDITOR (None: nothing written)."""
        from llmost_cli.ui.editor import edit_text

        return edit_text(self.ui)

    def copy(self, text: str) -> None:
        """To the terminal's clipboard by OSC 52: the one escape sequence llmost writes on
        purpose, for text the user asked to copy (base64, so nothing in it is interpreted)."""
        import base64

        from llmost_cli.errors import UsageError

        if not self.ui.err_tty:
            raise UsageError("/copy needs a terminal (it uses the terminal's clipboard, OSC 52)")
        data = base64.b64encode(text.encode("utf-8")).decode("ascii")
        self.ui.err.write(f"\x1b]52;c;{data}\x07")
        self.ui.err.flush()

    def turn_done(self, result: TurnResult, model: str | None) -> None:
        self._answered = True
        if self.ui.err_tty and self.ui.out_tty:  # a dim boundary between turns in the REPL
            used = result.usage.total_tokens if result.usage else None
            tokens = f"{used} tokens" if used is not None else "tokens unknown"
            self.ui.rule(f"{result.reply.model or model or 'default model'} · {tokens}")


def describe(message: Message) -> str:
    """A message as /history shows it."""
    label = {"user": "you", "assistant": "assistant", "system": "system"}.get(
        message.role, message.role
    )
    content = message.content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                parts.append("[image]")
        text = "\n".join(parts)
    else:
        text = content or ""
    for call in message.tool_calls or []:
        fn = call.get("function", {})
        text += f"\n[tool call {fn.get('name')}({fn.get('arguments', '')})]"
    if message.partial:
        text += " [cut off]"
    return f"{label}: {text.strip()}"
