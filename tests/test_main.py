"""Start-up: what each entry path imports (``python -X importtime``), and the error boundary."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests import fakeserver as fs
from tests.conftest import TEST_KEY, llmost_executable

HEAVY = ("httpx", "httpcore", "prompt_toolkit", "rich.markdown", "markdown_it", "pygments")


def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", llmost_executable(), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, re.M))


def loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["ask", "--help"]])
def test_version_and_help_import_nothing_heavy(args: list[str]) -> None:
    modules = imported(*args)
    assert modules, "no -X importtime output"
    assert [p for p in HEAVY if loaded(modules, p)] == []
    if args == ["--version"]:
        assert not loaded(modules, "typer") and not loaded(modules, "rich")


def test_piped_ask_imports_only_what_it_uses(server: fs.FakeServer) -> None:
    server.add(fs.stream_text("short answer"))
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    modules = imported("ask", "--no-stdin", "hi", env=env)
    assert loaded(modules, "httpx")  # it did make the request
    unwanted = ("prompt_toolkit", "rich", "markdown_it", "pygments", "jsonschema", "trio._core")
    # cli/argv.py parses ask without typer, whose option conversion imports pydantic
    unwanted += ("typer", "pydantic", "click")
    assert [p for p in unwanted if loaded(modules, p)] == []
    # only the command that runs is built: not the other commands' modules
    others = ("llmost_cli.cli.batch", "llmost_cli.cli.conversations", "llmost_cli.cli.config")
    assert [m for m in others if m in modules] == []
    # "trio" itself shows up as a failed lookup of a few microseconds: llmost marks it absent


def test_python_dash_m_runs_the_same_cli() -> None:
    from llmost_cli import __version__

    proc = subprocess.run(
        [sys.executable, "-m", "llmost_cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, f"llmost {__version__}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "llmost_cli", "ask", "-t", "5", "hi"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "temperature" in proc.stderr and "Traceback" not in proc.stderr
