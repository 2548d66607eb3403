"""``llmost config``: path, list, get, set, unset, edit."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from llmost_cli import paths
from llmost_cli.core import params
from llmost_cli.core import settings as config
from llmost_cli.errors import ConfigError, UsageError

CONFIG_HELP = """Show and change settings (config file, profiles, API key).

Settings come from, in order: command-line flags, LLMOST_* environment variables, the active
profile (--profile NAME or LLMOST_PROFILE), then defaults.

\b
Examples:
  llmost config set api_key                 # typed hidden, stored 0600
  llmost config set api_key_cmd "pass show llmost"
  llmost --profile local config set base_url http://127.0.0.1:8080/v1
"""

config_app = typer.Typer(
    rich_markup_mode=None,
    help=CONFIG_HELP,
    no_args_is_help=True,
)

KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="A config key, e.g. model.")]

TEMPLATE = """\
# llmost configuration: see `llmost config --help`.
# profile = "default"

[profiles.default]
# base_url = "https://llmost.ru/api/v1"
# api_key_cmd = "pass show llmost"
# model = "openai/gpt-4o"
# temperature = 0.7
"""


def _profile(ctx: typer.Context, cfg: config.ConfigFile) -> str:
    state = ctx.find_root().obj
    return config.active_profile_name(cfg, getattr(state, "profile", None))


def _effective(ctx: typer.Context) -> tuple[config.ConfigFile, str, dict[str, tuple[Any, str]]]:
    """Every key that has a value, with where it came from (environment beats profile)."""
    cfg = config.load_file()
    name = _profile(ctx, cfg)
    values: dict[str, tuple[Any, str]] = {
        k: (v, f"profile {name}") for k, v in cfg.profile(name).items()
    }
    for key, var in config.ENV_VARS.items():
        if os.environ.get(var):
            values[key] = (os.environ[var], f"env {var}")
    return cfg, name, values


def _check_key(key: str) -> None:
    if key not in params.CONFIG_KEYS:
        params.check(key, None)  # raises the "unknown key" usage error


@config_app.command("path")
def path_cmd() -> None:
    """Print the path of the config file (LLMOST_CONFIG overrides it).

    \b
    Examples:
      llmost config path
      cat "$(llmost config path)"
    """
    typer.echo(str(paths.config_file()))


@config_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the settings in effect (API key masked), with their source.

    \b
    Examples:
      llmost config list
      llmost --profile local config list
    """
    _, _, values = _effective(ctx)
    for key in params.CONFIG_KEYS:
        if key in values:
            value, source = values[key]
            typer.echo(f"{key} = {config.display_value(key, value)}  # {source}")


@config_app.command("get")
def get_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Print one setting (the API key masked); nothing if it is not set.

    \b
    Examples:
      llmost config get model
      test -n "$(llmost config get api_key)" || echo "no key yet"
    """
    _check_key(key)
    _, _, values = _effective(ctx)
    if key in values:
        typer.echo(config.display_value(key, values[key][0]))
    elif key == "base_url":
        typer.echo(config.DEFAULT_BASE_URL)


@config_app.command("set")
def set_cmd(
    ctx: typer.Context,
    key: KeyArg,
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="VALUE",
            help="The value; for api_key leave it out to type it hidden or pipe it.",
        ),
    ] = None,
) -> None:
    """Set a key in the active profile (or --profile NAME, created if needed).

    \b
    Examples:
      llmost config set model openai/gpt-4o
      llmost config set api_key            # asks without echo, or reads a pipe
      pass show llmost | llmost config set api_key
      llmost --profile local config set base_url http://127.0.0.1:8080/v1
    """
    _check_key(key)
    cfg = config.load_file()
    profile = _profile(ctx, cfg)
    if value is None:
        if key != "api_key":
            raise UsageError(f"config set {key} needs a VALUE")
        value = _read_secret()
    checked = params.parse_text_value(key, value)
    config.set_value(cfg, profile, key, checked)
    shown = config.display_value(key, checked)
    typer.echo(f"{key} = {shown}  # saved in profile {profile} of {cfg.path}", err=True)


def _read_secret() -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        secret = getpass.getpass("API key (input hidden): ")
    else:
        secret = sys.stdin.read() if sys.stdin is not None else ""
    secret = secret.strip()
    if not secret:
        raise UsageError("no API key given", hint="type it at the prompt or pipe it on stdin")
    return secret


@config_app.command("unset")
def unset_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Remove a key from the active profile.

    \b
    Examples:
      llmost config unset temperature
      llmost --profile local config unset base_url
    """
    _check_key(key)
    cfg = config.load_file()
    profile = _profile(ctx, cfg)
    if config.unset_value(cfg, profile, key):
        typer.echo(f"{key} removed from profile {profile}", err=True)
    else:
        typer.echo(f"{key} was not set in profile {profile}", err=True)


@config_app.command("edit")
def edit_cmd() -> None:
    """Open the config file in $VISUAL or $EDITOR, then check it.

    \b
    Examples:
      llmost config edit
      EDITOR=nano llmost config edit
    """
    import shlex
    import subprocess

    path = paths.config_file()
    if not path.exists():
        paths.ensure_private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(TEMPLATE)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except FileNotFoundError:
        raise ConfigError(f"editor {editor!r} not found", hint="set VISUAL or EDITOR") from None
    config.load_file(path)  # reports what is wrong; the file stays as the user left it
