"""Option declarations shared by ``ask`` and ``chat`` (DESIGN.md §1), as Annotated aliases."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from llmost_cli.core import params
from llmost_cli.core.attachments import LIMITS_HELP
from llmost_cli.core.request import reasoning_effort

if TYPE_CHECKING:
    from llmost_cli.cli.state import State

TURN = "Request"
SAMPLING = "Sampling"
TOOLS = "Tools and structured output"
NET = "Conversation and network"


def state_of(ctx: typer.Context) -> State:
    """The run's state (environment, profile, debug), set up by ``main``."""
    from llmost_cli.cli.state import State

    state = ctx.find_root().obj
    assert isinstance(state, State)
    return state


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def output_format(text: str) -> OutputFormat:
    """``-o text|json``, refused in plain words."""
    try:
        return OutputFormat(text.strip().lower())
    except ValueError:
        from llmost_cli.errors import UsageError

        raise UsageError(f"-o/--output must be text or json, got {text!r}") from None


Prompt = Annotated[
    list[str] | None,
    typer.Argument(metavar="PROMPT", help="The question; words are joined by spaces."),
]
Model = Annotated[
    str | None,
    typer.Option(
        "-m", "--model", metavar="ID", help="Model id, e.g. openai/gpt-4o.", rich_help_panel=TURN
    ),
]
System = Annotated[
    str | None,
    typer.Option(
        "-s",
        "--system",
        metavar="TEXT",
        help="System prompt; @path reads it from a file.",
        rich_help_panel=TURN,
    ),
]
Image = Annotated[
    list[str] | None,
    typer.Option(
        "-i",
        "--image",
        metavar="PATH_OR_URL",
        help="Attach an image (repeatable): a PNG/JPEG/GIF/WebP file or an http(s) URL.",
        rich_help_panel=TURN,
    ),
]
Prefill = Annotated[
    str | None,
    typer.Option(
        "--prefill",
        metavar="TEXT",
        help="Start the answer with this text; the model continues it.",
        rich_help_panel=TURN,
    ),
]
Temperature = Annotated[
    float | None,
    typer.Option(
        "-t",
        "--temperature",
        metavar="X",
        help="Sampling temperature, 0 to 2.",
        parser=params.flag_parser("temperature"),
        rich_help_panel=SAMPLING,
    ),
]
TopP = Annotated[
    float | None,
    typer.Option(
        "--top-p",
        metavar="X",
        help="Nucleus sampling, greater than 0 up to 1.",
        parser=params.flag_parser("top_p"),
        rich_help_panel=SAMPLING,
    ),
]
MaxTokens = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        metavar="N",
        help="Maximum tokens in the answer (>= 1).",
        parser=params.flag_parser("max_tokens"),
        rich_help_panel=SAMPLING,
    ),
]
FrequencyPenalty = Annotated[
    float | None,
    typer.Option(
        "--frequency-penalty",
        metavar="X",
        help="-2 to 2.",
        parser=params.flag_parser("frequency_penalty"),
        rich_help_panel=SAMPLING,
    ),
]
PresencePenalty = Annotated[
    float | None,
    typer.Option(
        "--presence-penalty",
        metavar="X",
        help="-2 to 2.",
        parser=params.flag_parser("presence_penalty"),
        rich_help_panel=SAMPLING,
    ),
]
Stop = Annotated[
    list[str] | None,
    typer.Option(
        "--stop",
        metavar="TEXT",
        help="Stop sequence (repeatable, at most 4).",
        rich_help_panel=SAMPLING,
    ),
]
Seed = Annotated[
    int | None,
    typer.Option(
        "--seed",
        metavar="N",
        help="Seed for deterministic sampling.",
        parser=params.flag_parser("seed"),
        rich_help_panel=SAMPLING,
    ),
]
Param = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar="KEY=JSON",
        help="Any extra request field (repeatable), e.g. --param top_k=40.",
        rich_help_panel=SAMPLING,
    ),
]
JsonMode = Annotated[
    bool,
    typer.Option(
        "--json-mode",
        help="Ask for a JSON object (response_format json_object).",
        rich_help_panel=TOOLS,
    ),
]
Schema = Annotated[
    str | None,
    typer.Option(
        "--schema",
        metavar="FILE_OR_JSON",
        help="JSON schema the answer must follow: a file, inline JSON, "
        "or the short form 'name, age int, tags list'.",
        rich_help_panel=TOOLS,
    ),
]
ToolsFile = Annotated[
    str | None,
    typer.Option(
        "--tools",
        metavar="FILE",
        help="JSON file with a list of OpenAI-style tool definitions.",
        rich_help_panel=TOOLS,
    ),
]
Tool = Annotated[
    list[str] | None,
    typer.Option(
        "--tool",
        metavar="NAME",
        help="Offer a tool declared in the config file (repeatable).",
        rich_help_panel=TOOLS,
    ),
]
ToolsAll = Annotated[
    bool,
    typer.Option(
        "--tools-all", help="Offer every tool declared in the config file.", rich_help_panel=TOOLS
    ),
]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes",
        help="Run the declared local tools the model calls without asking y/N first.",
        rich_help_panel=TOOLS,
    ),
]
ToolChoice = Annotated[
    str | None,
    typer.Option(
        "--tool-choice",
        metavar="auto|none|required|NAME",
        help="Whether and which tool the model must call.",
        rich_help_panel=TOOLS,
    ),
]
ReasoningEffort = Annotated[
    str | None,
    typer.Option(
        "--reasoning-effort",
        metavar="low|medium|high",
        help="How hard a reasoning model thinks (sent as reasoning.effort).",
        parser=reasoning_effort,
        rich_help_panel=SAMPLING,
    ),
]
ShowReasoning = Annotated[
    bool | None,
    typer.Option(
        "--show-reasoning/--hide-reasoning",
        help="Show the model's reasoning dimmed on stderr when it is a terminal (default), "
        "or never.",
        show_default=False,
        rich_help_panel=TURN,
    ),
]
NoStream = Annotated[
    bool,
    typer.Option(
        "--no-stream", help="Wait for the whole answer instead of streaming.", rich_help_panel=NET
    ),
]
Markdown = Annotated[
    bool | None,
    typer.Option(
        "--markdown/--no-markdown",
        help="Render markdown (default: only when stdout is a terminal).",
        show_default=False,
        rich_help_panel=TURN,
    ),
]
Continue = Annotated[
    bool,
    typer.Option(
        "-c", "--continue", help="Continue the most recent conversation.", rich_help_panel=NET
    ),
]
Session = Annotated[
    str | None,
    typer.Option(
        "--session",
        metavar="NAME",
        help="Use (or create) the named conversation.",
        rich_help_panel=NET,
    ),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Read timeout (default 600).",
        parser=params.flag_parser("timeout"),
        rich_help_panel=NET,
    ),
]
Retries = Annotated[
    int | None,
    typer.Option(
        "--retries",
        metavar="N",
        help="Retries on 429, 5xx and connection failures (default 3).",
        parser=params.flag_parser("retries"),
        rich_help_panel=NET,
    ),
]


# -- context and templates (core/attachments.py, core/templates.py) --------------------------
CONTEXT = "Context and templates"
File = Annotated[
    list[str] | None,
    typer.Option(
        "-f",
        "--file",
        metavar="PATH_OR_URL",
        help="Attach context (repeatable): a text file as a fenced block headed by its path; "
        "a directory's text files (git-ignored and binary files skipped); - for stdin; an "
        "http(s) URL (HTML reduced to text; no API key is sent); a PDF's text; an image. "
        "It goes after the prompt and before stdin. " + LIMITS_HELP,
        rich_help_panel=CONTEXT,
    ),
]
Template = Annotated[
    str | None,
    typer.Option(
        "-T",
        "--template",
        metavar="NAME",
        help="Apply templates/NAME.toml (see 'llmost templates'); options given here win.",
        rich_help_panel=CONTEXT,
    ),
]
Var = Annotated[
    list[str] | None,
    typer.Option(
        "-v",
        "--var",
        metavar="KEY=VALUE",
        help="A template variable (repeatable): fills {KEY} in the template.",
        rich_help_panel=CONTEXT,
    ),
]
