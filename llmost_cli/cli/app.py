"""The Typer app: commands parse options, call the core and hand results to the renderer.

Building typer's click tree costs time per command (typer reads every signature), so a run
builds only the command it was asked for (``command(name)``); help, completion and unknown
words get the whole tree (``command()``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Annotated, Any

import typer

from llmost_cli import __version__
from llmost_cli.cli.flags import SPECS
from llmost_cli.cli.options import state_of, typer_command

ROOT_HELP = """Chat with LLMost (or any OpenAI-compatible server) from the terminal.

\b
Examples:
  llmost config set api_key                     # once: store the key
  git diff | llmost ask "review this change"    # one-shot, in a pipeline
  llmost chat                                   # interactive; /help inside
"""


def _ask(app: typer.Typer) -> None:
    from llmost_cli.cli.ask import ASK_HELP, ask

    app.command(help=ASK_HELP, no_args_is_help=False)(typer_command(SPECS["ask"], ask, ASK_HELP))


def _chat(app: typer.Typer) -> None:
    from llmost_cli.cli.chat import CHAT_HELP, chat

    app.command(help=CHAT_HELP)(typer_command(SPECS["chat"], chat, CHAT_HELP))


def _batch(app: typer.Typer) -> None:
    from llmost_cli.cli.batch import BATCH_HELP, batch

    app.command(help=BATCH_HELP)(typer_command(SPECS["batch"], batch, BATCH_HELP))


def _group(module: str, attribute: str, name: str) -> Callable[[typer.Typer], None]:
    def add(app: typer.Typer) -> None:
        app.add_typer(getattr(importlib.import_module(module), attribute), name=name)

    return add


def _conversations(app: typer.Typer) -> None:
    from llmost_cli.cli.conversations import register

    register(app)  # as `conversations` and `conv`


# In the order of `llmost --help`.
COMMANDS: dict[str, Callable[[typer.Typer], None]] = {
    "ask": _ask,
    "chat": _chat,
    "batch": _batch,
    "config": _group("llmost_cli.cli.config", "config_app", "config"),
    "models": _group("llmost_cli.cli.models", "models_app", "models"),
    "templates": _group("llmost_cli.cli.templates", "templates_app", "templates"),
    "conversations": _conversations,
}
ALIASES = {"conv": "conversations"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmost {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", metavar="NAME", help="Config profile to use.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and HTTP traffic (key redacted).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    state = state_of(ctx)
    state.profile = profile
    state.debug = state.debug or debug


def make_app(names: tuple[str, ...] | None = None) -> typer.Typer:
    """The app with the commands ``names`` (None: every command)."""
    app = typer.Typer(
        # Plain click help: rich's formatter imports rich.markdown (and pygments) at start-up.
        rich_markup_mode=None,
        name="llmost",
        help=ROOT_HELP,
        no_args_is_help=True,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    for name, add in COMMANDS.items():
        if names is None or name in names:
            add(app)
    return app


@functools.cache
def command(name: str | None = None) -> Any:
    """The click command behind the app, with only ``name`` when given (typer's own click:
    typed loosely on purpose). Built once per process; click commands are reusable."""
    names = None if name is None else (ALIASES.get(name, name),)
    return typer.main.get_command(make_app(names))


def command_for(args: list[str]) -> Any:
    """The smallest tree that can run ``args``: the command they name, else the whole tree."""
    name = _command_word(args)
    if name is None or ALIASES.get(name, name) not in COMMANDS:
        return command()
    return command(name)


def _command_word(args: list[str]) -> str | None:
    """The first word that is not a global option (``--profile NAME`` takes a value)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--profile":
            i += 2
            continue
        if arg.startswith("-"):
            if arg in ("-h", "--help", "--version", "--show-completion", "--install-completion"):
                return None  # the root's own options: the whole tree
            i += 1
            continue
        return arg
    return None
