"""The options of ``ask``, ``chat`` and ``batch`` (DESIGN.md §1), declared once, in one table.

Two things are built from it: the typer commands (cli/options.py: ``--help``, the command tree
that completion reads) and the parser that runs them (cli/argv.py, without typer). No typer
import here: this module is on the start-up path of ``ask``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from llmost_cli.core import params
from llmost_cli.core.attachments import LIMITS_HELP
from llmost_cli.core.request import reasoning_effort
from llmost_cli.errors import UsageError

TURN = "Request"
SAMPLING = "Sampling"
TOOLS = "Tools and structured output"
NET = "Conversation and network"
CONTEXT = "Context and templates"
BATCH = "Batch"


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def output_format(text: str) -> OutputFormat:
    """``-o text|json``, refused in plain words."""
    try:
        return OutputFormat(text.strip().lower())
    except ValueError:
        raise UsageError(f"-o/--output must be text or json, got {text!r}") from None


@dataclass(frozen=True)
class Flag:
    """One option (or the positional argument, when ``decls`` is empty).

    ``type`` is the Python type typer sees; ``kind`` says how the parser reads it: ``value``
    (one value, the last one wins), ``list`` (repeatable), ``flag`` (True when given),
    ``pair`` (``--x/--no-x``: True, False, or None when not given).
    """

    dest: str
    decls: tuple[str, ...]
    help: str
    type: Any = str
    kind: str = "value"
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    default: Any = None
    min: int | None = None
    panel: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Every spelling on the command line (both halves of a pair)."""
        return tuple(n for d in self.decls for n in d.split("/"))


def _opt(dest: str, *decls: str, help: str, **kw: Any) -> Flag:
    return Flag(dest, decls, help, **kw)


def _value(dest: str, *decls: str, metavar: str, help: str, **kw: Any) -> Flag:
    return Flag(dest, decls, help, type=kw.pop("type", str | None), metavar=metavar, **kw)


def _list(dest: str, *decls: str, metavar: str, help: str, panel: str) -> Flag:
    return Flag(dest, decls, help, list[str] | None, "list", metavar, panel=panel)


def _number(dest: str, decl: str, type: Any, metavar: str, help: str, panel: str) -> Flag:
    """A sampling or network number, checked by the table in core/params.py."""
    return _value(
        dest,
        decl,
        type=type,
        metavar=metavar,
        help=help,
        panel=panel,
        parse=params.flag_parser(dest),
    )


def _flag(dest: str, *decls: str, help: str, panel: str | None = None) -> Flag:
    return Flag(dest, decls, help, bool, "flag", default=False, panel=panel)


def _pair(dest: str, decl: str, help: str, panel: str) -> Flag:
    return Flag(dest, (decl,), help, bool | None, "pair", panel=panel)


PROMPT = Flag(
    "prompt", (), "The question; words are joined by spaces.", list[str] | None, "list", "PROMPT"
)
INPUT = Flag("input_file", (), "JSONL file of prompts; '-' reads stdin.", str, "value", "INPUT")

