"""``llmost config`` run in-process through an Environment over byte buffers.

Values that look like options, the effective settings with their sources, profiles, the API
key given on the command line, and ``config edit`` with an invalid result.
"""

from __future__ import annotations

import io
import os
import signal
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest

from llmost_cli import main
from llmost_cli.env import Environment
from tests.conftest import TEST_KEY, Result, write_config

MASKED = f"{TEST_KEY[:4]}…{TEST_KEY[-4:]}"


def run_cli(
    *args: str,
    stdin: bytes = b"",
    stdin_tty: bool = False,
    stderr_tty: bool = False,
    env: Mapping[str, str] | None = None,
) -> Result:
    """``llmost ARGS`` in this process; file locations come from os.environ (conftest)."""
    out, err = io.BytesIO(), io.StringIO()
    environment = Environment(
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
        stdin_isatty=stdin_tty,
        stderr_isatty=stderr_tty,
        environ={**os.environ, **(env or {})},
    )
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        rc = main.run(list(args), environment)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return Result(rc, out.getvalue().decode("utf-8"), err.getvalue(), out.getvalue())


def config_path(home: Path) -> Path:
    return home / ".config" / "llmost" / "config.toml"


def profile_table(home: Path, name: str = "default") -> dict[str, object]:
    data = tomllib.loads(config_path(home).read_text())
    table: dict[str, object] = data["profiles"][name]
    return table


# --- values that look like options (item 6) ---------------------------------------------


@pytest.mark.parametrize(
    ("key", "text", "stored"),
    [
        ("frequency_penalty", "-0.5", -0.5),
        ("presence_penalty", "-2", -2.0),
        ("seed", "-3", -3),
        ("system", "--terse", "--terse"),
        ("system", "-h", "-h"),
        ("stop", "[INST]", ["[INST]"]),
    ],
)
def test_set_takes_values_that_start_with_a_dash(
    isolated_env: Path, key: str, text: str, stored: object
) -> None:
    r = run_cli("config", "set", key, text)
    assert r.rc == 0, r
    assert profile_table(isolated_env)[key] == stored


def test_negative_value_out_of_range_gets_the_real_message(isolated_env: Path) -> None:
    r = run_cli("config", "set", "retries", "-1")
    assert (r.rc, r.stderr) == (2, "llmost: error: retries must be in [0, 10], got -1\n")
    assert not config_path(isolated_env).exists()


def test_help_still_works_before_the_key() -> None:
    r = run_cli("config", "set", "--help")
    assert r.rc == 0
    assert "config set frequency_penalty -0.5" in r.stdout  # click's echo, through the Environment


# --- effective values and their sources (item 7) ----------------------------------------


def test_list_on_a_fresh_install_shows_the_defaults(isolated_env: Path) -> None:
    r = run_cli("config", "list")
    assert r.rc == 0, r
    assert r.stdout.splitlines() == [
        "base_url = https://llmost.ru/api/v1  # default",
        "timeout = 600.0  # default",
        "retries = 3  # default",
        "max_tool_rounds = 8  # default",
    ]
    assert not config_path(isolated_env).exists()  # looking creates nothing


def test_list_names_every_source_and_masks_the_key(isolated_env: Path) -> None:
    write_config(isolated_env, '[profiles.default]\nmodel = "p/m"\ntemperature = 0.2\n')
    env = {"LLMOST_API_KEY": TEST_KEY, "LLMOST_BASE_URL": "https://example.com/v1"}
    r = run_cli("config", "list", env=env)
    assert r.rc == 0, r
    lines = r.stdout.splitlines()
    assert "base_url = https://example.com/v1  # env LLMOST_BASE_URL" in lines
    assert f"api_key = {MASKED}  # env LLMOST_API_KEY" in lines
    assert "model = p/m  # profile default" in lines
    assert "temperature = 0.2  # profile default" in lines
    assert "retries = 3  # default" in lines
    assert TEST_KEY not in r.stdout + r.stderr


