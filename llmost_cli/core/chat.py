"""``llmost chat``: one session's state, and what each message or slash command does to it.

The session is fed lines, from the REPL (``ui/repl.py``) or from a pipe, and works without a
terminal or a network: the client, the view, the store and the recorder are handed in. Every
message goes through the one turn engine (``core/turn.py``), as ``ask`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from llmost_cli.core import attachments, inputs, templates, tools
from llmost_cli.core.events import Usage
from llmost_cli.core.messages import Conversation, Message, Thread
from llmost_cli.core.request import TurnOptions
from llmost_cli.core.settings import Settings
from llmost_cli.core.turn import ChatClient, Recorder, TurnResult, TurnView, compose, run_turn
from llmost_cli.errors import Interrupted, LlmostError, OutputClosed, Terminated, UsageError

# These end the process (after the partial answer is stored); other errors end only a turn.
FATAL = (Terminated, OutputClosed)


class ChatStore(Protocol):
    """What the session needs of the conversation store (``store.Store`` provides it)."""

    def get(self, id_or_name: str) -> Conversation | None: ...
    def messages(self, conversation_id: str) -> list[Message]: ...
    def create(self, name: str | None = None, model: str | None = None) -> Conversation: ...
    def append(self, conversation_id: str, messages: Sequence[Message]) -> None: ...
    def rename(self, conversation_id: str, name: str) -> None: ...
    def set_model(self, conversation_id: str, model: str | None) -> None: ...
    def drop_last_exchange(self, conversation_id: str) -> int: ...


class ChatView(TurnView, Protocol):
    """The turn view plus what the session says itself (all on stderr)."""

    def error(self, exc: LlmostError) -> None: ...
    def say(self, text: str) -> None: ...
    def history(self, messages: Sequence[Message]) -> None: ...
    def usage(self, usage: Usage | None, cost: float | None) -> None: ...
    def turn_done(self, result: TurnResult, model: str | None) -> None: ...
    def compose(self) -> str | None: ...
    def copy(self, text: str) -> None: ...


@dataclass
class Session:
    """One chat: the conversation so far and what the next message carries."""

    settings: Settings
    options: TurnOptions
    client: ChatClient
    view: ChatView
    store: ChatStore | None
    recorder_for: Callable[[Thread, Callable[[], str | None]], Recorder]
    thread: Thread = field(default_factory=Thread)
    system: str | None = None  # -s or the profile's; wins over a stored one
    offered: tuple[dict[str, Any], ...] = ()
    local: dict[str, tools.LocalTool] = field(default_factory=dict)
    run_tools: bool = False
    interactive: bool = True
    images: list[str] = field(default_factory=list)  # attached to the next message
    prefill: str | None = None  # the next answer only
    usages: list[tuple[Usage, str | None]] = field(default_factory=list)
    answers: int = 0  # requests answered in this session (with or without usage)
    failure: LlmostError | None = None  # the first one: line mode's exit code
    commands: Mapping[str, Command] = field(default_factory=dict)  # the slash commands
    context: attachments.Context = field(default_factory=attachments.Context)  # -f, /file
    template: templates.Filled | None = None  # -T, /template: its prompt wraps the next message
    fetch: attachments.Fetch | None = None  # for /file URL
    unanswered: Message | None = None  # a message whose turn failed

    def __post_init__(self) -> None:
        self._recorder = self.recorder_for(self.thread, lambda: self.settings.model)
        self.prefill = self.prefill or self.options.prefill

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
                return run_command(self, stripped)
            if commands and stripped.startswith("//"):  # a message that starts with a slash
                line = line.lstrip()[1:]
            self.send(line)
        except FATAL:
            raise
        except Interrupted:
            if not self.interactive:
                raise
        except LlmostError as exc:
            self.view.error(exc)
            self._fail(exc)
        return True

    # -- turns --------------------------------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        return self.thread.messages

    def send(self, text: str) -> None:
        """A message with what is attached to it: files, a template's prompt, images."""
        composed = attachments.compose_text(text, self.context, None)
        if self.template is not None:
            composed = self.template.prompt(composed)  # a missing value fails before clearing
        images = [*self.images, *self.context.images]
        attached = tuple(block.text for block in self.context.blocks)
        self.images, self.context, self.template = [], attachments.Context(), None
        self.ask(inputs.user_content(composed, images), attached)

    def ask(self, content: str | list[dict[str, Any]], attached: tuple[str, ...] = ()) -> None:
        """One turn through the engine; a turn that failed before any answer leaves no trace.
        ``attached``: the -f texts inside ``content`` (the store keeps each once)."""
        prefill, self.prefill = self.prefill or "", None
        user = Message(role="user", content=content, attached=attached)
        turn = compose(
            self.settings,
            self.options,
            self.history,
            system=self.system,
            user=user,
            prefill=prefill,
            offered=self.offered,
            local=self.local,
            run_tools=self.run_tools,
        )
        result = run_turn(turn, self.client, self.view, self._recorder)
        self.history.extend(result.recorded)
        self.usages.extend(result.usages)
        self.answers += result.requests if result.kept_question else 0
        self.unanswered = None if result.kept_question else user
        self._report(result)

    def _report(self, result: TurnResult) -> None:
        reply, error = result.reply, result.error
        if isinstance(error, Interrupted) and self.interactive:
            kept = "the partial answer is kept" if reply.has_content else "nothing was kept"
            self.view.note(f"stopped; {kept}")
        elif isinstance(error, (*FATAL, Interrupted)):
            raise error
        elif error is not None:
            self.view.error(error)
            self._fail(error)
        else:
            if reply.finish_reason in ("length", "content_filter"):
                why = "max_tokens reached" if reply.finish_reason == "length" else "content filter"
                self.view.warn(f"the answer was cut off ({reply.finish_reason}: {why})")
            elif reply.empty and not reply.prefill and not result.cancelled:
                self.view.warn("the model returned an empty answer")
            self.view.turn_done(result, self.settings.model)

    def _fail(self, exc: LlmostError) -> None:
        if self.failure is None:
            self.failure = exc

    # -- state changes (the slash commands call these) ----------------------------------------

    def enter(self, conversation: Conversation | None, messages: Sequence[Message] = ()) -> None:
        """Make ``conversation`` current (None: a new one); a stored model is kept (no -m)."""
        self.thread = Thread(
            conversation, list(messages), conversation.name if conversation else None
        )
        self._recorder = self.recorder_for(self.thread, lambda: self.settings.model)
        self.images, self.prefill, self.unanswered = [], None, None
        self.context, self.template = attachments.Context(), None
        if conversation and conversation.model and not self.settings.given_on_command_line("model"):
            self.settings = self.settings.with_values(
                source="conversation", model=conversation.model
            )

    def clear(self) -> None:
        """A new, empty conversation; the stored one stays in the store."""
        self.enter(None)

    def last_answer(self) -> str | None:
        for message in reversed(self.history):
            if message.role == "assistant" and isinstance(message.content, str):
                return message.content
        return None

    def switch_model(self, model: str) -> None:
        self.settings = self.settings.with_values(model=model)
        conv = self.thread.conversation
        if self.store is not None and conv is not None:
            self.store.set_model(conv.id, model)

    def set_sampling(self, key: str, value: Any) -> None:
        self.settings = self.settings.with_values(**{key: value})

    def set_system(self, text: str) -> None:
        self.system = text

    def effective_system(self) -> str | None:
        from llmost_cli.core.turn import last_system

        return self.system or last_system(self.history)

    def attach_image(self, url: str) -> None:
        self.images.append(url)

    def set_prefill(self, text: str) -> None:
        self.prefill = text

    def attach(self, spec: str) -> attachments.Context:
        """``/file PATH_OR_URL``: checked and read now, sent with the next message."""
        added = attachments.load(
            [spec],
            stdin=None,
            fetch=self.fetch,
            warn=self.view.warn,
            note=self.view.note,
            used=self.context.text_bytes,
        )
        self.context.extend(added)
        return added

    def use_template(self, filled: templates.Filled) -> None:
        """``/template NAME``: its system prompt, model, sampling, schema and tools from now on;
        its prompt for the next message."""
        from llmost_cli.core.ask import offered_tools

        template = filled.template
        system = filled.system()
        if system is not None:
            self.set_system(system)
        if template.model:
            self.switch_model(template.model)
        for key, value in template.sampling.items():
            self.set_sampling(key, value)
        changes: dict[str, Any] = {}
        if template.schema:
            changes |= {"schema": template.schema, "json_mode": False}
        if template.tools:
            changes |= {"tool": list(template.tools), "tools_all": False, "tools": None}
        if changes:
            options = replace(self.options, **changes)
            offered, local = offered_tools(options, self.settings)  # undeclared: a usage error
            self.options, self.offered, self.local = options, tuple(offered), local
            confirmed = bool(getattr(options, "yes", False)) or self.interactive
            self.run_tools = bool(local) and confirmed
        self.template = filled if template.prompt is not None else None

    def drop_last_exchange(self) -> str | list[dict[str, Any]] | None:
        """Forget the last user message and what followed; its content, or None if none."""
        users = [i for i, m in enumerate(self.history) if m.role == "user"]
        if not users:
            return None
        content = self.history[users[-1]].content
        conv = self.thread.conversation
        if self.store is not None and conv is not None:
            self.store.drop_last_exchange(conv.id)
        del self.history[users[-1] :]
        return content if content is not None else ""

    def retry(self) -> bool:
        """Ask the last question again: a failed one as it was, else the last answered one."""
        if self.unanswered is not None:
            self.ask(self.unanswered.content or "", self.unanswered.attached)
            return True
        users = [m for m in self.history if m.role == "user"]
        content = self.drop_last_exchange()
        if content is None:
            return False
        self.ask(content, users[-1].attached)
        return True

    def save(self, name: str) -> None:
        store = self._need_store()
        conv = self.thread.conversation
        if conv is None:
            conv = store.create(name=name, model=self.settings.model)
            store.append(conv.id, self.history)
            self.enter(conv, self.history)
        else:
            store.rename(conv.id, name)
            conv.name = name

    def load(self, ref: str) -> Conversation:
        store = self._need_store()
        conv = store.get(ref)
        if conv is None:
            raise UsageError(f"no saved conversation {ref!r}")
        self.enter(conv, store.messages(conv.id))
        return conv

    def fork(self, name: str | None = None) -> Conversation:
        """A new stored conversation holding a copy of this one so far; it becomes current."""
        store = self._need_store()
        conv = store.create(name=name, model=self.settings.model)
        messages = list(self.history)
        system = self.effective_system()
        if system and not any(m.role == "system" for m in messages):
            messages.insert(0, Message(role="system", content=system))
        store.append(conv.id, messages)
        self.enter(conv, messages)
        return conv

    def _need_store(self) -> ChatStore:
        if self.store is None:
            from llmost_cli.errors import StoreError

            raise StoreError("the conversation store is not available in this session")
        return self.store


# -- slash commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A slash command: ``/name usage``, one line of help, and what it does to a session."""

    name: str
    usage: str
    help: str
    handler: Callable[[Session, str], bool | None]  # False: leave the chat


def run_command(session: Session, line: str) -> bool:
    name, _, arg = line.partition(" ")
    name = name.lower()
    found = session.commands.get(name)
    if found is None:
        raise UsageError(f"unknown command {name}", hint="/help lists the commands")
    return found.handler(session, arg.strip()) is not False