_FLAGS = [
    _value(
        "model", "-m", "--model", metavar="ID", help="Model id, e.g. openai/gpt-4o.", panel=TURN
    ),
    _value(
        "system",
        "-s",
        "--system",
        metavar="TEXT",
        help="System prompt; @path reads it from a file.",
        panel=TURN,
    ),
    _list(
        "image",
        "-i",
        "--image",
        metavar="PATH_OR_URL",
        help="Attach an image (repeatable): a PNG/JPEG/GIF/WebP file or an http(s) URL.",
        panel=TURN,
    ),
    _list(
        "file",
        "-f",
        "--file",
        metavar="PATH_OR_URL",
        help="Attach context (repeatable): a text file as a fenced block headed by its path; "
        "a directory's text files (git-ignored and binary files skipped); - for stdin; an "
        "http(s) URL (HTML reduced to text; no API key is sent); a PDF's text; an image. "
        "It goes after the prompt and before stdin. " + LIMITS_HELP,
        panel=CONTEXT,
    ),
    _value(
        "template",
        "-T",
        "--template",
        metavar="NAME",
        help="Apply templates/NAME.toml (see 'llmost templates'); options given here win.",
        panel=CONTEXT,
    ),
    _list(
        "var",
        "-v",
        "--var",
        metavar="KEY=VALUE",
        help="A template variable (repeatable): fills {KEY} in the template.",
        panel=CONTEXT,
    ),
    _value(
        "prefill",
        "--prefill",
        metavar="TEXT",
        help="Start the answer with this text; the model continues it.",
        panel=TURN,
    ),
    _value(
        "temperature",
        "-t",
        "--temperature",
        type=float | None,
        metavar="X",
        help="Sampling temperature, 0 to 2.",
        parse=params.flag_parser("temperature"),
        panel=SAMPLING,
    ),
    _number(
        "top_p", "--top-p", float | None, "X", "Nucleus sampling, greater than 0 up to 1.", SAMPLING
    ),
    _number(
        "max_tokens",
        "--max-tokens",
        int | None,
        "N",
        "Maximum tokens in the answer (>= 1).",
        SAMPLING,
    ),
    _number("frequency_penalty", "--frequency-penalty", float | None, "X", "-2 to 2.", SAMPLING),
    _number("presence_penalty", "--presence-penalty", float | None, "X", "-2 to 2.", SAMPLING),
    _list(
        "stop",
        "--stop",
        metavar="TEXT",
        help="Stop sequence (repeatable, at most 4).",
        panel=SAMPLING,
    ),
    _number("seed", "--seed", int | None, "N", "Seed for deterministic sampling.", SAMPLING),
    _list(
        "param",
        "--param",
        metavar="KEY=JSON",
        help="Any extra request field (repeatable), e.g. --param top_k=40.",
        panel=SAMPLING,
    ),
    _flag(
        "json_mode",
        "--json-mode",
        help="Ask for a JSON object (response_format json_object).",
        panel=TOOLS,
    ),
    _value(
        "schema",
        "--schema",
        metavar="FILE_OR_JSON",
        help="JSON schema the answer must follow: a file, inline JSON, "
        "or the short form 'name, age int, tags list'.",
        panel=TOOLS,
    ),
    _value(
        "tools",
        "--tools",
        metavar="FILE",
        help="JSON file with a list of OpenAI-style tool definitions.",
        panel=TOOLS,
    ),
    _list(
        "tool",
        "--tool",
        metavar="NAME",
        help="Offer a tool declared in the config file (repeatable).",
        panel=TOOLS,
    ),
    _flag(
        "tools_all",
        "--tools-all",
        help="Offer every tool declared in the config file.",
        panel=TOOLS,
    ),
    _value(
        "tool_choice",
        "--tool-choice",
        metavar="auto|none|required|NAME",
        help="Whether and which tool the model must call.",
        panel=TOOLS,
    ),
    _flag(
        "yes",
        "--yes",
        help="Run the declared local tools the model calls without asking y/N first.",
        panel=TOOLS,
    ),
    _value(
        "reasoning_effort",
        "--reasoning-effort",
        metavar="low|medium|high",
        help="How hard a reasoning model thinks (sent as reasoning.effort).",
        parse=reasoning_effort,
        panel=SAMPLING,
    ),
    _pair(
        "show_reasoning",
        "--show-reasoning/--hide-reasoning",
        "Show the model's reasoning dimmed on stderr when it is a terminal (default), or never.",
        TURN,
    ),
    _flag(
        "no_stream",
        "--no-stream",
        help="Wait for the whole answer instead of streaming.",
        panel=NET,
    ),
    _pair(
        "markdown",
        "--markdown/--no-markdown",
        "Render markdown (default: only when stdout is a terminal).",
        TURN,
    ),
    _flag(
        "continue_", "-c", "--continue", help="Continue the most recent conversation.", panel=NET
    ),
    _value(
        "session",
        "--session",
        metavar="NAME",
        help="Use (or create) the named conversation.",
        panel=NET,
    ),
    _number("timeout", "--timeout", float | None, "SECONDS", "Read timeout (default 600).", NET),
    _number(
        "retries",
        "--retries",
        int | None,
        "N",
        "Retries on 429, 5xx and connection failures (default 3).",
        NET,
    ),
    # ask's own
    _value(
        "output",
        "-o",
        "--output",
        type=OutputFormat,
        metavar="text|json",
        help="text, or json: one JSON object on stdout.",
        parse=output_format,
        default=OutputFormat.text,
    ),
    _flag("usage", "-u", "--usage", help="Print token usage (and cost) to stderr."),
    _flag("no_stdin", "--no-stdin", help="Never read standard input."),
    _flag("dry_run", "--dry-run", help="Print the request body; send nothing."),
    _list(
        "tool_result",
        "--tool-result",
        metavar="ID=VALUE",
        help="With -c/--session: answer a pending tool call (VALUE: text, @file or - for "
        "stdin) and ask again. Repeatable.",
        panel=TOOLS,
    ),
    _flag(
        "extract",
        "-x",
        "--extract",
        help="Print only the content of the answer's first fenced code block, plain "
        "(no block: exit 7).",
    ),
    _value(
        "block",
        "--block",
        type=int | None,
        metavar="N",
        min=1,
        help="With -x: the Nth fenced code block (implies -x).",
    ),
    # batch's own
    _value(
        "batch_output",
        "-o",
        "--output",
        metavar="OUTPUT",
        help="JSONL file to append to (default: stdout).",
    ),
    _value(
        "concurrency",
        "--concurrency",
        type=int,
        metavar="N",
        help="Requests at once.",
        default=8,
        panel=BATCH,
    ),
    _value(
        "rpm",
        "--rpm",
        type=float | None,
        metavar="R",
        help="At most R requests a minute.",
        panel=BATCH,
    ),
    _flag(
        "resume", "--resume", help="Skip the ids already in OUTPUT; append the rest.", panel=BATCH
    ),
    _value(
        "max_cost",
        "--max-cost",
        type=float | None,
        metavar="USD",
        help="Start no more lines once this much is spent.",
        panel=BATCH,
    ),
    _flag(
        "skip_invalid",
        "--skip-invalid",
        help="Record malformed input lines as failed lines instead of exiting 2.",
        panel=BATCH,
    ),
    _flag("ordered", "--ordered", help="Write lines in input order.", panel=BATCH),
    _flag("store", "--store", help="Keep each line as a stored conversation.", panel=BATCH),
]
FLAGS = {f.dest: f for f in _FLAGS}


@dataclass(frozen=True)
class Spec:
    """One command: its positional argument, then its options in the order of ``--help``."""

    name: str
    argument: Flag
    options: tuple[Flag, ...]


def _spec(name: str, argument: Flag, dests: str) -> Spec:
    return Spec(name, argument, tuple(FLAGS[d] for d in dests.split()))


_TURN = "prefill temperature top_p max_tokens frequency_penalty presence_penalty stop seed param"
_TURN += " json_mode schema tools"
SPECS = {
    "ask": _spec(
        "ask",
        PROMPT,
        f"model system image file template var {_TURN} tool tools_all tool_choice"
        " reasoning_effort show_reasoning no_stream markdown continue_ session timeout retries"
        " output usage no_stdin dry_run tool_result yes extract block",
    ),
    "chat": _spec(
        "chat",
        PROMPT,
        f"model system image file template var {_TURN} tool tools_all tool_choice yes"
        " reasoning_effort show_reasoning no_stream markdown continue_ session timeout retries",
    ),
    "batch": _spec(
        "batch",
        INPUT,
        "batch_output concurrency rpm resume max_cost skip_invalid ordered store model system"
        f" {_TURN} tool_choice no_stream timeout retries",
    ),
}
