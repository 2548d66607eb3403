"""Wiring: the one place that builds settings, the HTTP client and the store for a command.

Commands call these and hand the objects to the core, which never builds them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from llmost_cli.core import configfile
from llmost_cli.core.messages import Conversation, Message, Thread
from llmost_cli.core.settings import Settings, resolve, resolve_key
from llmost_cli.errors import StoreError

if TYPE_CHECKING:
    from llmost_cli.api.client import Client
    from llmost_cli.cli.state import State
    from llmost_cli.store.store import Store

STORE_WAIT_AFTER_ANSWER = 2.0  # seconds to wait for another writer before giving up on saving


def settings_for(state: State, overrides: Mapping[str, Any] | None = None) -> Settings:
    cfg = configfile.load_file()
    return resolve(cfg, state.profile, overrides or {}, state.env.environ)


def debug_log(state: State) -> Callable[[str], None] | None:
    if not state.debug:
        return None
    err = state.env.stderr

    def log(line: str) -> None:
        err.write(f"llmost: debug: {line}\n")
        err.flush()

    return log


def make_client(state: State, settings: Settings, api_key: str | None) -> Client:
    """The HTTP client for ``settings``; retries are shown on a terminal's stderr."""
    from llmost_cli.api.client import Client

    ui = state.ui

    def on_retry(attempt: int, total: int, delay: float, why: str) -> None:
        if ui.err_tty:
            ui.note(f"retrying in {delay:.0f} s ({why}, {attempt}/{total})")

    return Client(
        settings.base_url,
        api_key,
        timeout=settings.timeout,
        retries=settings.retries,
        log=debug_log(state),
        sleep=state.env.sleep,
        on_retry=on_retry,
    )


def api_key(settings: Settings, *, required: bool = True) -> str | None:
    return resolve_key(settings, required=required)


def open_store(state: State, *, required: bool, busy_timeout: float | None = None) -> Store | None:
    """The conversation store; when it cannot be opened, None with a warning unless required."""
    from llmost_cli import paths
    from llmost_cli.store.store import Store

    try:
        store = Store(paths.database_file())
    except StoreError as exc:
        if required:
            raise
        state.ui.warn(f"{exc.message}; this conversation will not be saved")
        return None
    if busy_timeout is not None:
        store.set_busy_timeout(busy_timeout)
    return store


@contextmanager
def store_for(
    state: State, *, continue_: bool, session: str | None, enabled: bool = True
) -> Iterator[Store | None]:
    """The store a turn needs: required to continue a conversation, optional otherwise."""
    if not enabled:
        yield None
        return
    store = open_store(state, required=continue_ or bool(session))
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def load_thread(store: Store | None, *, continue_: bool, session: str | None) -> Thread:
    """``--session NAME`` (existing or not yet), ``-c`` (the latest), or a new conversation."""
    if store is None:
        return Thread()
    conversation: Conversation | None = None
    if session:
        conversation = store.get(session)
        if conversation is None:
            return Thread(name=session)
    elif continue_:
        conversation = store.latest()
    if conversation is None:
        return Thread()
    return Thread(conversation, store.messages(conversation.id), conversation.name)


def keep_model(settings: Settings, thread: Thread) -> Settings:
    """A continued conversation keeps its model unless ``-m`` names another."""
    conv = thread.conversation
    if conv is not None and conv.model and not settings.given_on_command_line("model"):
        return settings.with_values(source=f"conversation {conv.name or conv.id}", model=conv.model)
    return settings


def title(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The conversation as people know it: its name, else its first words."""
    if conversation.name:
        return repr(conversation.name)
    for message in messages:
        if message.role == "user":
            content = message.content
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            words = " ".join(str(content or "").split())
            if words:
                return f"“{words[:48]}{'…' if len(words) > 48 else ''}”"
    return conversation.id


class StoreRecorder:
    """Records a turn's messages, creating the conversation with its first exchange.

    A store that cannot be written costs the saving, never the answer: one warning.
    """

    def __init__(
        self,
        store: Store | None,
        thread: Thread,
        *,
        model: Callable[[], str | None],
        warn: Callable[[str], None],
        tools: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.store = store
        self.thread = thread
        self._model = model
        self._warn = warn
        self._tools = list(tools)
        self.failed = False

    def record(self, messages: Sequence[Message]) -> str | None:
        store = self.store
        if store is None or not messages or self.failed:
            return None
        try:
            store.set_busy_timeout(STORE_WAIT_AFTER_ANSWER)
            conv = self.thread.conversation
            if conv is None:
                name, model = self.thread.name, self._model()
                # another llmost may have created the named conversation meanwhile: join it
                conv = store.get_or_create(name, model) if name else store.create(model=model)
                self.thread.conversation = conv
            store.append(conv.id, messages)
            if self._tools:  # `ask -c --tool-result` offers them again
                store.set_tools(conv.id, self._tools)
                self._tools = []
        except StoreError as exc:
            self.failed = True
            self._warn(f"{exc.message}; this exchange was not saved")
            return None
        return conv.id
