"""The Typer app: commands parse options, call the core and hand results to the renderer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmost_cli import __version__
from llmost_cli.cli import options as o
from llmost_cli.cli.config import config_app
from llmost_cli.cli.conversations import register as register_conversations
from llmost_cli.cli.models import models_app
from llmost_cli.main import State

if TYPE_CHECKING:
    from llmost_cli.ui.output import UI

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
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
register_conversations(app)


def command() -> Any:
    """The click command behind the app (typer's own click: typed loosely on purpose)."""
    return typer.main.get_command(app)


def _state(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)
    return state


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


ASK_HELP = """Ask one question and print the answer.

Standard input, when it is not a terminal, is added after the prompt.

\b
Examples:
  git diff | llmost ask "review this change"
  llmost ask -i screenshot.png "what does this error mean?"
  llmost ask --prefill '{"' -o json "three colours as JSON" | jq -r .content
"""


@app.command(help=ASK_HELP, no_args_is_help=False)
def ask(
    ctx: typer.Context,
    prompt: o.Prompt = None,
    model: o.Model = None,
    system: o.System = None,
    image: o.Image = None,
    prefill: o.Prefill = None,
    temperature: o.Temperature = None,
    top_p: o.TopP = None,
    max_tokens: o.MaxTokens = None,
    frequency_penalty: o.FrequencyPenalty = None,
    presence_penalty: o.PresencePenalty = None,
    stop: o.Stop = None,
    seed: o.Seed = None,
    param: o.Param = None,
    json_mode: o.JsonMode = False,
    schema: o.Schema = None,
    tools: o.ToolsFile = None,
    tool: o.Tool = None,
    tools_all: o.ToolsAll = False,
    tool_choice: o.ToolChoice = None,
    no_stream: o.NoStream = False,
    markdown: o.Markdown = None,
    continue_: o.Continue = False,
    session: o.Session = None,
    timeout: o.Timeout = None,
    retries: o.Retries = None,
    output: Annotated[
        o.OutputFormat,
        typer.Option(
            "-o", "--output", metavar="text|json", help="text, or json: one JSON object on stdout."
        ),
    ] = o.OutputFormat.text,
    usage: Annotated[
        bool, typer.Option("-u", "--usage", help="Print token usage (and cost) to stderr.")
    ] = False,
    no_stdin: Annotated[
        bool, typer.Option("--no-stdin", help="Never read standard input.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request body; send nothing.")
    ] = False,
    tool_result: Annotated[
        list[str] | None,
        typer.Option(
            "--tool-result",
            metavar="ID=VALUE",
            help="With -c/--session: answer a pending tool call (VALUE: text, @file or - for "
            "stdin) and ask again. Repeatable.",
            rich_help_panel=o.TOOLS,
        ),
    ] = None,
    yes: o.Yes = False,
) -> int:
    from llmost_cli.core.ask import AskOptions, run

    state = _state(ctx)
    state.json_errors = output is o.OutputFormat.json
    values = {k: v for k, v in ctx.params.items() if v is not None}
    opts = AskOptions.build(values | {"output": output.value})
    return run(opts, _ui(), profile=state.profile, log=_log(state))


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
"""


@app.command(help=CHAT_HELP)
def chat(
    ctx: typer.Context,
    prompt: o.Prompt = None,
    model: o.Model = None,
    system: o.System = None,
    image: o.Image = None,
    prefill: o.Prefill = None,
    temperature: o.Temperature = None,
    top_p: o.TopP = None,
    max_tokens: o.MaxTokens = None,
    frequency_penalty: o.FrequencyPenalty = None,
    presence_penalty: o.PresencePenalty = None,
    stop: o.Stop = None,
    seed: o.Seed = None,
    param: o.Param = None,
    json_mode: o.JsonMode = False,
    schema: o.Schema = None,
    tools: o.ToolsFile = None,
    tool: o.Tool = None,
    tools_all: o.ToolsAll = False,
    tool_choice: o.ToolChoice = None,
    yes: o.Yes = False,
    no_stream: o.NoStream = False,
    markdown: o.Markdown = None,
    continue_: o.Continue = False,
    session: o.Session = None,
    timeout: o.Timeout = None,
    retries: o.Retries = None,
) -> int:
    from llmost_cli.core.chat import ChatOptions, run

    state = _state(ctx)
    opts = ChatOptions.build({k: v for k, v in ctx.params.items() if v is not None})
    return run(opts, _ui(), profile=state.profile, log=_log(state))


def _ui() -> UI:
    from llmost_cli.ui import output as render

    return render.make_ui()


def _log(state: State) -> Callable[[str], None] | None:
    if not state.debug:
        return None
    import sys

    return lambda line: print(f"llmost: debug: {line}", file=sys.stderr, flush=True)
