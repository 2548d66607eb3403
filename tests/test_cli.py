"""The Typer app as a whole: every command documents itself with real examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llmost_cli.cli.app import command


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(command()))


def test_the_tree_has_the_documented_commands() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    expected = {"", "ask", "chat", "config", "models", "models list", "models show"}
    expected |= {f"config {c}" for c in ("path", "list", "get", "set", "unset", "edit", "profiles")}
    assert expected <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "llmost")
def test_every_command_help_has_examples(path: tuple[str, ...]) -> None:
    cmd = dict(COMMANDS)[path]
    text = cmd.help or ""
    assert "Examples:" in text
    examples = text.split("Examples:", 1)[1].strip().splitlines()
    assert 2 <= len([line for line in examples if "llmost" in line]) <= 6
