"""``llmost chat``: a conversation session (turns, tools, storage) and the line-by-line mode.

The terminal REPL (prompt_toolkit) lives in ``repl.py`` and is imported only when stdin is a
terminal. Everything here works without one: a session is fed lines, from the REPL or from a
pipe, and is tested with plain strings.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from llmost_cli.core import chat_commands, tools
from llmost_cli.core import inputs as conversation
from llmost_cli.core import settings as config
from llmost_cli.core.ask import (
    Outcome,
    offered_tools,
    open_conversation,
    run_declared,
    stream_answer,
    tools_may_run,
    use_markdown,
)
from llmost_cli.core.messages import Message, ToolCall
from llmost_cli.core.request import TurnOptions, build_body
from llmost_cli.errors import (
    Interrupted,
    LlmostError,
    OutputClosed,
    StoreError,
    Terminated,
    UsageError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmost_cli.api.client import Client
    from llmost_cli.core.events import Usage
    from llmost_cli.core.messages import Conversation
    from llmost_cli.core.settings import Settings
    from llmost_cli.core.tools import LocalTool
    from llmost_cli.store.store import Store
    from llmost_cli.ui.output import UI, AnswerWriter

# These end the process (after the partial answer is stored); other errors end only a turn.
_FATAL = (Terminated, OutputClosed, Interrupted)
_COMMAND = re.compile(r"(/\S*)\s*(.*)", re.DOTALL)


@dataclass
class ChatOptions(TurnOptions):
    prompt: list[str] = field(default_factory=list)
    yes: bool = False


def run(
    opts: ChatOptions, ui: UI, *, profile: str | None, log: Callable[[str], None] | None
) -> int:
    interactive = sys.stdin is not None and sys.stdin.isatty()
    with ExitStack() as stack:
        session = open_session(opts, ui, stack, profile=profile, log=log, interactive=interactive)
        if interactive:
            session.greet()
        first = " ".join(opts.prompt)
        if first.strip():
            session.handle(first, commands=False)
        if interactive:
            from llmost_cli.ui import repl

            lines = repl.read_lines(
                chat_commands.COMMAND_NAMES, session.settings.base_url, warn=ui.warn
            )
        else:
            lines = stdin_lines(sys.stdin.buffer if sys.stdin is not None else None)
        return session.run_lines(lines)


def open_session(
    opts: ChatOptions,
    ui: UI,
    stack: ExitStack,
    *,
    profile: str | None,
    log: Callable[[str], None] | None = None,
    interactive: bool,
) -> Session:
    """Check the options, open the store and the HTTP client (closed with ``stack``)."""
    settings = config.resolve(config.load_file(), profile, opts.overrides())
    system = conversation.read_text_arg(settings.system, "--system") if settings.system else None
    offered = offered_tools(opts, settings)
    local = tools.declared_tools(settings.tools) if (opts.tool or opts.tools_all) else {}
    build_body(settings, [], opts, tools=offered)  # bad option combinations fail now, not later
    images = [conversation.image_url(spec) for spec in opts.image]
    api_key = settings.api_key()  # a missing key is an error before the REPL starts
    from llmost_cli.api.client import Client

    store, conv = stack.enter_context(open_conversation(opts, settings, ui, create=False))
    client = stack.enter_context(
        Client(
            settings.base_url,
            api_key,
            timeout=settings.timeout,
            retries=settings.retries,
            log=log,
        )
    )
    session = Session(
        settings,
        opts,
        ui,
        client,
        store,
        conv,
        system=system,
        tools=offered,
        interactive=interactive,
    )
    session.images = images
    session.local = local
    session.run_tools = opts.yes or interactive
    if interactive and not opts.yes:
        session.confirm = _ask_on_terminal
    return session


def _ask_on_terminal(question: str) -> bool:
    from llmost_cli.ui import repl

    return repl.yes_no(question)


def stdin_lines(stream: BinaryIO | None) -> Iterator[str]:
    """One message per line; read lazily, so a script can wait for each answer."""
    if stream is None:
        return
    for raw in stream:
        yield raw.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")


class Session:
    """One chat: the conversation so far, what the next turn carries, and the store."""

    def __init__(
        self,
        settings: Settings,
        opts: TurnOptions,
        ui: UI,
        client: Client,
        store: Store | None,
        conv: Conversation | None,
        *,
        system: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        interactive: bool = True,
    ) -> None:
        self.settings = settings
        self.opts = opts
        self.ui = ui
        self.client = client
        self.store = store
        self.conv: Conversation | None = None
        self.tools = tools
        self._tools_saved = False
        self.local: dict[str, LocalTool] = {}  # declared tools offered in this chat
        self.run_tools = interactive  # line mode runs them only with --yes
        self.confirm: Callable[[str], bool] | None = None  # None: run without asking
        self.interactive = interactive
        self.markdown = interactive and use_markdown(opts, settings)
        self.history: list[Message] = []
        self._system_arg = system  # -s or the profile's: wins over a stored one
        self.system = system
        self.system_stored: str | None = None  # the system prompt the store already has
        self.images: list[str] = []  # attached to the next message
        self.prefill: str | None = opts.prefill  # the next answer only
        self.usages: list[tuple[Usage, str | None]] = []
        self.failure: LlmostError | None = None  # the first one: line mode's exit code
        if conv is not None:
            self.enter(conv)

    # -- input --------------------------------------------------------------------------------

    def run_lines(self, lines: Iterable[str]) -> int:
        """Handle lines until they end or /exit. Exit code: 0, or in line mode the first error's."""
        for line in lines:
            try:
                if not self.handle(line):
                    break
            except KeyboardInterrupt:
                if not self.interactive:
                    raise
                self.ui.err.write("\n")
        if self.interactive or self.failure is None:
            return 0
        return int(self.failure.exit_code)

    def handle(self, line: str, *, commands: bool = True) -> bool:
        """A slash command or a message; False when the user asked to leave."""
        stripped = line.strip()
        if not stripped:
            return True
        try:
            if commands and stripped.startswith("/") and not stripped.startswith("//"):
                return self.command(stripped)
            if commands and stripped.startswith("//"):  # a message that starts with a slash
                line = line.lstrip()[1:]
            self.send(line)
        except _FATAL:
            raise
        except LlmostError as exc:
            self.ui.error(exc)
            self._fail(exc)
        return True

    def greet(self) -> None:
        model = self.settings.model or "the account's default model"
        if self.conv is not None and self.history:
            name = self.conv.name or self.conv.id
            self.ui.note(f"continuing {name} ({len(self.history)} messages) with {model}")
        else:
            self.ui.note(f"chatting with {model}")
        self.ui.note("/help lists the commands; Alt-Enter adds a line; Ctrl-D leaves")

    # -- turns --------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        content = conversation.user_content(text, self.images)
        self.images = []
        self.turn(content)

    def turn(self, content: str | list[dict[str, Any]]) -> None:
        user = {"role": "user", "content": content}
        context = [m for m in self.history if m.role != "system"]
        messages = conversation.build_messages(
            context, system=self.system, new=[user], prefill=self.prefill
        )
        prefill, self.prefill = self.prefill or "", None
        outcome = self._ask(messages, prefill)
        self._save(content, outcome)
        rounds = 0
        while self._should_run_tools(outcome, rounds):
            rounds += 1
            results = [self._call(call) for call in outcome.reply.tool_calls]
            self.history.extend(results)
            self._persist(results)
            context = [m for m in self.history if m.role != "system"]
            outcome = self._ask(conversation.build_messages(context, system=self.system), "")
            self._keep(outcome)
        self._report(outcome)

    def _ask(self, messages: list[dict[str, Any]], prefill: str) -> Outcome:
        body = build_body(self.settings, messages, self.opts, tools=self.tools)
        outcome = stream_answer(self.client, body, prefill, self._writer())
        reply = outcome.reply
        if reply.usage is not None:
            self.usages.append((reply.usage, reply.model or self.settings.model))
        return outcome

    def _keep(self, outcome: Outcome) -> None:
        """Store the answer of a tool round (the user message is stored already)."""
        if outcome.keeps_reply:
            message = outcome.reply.to_message()
            self.history.append(message)
            self._persist([message])

    def _should_run_tools(self, outcome: Outcome, rounds: int) -> bool:
        calls = outcome.reply.tool_calls
        if outcome.error is not None or not calls:
            return False
        if not self.local:
            self.ui.warn(
                "the model asked to call tools, which chat runs only when they are declared in "
                "the config file (--tool NAME); answer them with: "
                "llmost ask -c --tool-result ID=VALUE"
            )
            return False
        if not self.run_tools:  # the writer printed the calls
            self.ui.warn(
                "not running declared tools: chat reads messages from standard input, so it "
                "cannot ask first; pass --yes to run them"
            )
            return False
        limit = self.settings.max_tool_rounds
        return tools_may_run(self.ui, calls, self.local, rounds, limit, self.ui.tool_calls)

    def _call(self, call: ToolCall) -> Message:
        """Run one call of a declared tool, after asking; the message that carries its result."""
        tool = self.local[call.name]
        command = " ".join(shlex.quote(a) for a in tool.command)
        shown = f"{call.name}: {command} <<< {call.arguments}"
        if self.confirm is not None:
            self.ui.note(f"the model wants to run tool {shown}")
            if not self.confirm(f"run {call.name}?"):
                self.ui.note(f"not running {call.name}; the model is told you declined")
                return _declined(call)
        else:
            self.ui.note(f"running tool {shown}")
        return run_declared(self.ui, tool, call)

    def _writer(self) -> AnswerWriter:
        writer = self.ui.answer_writer(markdown=self.markdown)
        # Calls that will run are shown as they run; the others are printed (DESIGN.md §2).
        writer.show_tool_calls = not self._runs_tools
        return writer

    @property
    def _runs_tools(self) -> bool:
        return bool(self.local) and self.run_tools

    def _save(self, content: str | list[dict[str, Any]], outcome: Outcome) -> None:
        new: list[Message] = []
        if self.system and self.system != self.system_stored:
            new.append(Message(role="system", content=self.system))
        new.append(Message(role="user", content=content))
        if outcome.keeps_reply:  # if not, /retry asks again
            new.append(outcome.reply.to_message())
        self.history.extend(new)
        if self.system:
            self.system_stored = self.system
        self._persist(new)

    def _persist(self, new: list[Message]) -> None:
        if self.store is None:
            return
        try:
            if self.conv is None:
                self.conv = self.store.create(model=self.settings.model)
            self.store.append(self.conv.id, new)
            if self.tools and not self._tools_saved:  # `ask -c --tool-result` offers them again
                self.store.set_tools(self.conv.id, self.tools)
                self._tools_saved = True
        except StoreError as exc:
            self.ui.warn(f"{exc.message}; this exchange was not saved")

    def _report(self, outcome: Outcome) -> None:
        reply, error = outcome.reply, outcome.error
        if isinstance(error, Interrupted) and self.interactive:
            self.ui.note("stopped; the partial answer is kept")
        elif isinstance(error, _FATAL):
            raise error
        elif error is not None:
            self.ui.error(error)
            self._fail(error)
        elif reply.finish_reason in ("length", "content_filter"):
            why = "max_tokens reached" if reply.finish_reason == "length" else "content filter"
            self.ui.warn(f"the answer was cut off ({reply.finish_reason}: {why})")
        elif reply.empty and reply.tool_calls:
            pass  # _should_run_tools said why they were not run
        elif reply.empty and not reply.prefill:
            self.ui.warn("the model returned an empty answer")

    def _fail(self, exc: LlmostError) -> None:
        if self.failure is None:
            self.failure = exc

    def enter(self, conv: Conversation) -> None:
        """Make ``conv`` the current conversation: its messages, system prompt and model."""
        self.conv, self._tools_saved = conv, False
        self.history = self.store.messages(conv.id) if self.store is not None else []
        stored = [m.content for m in self.history if m.role == "system"]
        self.system_stored = stored[-1] if stored and isinstance(stored[-1], str) else None
        self.system = self._system_arg or self.system_stored
        if conv.model and self.opts.model is None:
            self.settings.model = conv.model

    # -- slash commands -----------------------------------------------------------------------

    def command(self, line: str) -> bool:
        match = _COMMAND.fullmatch(line)
        assert match is not None
        name, arg = match.group(1).lower(), match.group(2)
        if name in ("/exit", "/quit"):
            return False
        if name not in chat_commands.COMMAND_NAMES:
            raise UsageError(f"unknown command {name}", hint="/help lists the commands")
        handler = getattr(chat_commands, "cmd_" + name[1:])
        handler(self, arg)
        return True

    def say(self, text: str) -> None:
        """Command output: stderr, so that stdout carries answers only."""
        self.ui.err.write(text + "\n")
        self.ui.err.flush()


def _declined(call: ToolCall) -> Message:
    return Message(
        role="tool",
        content=f"The user declined to run {call.name}; do not call it again for this request.",
        tool_call_id=call.id,
        name=call.name,
    )
