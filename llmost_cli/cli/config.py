"""``llmost config``: path, list, get, set, unset, edit."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from llmost_cli import paths
from llmost_cli.cli.options import state_of
from llmost_cli.core import configfile, params, settings
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


def _profile(ctx: typer.Context, cfg: configfile.ConfigFile) -> str:
    state = state_of(ctx)
    return settings.active_profile_name(cfg, state.profile, state.env.environ)


def _effective(ctx: typer.Context) -> settings.Settings:
    """The settings in effect, each with where it came from."""
    state = state_of(ctx)
    return settings.resolve(configfile.load_file(), state.profile, {}, state.env.environ)


def _echo(ctx: typer.Context, text: str, *, err: bool = False) -> None:
    ui = state_of(ctx).ui
    if err:
        ui.say(text)
    else:
        ui.write(text + "\n")


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
    effective = _effective(ctx)
    for key in params.CONFIG_KEYS:
        if key in effective.values:
            value, source = effective.values[key], effective.sources.get(key, "")
            _echo(ctx, f"{key} = {configfile.display_value(key, value)}  # {source}")


@config_app.command("get")
def get_cmd(ctx: typer.Context, key: KeyArg) -> None:
    """Print one setting (the API key masked); nothing if it is not set.

    \b
    Examples:
      llmost config get model
      test -n "$(llmost config get api_key)" || echo "no key yet"
    """
    _check_key(key)
    effective = _effective(ctx)
    if key in effective.values:
        _echo(ctx, configfile.display_value(key, effective.values[key]))


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
    cfg = configfile.load_file()
    profile = _profile(ctx, cfg)
    if value is None:
        if key != "api_key":
            raise UsageError(f"config set {key} needs a VALUE")
        value = _read_secret(ctx)
    checked = params.parse_text_value(key, value)
    configfile.set_value(cfg, profile, key, checked)
    shown = configfile.display_value(key, checked)
    _echo(ctx, f"{key} = {shown}  # saved in profile {profile} of {cfg.path}", err=True)


def _read_secret(ctx: typer.Context) -> str:
    env = state_of(ctx).env
    if env.stdin_isatty:
        import getpass

        secret = getpass.getpass("API key (input hidden): ")
    else:
        from llmost_cli.core.inputs import read_limited

        raw = read_limited(env.stdin, 64 * 1024) if env.stdin is not None else b""
        secret = raw.decode("utf-8", "replace")
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
    cfg = configfile.load_file()
    profile = _profile(ctx, cfg)
    if configfile.unset_value(cfg, profile, key):
        _echo(ctx, f"{key} removed from profile {profile}", err=True)
    else:
        _echo(ctx, f"{key} was not set in profile {profile}", err=True)


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
    configfile.load_file(path)  # reports what is wrong; the file stays as the user left it
