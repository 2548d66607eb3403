"""The Typer app: commands parse options, call the core and hand results to the renderer."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmost_cli import __version__
from llmost_cli.cli.ask import ask
from llmost_cli.cli.batch import batch
from llmost_cli.cli.chat import chat
from llmost_cli.cli.config import config_app
from llmost_cli.cli.conversations import register as register_conversations
from llmost_cli.cli.models import models_app
from llmost_cli.cli.options import state_of
from llmost_cli.cli.state import State
from llmost_cli.cli.templates import templates_app

ROOT_HELP = """Chat with LLMost (or any OpenAI-compatible server) from the terminal.

\b
Examples:
  llmost config set api_key                     # once: store the key
  git diff | llmost ask "review this change"    # one-shot, in a pipeline
  llmost chat                                   # interactive; /help inside
"""

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
app.command(help=ask.__doc__, no_args_is_help=False)(ask)
app.command(help=chat.__doc__)(chat)
app.command(help=batch.__doc__)(batch)
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(templates_app, name="templates")
register_conversations(app)


def command() -> Any:
    """The click command behind the app (typer's own click: typed loosely on purpose)."""
    return typer.main.get_command(app)


def _state(ctx: typer.Context) -> State:
    return state_of(ctx)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmost {__version__}")
        raise typer.Exit()


@app.callback()
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
    state = _state(ctx)
    state.profile = profile
    state.debug = state.debug or debug
