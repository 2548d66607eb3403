"""``llmost chat``: the REPL on a terminal, one message per line from a pipe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from llmost_cli.cli import services
from llmost_cli.cli.ask import use_markdown
from llmost_cli.core import inputs
from llmost_cli.core.request import TurnOptions
from llmost_cli.core.turn import compose
from llmost_cli.errors import UsageError
from llmost_cli.ui.turnview import ChatScreen

if TYPE_CHECKING:
    from llmost_cli.cli.state import State
    from llmost_cli.core.chat import Session

MAX_LINE_BYTES = 64 * 1024 * 1024

CHAT_HELP = """Chat interactively; PROMPT, if given, is the first turn.

In a terminal: Enter sends, Alt-Enter (Esc Enter) adds a newline, Ctrl-C stops an answer,
Ctrl-D exits; /help lists the slash commands. With standard input from a pipe, each line is
one message and each answer is printed plainly.

\b
Examples:
  llmost chat -m anthropic/claude-3.5-sonnet
  llmost chat --session refactor          # resume (or start) a named conversation
  printf 'hi\\nand again\\n' | llmost chat  # scripted multi-turn
  llmost chat --tool get_weather          # asks y/N before running a declared tool
  llmost chat -f src/ -T review           # the files and the template's prompt go with the
                                          # first message; /file and /template add more later
"""


def chat(state: State, values: dict[str, Any]) -> int:
    """Run ``chat`` with the values of its options (cli/flags.py)."""
    return run_chat(state, ChatOptions.build({k: v for k, v in values.items() if v is not None}))


@dataclass
class ChatOptions(TurnOptions):
    prompt: list[str] = field(default_factory=list)
    yes: bool = False


def run_chat(state: State, opts: ChatOptions) -> int:
    """Check everything, open the store and the client, then feed the session its lines."""
    from llmost_cli.core.chat_commands import command_names

    env, ui = state.env, state.ui
    with ExitStack() as stack:
        session = open_session(state, opts, stack, interactive=env.stdin_isatty)
        if session.interactive:
            greet(state, session)
        first = " ".join(opts.prompt)
        if first.strip():
            session.handle(first, commands=False)
        if session.interactive:
            from llmost_cli.ui import repl

            lines = repl.read_lines(command_names(), session.settings.base_url, warn=ui.warn)
        else:
            lines = stdin_lines(env.stdin)
        return session.run_lines(lines)


def open_session(
    state: State, opts: ChatOptions, stack: ExitStack, *, interactive: bool
) -> Session:
    """Every check before the session starts; the store and the client close with ``stack``."""
    from llmost_cli.api.fetch import make_fetch
    from llmost_cli.core import attachments, templates
    from llmost_cli.core.ask import offered_tools
    from llmost_cli.core.chat import Session
    from llmost_cli.core.chat_commands import COMMANDS

    ui = state.ui
    settings = services.settings_for(state, opts.overrides())
    opts, settings, template = templates.prepare(opts, settings)
    system = inputs.read_text_arg(settings.system, "--system") if settings.system else None
    offered, local = offered_tools(opts, settings)
    compose(settings, opts, [], system=system, user=None, offered=offered)  # bad options fail now
    images = [inputs.image_url(spec) for spec in opts.image]
    fetch = make_fetch(settings.timeout, log=services.debug_log(state))
    context = attachments.load(opts.file, stdin=None, fetch=fetch, warn=ui.warn, note=ui.note)
    key = services.api_key(settings)  # a missing key is an error before the REPL starts
    store = stack.enter_context(
        services.store_for(state, continue_=opts.continue_, session=opts.session)
    )
    thread = services.load_thread(store, continue_=opts.continue_, session=opts.session)
    settings = services.keep_model(settings, thread)
    client = stack.enter_context(services.make_client(state, settings, key))
    runs = bool(local) and (opts.yes or interactive)
    screen = ChatScreen(
        ui,
        markdown=interactive and use_markdown(settings),
        ask=None if opts.yes or not interactive else _ask_on_terminal,
        declared=bool(local),
        runs=runs,
        reasoning=opts.show_reasoning is not False,
    )
    return Session(
        settings,
        opts,
        client,
        screen,
        store,
        recorder_for=lambda t, model: services.StoreRecorder(
            store, t, model=model, warn=ui.warn, tools=offered
        ),
        thread=thread,
        system=system,
        offered=tuple(offered),
        local=local,
        run_tools=runs,
        interactive=interactive,
        images=images,
        commands=COMMANDS,
        context=context,  # -f and -T: with the first message
        template=template,
        fetch=fetch,
    )


def greet(state: State, session: Session) -> None:
    model = session.settings.model or "the account's default model"
    conv = session.thread.conversation
    if conv is not None and session.history:
        title = services.title(conv, session.history)
        state.ui.note(f"continuing {title} ({len(session.history)} messages) with {model}")
    else:
        state.ui.note(f"chatting with {model}")
    state.ui.note("/help lists the commands; Alt-Enter adds a line; Ctrl-D leaves")


def _ask_on_terminal(question: str) -> bool | None:
    from llmost_cli.ui import repl

    return repl.yes_no(question)


def stdin_lines(stream: BinaryIO | None) -> Iterator[str]:
    """One message per line; read lazily, so a script can wait for each answer."""
    if stream is None:
        return
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES:
            raise UsageError(f"an input line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
        yield raw.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")