def plain(text: str) -> str:
    """Without the terminal styles (dim) that a note carries on a terminal."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_get_shows_the_effective_value_and_on_a_terminal_its_source(isolated_env: Path) -> None:
    assert run_cli("config", "get", "retries").stdout == "3\n"
    r = run_cli("config", "get", "retries", stderr_tty=True, env={"NO_COLOR": "1"})
    assert (r.stdout, plain(r.stderr)) == ("3\n", "llmost: retries from default\n")
    r = run_cli("config", "get", "api_key", env={"LLMOST_API_KEY": TEST_KEY}, stderr_tty=True)
    assert r.stdout == MASKED + "\n" and "from env LLMOST_API_KEY" in r.stderr
    r = run_cli("config", "get", "model", stderr_tty=True)
    assert (r.rc, r.stdout, plain(r.stderr)) == (0, "", "llmost: model is not set\n")


def test_profiles_marks_the_active_one_and_what_chose_it(isolated_env: Path) -> None:
    write_config(isolated_env, 'profile = "b"\n[profiles.a]\n[profiles.b]\n[profiles.c]\n')
    r = run_cli("config", "profiles")
    assert (r.rc, r.stdout) == (0, "  a\n* b  (active, chosen by the config file)\n  c\n")
    r = run_cli("config", "profiles", env={"LLMOST_PROFILE": "c"})
    assert r.stdout.splitlines()[2] == "* c  (active, chosen by LLMOST_PROFILE)"
    r = run_cli("--profile", "a", "config", "profiles", env={"LLMOST_PROFILE": "c"})
    assert r.stdout.splitlines()[0] == "* a  (active, chosen by --profile)"


def test_profiles_on_a_fresh_install_and_with_an_unknown_profile(isolated_env: Path) -> None:
    r = run_cli("config", "profiles")
    assert (r.rc, r.stdout) == (0, "* default  (active by default; not in the file yet)\n")
    write_config(isolated_env, "[profiles.a]\n")
    r = run_cli("--profile", "zz", "config", "profiles")
    assert r.rc == 0
    assert r.stdout == "  a\n* zz  (active, chosen by --profile; not in the file yet)\n"
    assert "profile 'zz' (chosen by --profile) is not defined" in r.stderr


@pytest.mark.parametrize("command", [["list"], ["get", "model"]])
def test_unknown_profile_is_a_config_error_naming_the_known_ones(
    isolated_env: Path, command: list[str]
) -> None:
    write_config(isolated_env, "[profiles.work]\n[profiles.home]\n")
    r = run_cli("--profile", "nosuch", "config", *command)
    assert r.rc == 3, r
    assert "profile 'nosuch' is not defined" in r.stderr
    assert "(profiles: work, home)" in r.stderr
    assert r.stderr.count("\n") == 1


def test_set_with_a_new_profile_creates_it(isolated_env: Path) -> None:
    write_config(isolated_env, "[profiles.work]\n")
    assert run_cli("--profile", "new", "config", "set", "model", "n/m").rc == 0
    assert profile_table(isolated_env, "new") == {"model": "n/m"}
    assert run_cli("--profile", "new", "config", "get", "model").stdout == "n/m\n"


# --- the API key on the command line (item 8) -------------------------------------------


def test_key_as_an_argument_works_but_warns(isolated_env: Path) -> None:
    r = run_cli("config", "set", "api_key", TEST_KEY)
    assert r.rc == 0, r
    assert profile_table(isolated_env)["api_key"] == TEST_KEY
    assert "shell history" in r.stderr
    assert "'llmost config set api_key' with no value reads it hidden" in r.stderr
    assert TEST_KEY not in r.stdout + r.stderr and MASKED in r.stderr


def test_key_from_a_pipe_does_not_warn(isolated_env: Path) -> None:
    r = run_cli("config", "set", "api_key", stdin=TEST_KEY.encode() + b"\n")
    assert r.rc == 0 and "warning" not in r.stderr
    assert profile_table(isolated_env)["api_key"] == TEST_KEY


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("sk-abc def123", "a space"),
        ("sk-abc\x1b[31mdef", "a control character"),
        ("sk-abc\x7fdef", "a control character"),
        ("sk-ключ-123", "a non-ASCII character"),
    ],
)
@pytest.mark.parametrize("how", ["argument", "pipe"])
def test_malformed_key_is_refused_without_echoing_it(
    isolated_env: Path, key: str, kind: str, how: str
) -> None:
    if how == "argument":
        r = run_cli("config", "set", "api_key", key)
    else:
        r = run_cli("config", "set", "api_key", stdin=key.encode() + b"\n")
    assert r.rc == 2, r
    assert r.stderr == (
        f"llmost: error: api_key contains {kind}; an API key is printable ASCII without "
        "spaces (check for a stray newline or quote)\n"
    )
    assert key[3:6] not in r.stderr  # not even part of it
    assert not config_path(isolated_env).exists()


# --- config edit with an invalid result (item 9) ----------------------------------------


def editor_script(home: Path, *edits: str) -> str:
    """An $EDITOR that makes edit N (appends edits[N], or the last one) and counts its runs."""
    counter = home / "edits"
    script = home / "editor.py"
    script.write_text(
        "import pathlib, sys\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "n = int(counter.read_text()) if counter.exists() else 0\n"
        "counter.write_text(str(n + 1))\n"
        f"edits = {list(edits)!r}\n"
        "path = pathlib.Path(sys.argv[1])\n"
        "path.write_text(edits[min(n, len(edits) - 1)])\n"
    )
    import sys

    return f"{sys.executable} {script}"


def edits_made(home: Path) -> int:
    return int((home / "edits").read_text())


BAD = "[profiles.default]\ntemperature = 9\n"
GOOD = "[profiles.default]\ntemperature = 1\n"


def test_edit_invalid_when_not_a_terminal_keeps_the_file_and_exits_3(isolated_env: Path) -> None:
    r = run_cli("config", "edit", env={"EDITOR": editor_script(isolated_env, BAD)})
    path = config_path(isolated_env)
    assert r.rc == 3
    assert r.stderr == (
        f"llmost: error: invalid config file {path}: profiles.default.temperature must be in "
        "[0, 2], got 9\n"
    )
    assert path.read_text() == BAD and edits_made(isolated_env) == 1


def test_edit_invalid_on_a_terminal_offers_to_edit_again(isolated_env: Path) -> None:
    editor = editor_script(isolated_env, BAD, "[profiles.default\n", GOOD)
    r = run_cli("config", "edit", stdin=b"\ny\n", stdin_tty=True, env={"EDITOR": editor})
    assert r.rc == 0, r
    assert edits_made(isolated_env) == 3
    assert r.stderr.count("edit again? [Y/n] ") == 2
    assert "profiles.default.temperature must be in [0, 2], got 9" in r.stderr
    assert "line 1" in r.stderr  # the TOML syntax error says where
    assert config_path(isolated_env).read_text() == GOOD


@pytest.mark.parametrize("answer", [b"n\n", b""])
def test_edit_declined_keeps_the_file_as_left(isolated_env: Path, answer: bytes) -> None:
    editor = editor_script(isolated_env, BAD)
    r = run_cli("config", "edit", stdin=answer, stdin_tty=True, env={"EDITOR": editor})
    path = config_path(isolated_env)
    assert r.rc == 3
    assert edits_made(isolated_env) == 1
    assert r.stderr.endswith(  # (a terminal echoes the answer and its newline)
        f"edit again? [Y/n] {'' if answer else chr(10)}llmost: error: config file {path} is "
        "still invalid; it is kept as you left it (fix it with: llmost config edit)\n"
    )
    assert path.read_text() == BAD
