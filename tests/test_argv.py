"""cli/argv.py parses ask, chat and batch as typer's click does: same values, same errors.

Each command line runs through both: typer's command built from the same table (with a
``run`` that records what it is given), and ``argv.parse``.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer

from llmost_cli.cli import argv, options
from llmost_cli.cli.flags import SPECS, OutputFormat
from llmost_cli.cli.options import typer_command
from llmost_cli.errors import UsageError


def through_typer(name: str, args: list[str]) -> dict[str, Any] | str:
    """The values typer passes to the command, or the message of its usage error."""
    seen: list[dict[str, Any]] = []

    def run(_state: object, values: dict[str, Any]) -> int:
        seen.append(values)
        return 0

    app = typer.Typer(rich_markup_mode=None)
    app.command()(typer_command(SPECS[name], run, ""))
    cmd = typer.main.get_command(app)  # one command: the command itself
    try:
        with cmd.make_context(name, list(args)) as ctx:
            cmd.invoke(ctx)
    except typer.TyperException as exc:
        return " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    except UsageError as exc:  # a parser= of the table
        return exc.message
    return seen[0]


def through_argv(name: str, args: list[str]) -> dict[str, Any] | str:
    try:
        return argv.parse(SPECS[name], args)
    except argv.Usage as exc:
        return " ".join(str(exc).split())
    except UsageError as exc:
        return exc.message


LINES = [
    ("ask", []),
    ("ask", ["what", "is", "it"]),
    ("ask", ["-m", "x/y", "hello", "--temperature", "0.5", "world"]),
    ("ask", ["-mx/y", "-ojson", "-cu", "q"]),
    ("ask", ["--model=a", "--model", "b", "--stop", "s1", "--stop=s2", "--stop", ""]),
    ("ask", ["-m=x", "q"]),  # click: a short option's value is "=x"
    ("ask", ["--", "-m", "--bogus"]),
    ("ask", ["-", "q"]),
    ("ask", ["--markdown", "--no-markdown", "--show-reasoning"]),
    ("ask", ["--hide-reasoning", "--markdown"]),
    ("ask", ["--frequency-penalty", "-1", "--max-tokens", "12", "--seed", "7"]),
    ("ask", ["-x", "--block", "2", "-f", "a", "-f", "b", "-i", "img", "-v", "k=v", "-T", "t"]),
    ("ask", ["--tool-result", "id=1", "--yes", "--tools-all", "--tool", "w", "--tool-choice", "a"]),
    ("ask", ["--reasoning-effort", "HIGH", "--json-mode", "--schema", "a, b int", "--no-stdin"]),
    ("ask", ["--param", "top_k=40", "--prefill", "{", "--timeout", "3", "--retries", "0"]),
    ("ask", ["--session", "s", "--dry-run", "--no-stream", "--tools", "f.json", "-s", "@p"]),
    ("ask", ["--bogus"]),
    ("ask", ["--modle", "x"]),
    ("ask", ["-z"]),
    ("ask", ["-cz"]),
    ("ask", ["--json-mode=1"]),
    ("ask", ["--tool"]),
    ("ask", ["-o"]),
    ("ask", ["-o", "yaml"]),
    ("ask", ["-t", "abc"]),
    ("ask", ["--block", "0"]),
    ("ask", ["--block", "x"]),
    ("ask", ["--reasoning-effort", "max"]),
    ("ask", ["--max-tokens", "x", "-t", "abc"]),  # the first bad value on the line is reported
    ("ask", ["-t", "abc", "--max-tokens", "x"]),
    ("ask", ["-m", "--", "q"]),  # an option's value may look like anything
    ("chat", ["-m", "x", "first", "turn", "--yes"]),
    ("chat", ["--output", "json"]),
    ("batch", []),
    ("batch", ["in.jsonl"]),
    ("batch", ["in.jsonl", "-o", "out.jsonl", "--concurrency", "32", "--rpm", "500"]),
    ("batch", ["-", "--max-cost", "2.5", "--resume", "--ordered", "--store", "--skip-invalid"]),
    ("batch", ["a", "b"]),
    ("batch", ["a", "b", "c"]),
    ("batch", ["x", "--concurrency", "1.5"]),
    ("batch", ["x", "--rpm", "abc"]),
    ("batch", ["x", "--image", "a"]),
]


@pytest.mark.parametrize(("name", "args"), LINES)
def test_parses_as_typer_does(name: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options, "state_of", lambda ctx: None)
    assert through_argv(name, args) == through_typer(name, args)


def test_output_is_the_enum() -> None:
    assert argv.parse(SPECS["ask"], ["-o", "JSON"])["output"] is OutputFormat.json
    assert argv.parse(SPECS["ask"], [])["output"] is OutputFormat.text


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["q", "-ch"], ["--bogus=1", "--help"]])
def test_help_goes_to_typer(args: list[str]) -> None:
    if args[0].startswith("--bogus"):
        with pytest.raises(argv.Usage):  # click too: the parse error comes first
            argv.parse(SPECS["ask"], args)
        return
    with pytest.raises(argv.HelpWanted):
        argv.parse(SPECS["ask"], args)


@pytest.mark.parametrize(
    ("args", "route"),
    [
        (["ask", "q"], ("ask", ["q"], None, False)),
        (["--profile", "w", "--debug", "chat"], ("chat", [], "w", True)),
        (["--profile=w", "batch", "x"], ("batch", ["x"], "w", False)),
        (["--version", "ask"], None),
        (["--profile"], None),
        (["config", "path"], None),
        (["--bogus", "ask"], None),
        ([], None),
    ],
)
def test_route(args: list[str], route: object) -> None:
    assert argv.route(args) == route


def test_the_routed_commands_are_the_table() -> None:
    assert set(argv.COMMANDS) == set(SPECS)
