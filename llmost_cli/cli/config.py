"""``llmost config``: path, list, get, set, unset, edit, profiles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmost_cli import paths
from llmost_cli.cli.options import state_of
from llmost_cli.core import configfile, params, settings
from llmost_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from llmost_cli.cli.state import State

CONFIG_HELP = """Show and change settings (config file, profiles, API key).

Settings come from, in order: command-line flags, LLMOST_* environment variables, the active
profile (--profile NAME or LLMOST_PROFILE), then defaults.

\b
Examples:
  llmost config set api_key                 # typed hidden, stored 0600
  llmost config set api_key_cmd "pass show llmost"
  llmost --profile local config set base_url http://127.0.0.1:8080/v1
  llmost config profiles                    # which one is active, and why
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


def _effective(ctx: typer.Context) -> settings.Settings:
    """The settings in effect, each with where it came from (a missing profile: exit 3)."""
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
    """List every setting in effect, defaults included, with its source (API key masked).

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
    """Print the value in effect of one setting (the API key masked); nothing if it has none.

    On a terminal, stderr says where the value comes from.

    \b
    Examples:
      llmost config get model
      test -n "$(llmost config get api_key)" || echo "no key yet"
    """
    _check_key(key)
    effective = _effective(ctx)
    state = state_of(ctx)
    if key in effective.values:
        _echo(ctx, configfile.display_value(key, effective.values[key]))
        if state.env.stderr_isatty:
            state.ui.note(f"{key} from {effective.sources.get(key, 'default')}")
    elif state.env.stderr_isatty:
        state.ui.note(f"{key} is not set")


@config_app.command("set", context_settings={"allow_interspersed_args": False})
def set_cmd(
    ctx: typer.Context,
    key: KeyArg,
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="VALUE",
            help="The value (negative numbers too); for api_key leave it out to type it "
            "hidden or pipe it.",
        ),
    ] = None,
) -> None:
    """Set a key in the active profile (or --profile NAME, created if needed).

    \b
    Examples:
      llmost config set model openai/gpt-4o
      llmost config set frequency_penalty -0.5
      llmost config set api_key            # asks without echo, or reads a pipe
      pass show llmost | llmost config set api_key
      llmost --profile local config set base_url http://127.0.0.1:8080/v1
    """
    _check_key(key)
    state = state_of(ctx)
    if value is None:
        if key != "api_key":
            raise UsageError(f"config set {key} needs a VALUE")
        from_argument = False
        value = _read_secret(ctx)
    else:
        from_argument = True
    checked = params.parse_text_value(key, value)
    with configfile.transaction() as cfg:
        profile = settings.active_profile_name(cfg, state.profile, state.env.environ)
        configfile.set_value(cfg, profile, key, checked)
    shown = configfile.display_value(key, checked)
    _echo(ctx, f"{key} = {shown}  # saved in profile {profile} of {cfg.path}", err=True)
    if from_argument and key in configfile.SECRET_KEYS:
        state.ui.warn(
            f"the {key} given as an argument is now in your shell history (and was visible "
            f"in ps); 'llmost config set {key}' with no value reads it hidden"
        )


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
    state = state_of(ctx)
    with configfile.transaction() as cfg:
        profile = settings.active_profile_name(cfg, state.profile, state.env.environ)
        removed = configfile.unset_value(cfg, profile, key)
    if removed:
        _echo(ctx, f"{key} removed from profile {profile}", err=True)
    else:
        _echo(ctx, f"{key} was not set in profile {profile}", err=True)


@config_app.command("edit")
def edit_cmd(ctx: typer.Context) -> None:
    """Open the config file in $VISUAL or $EDITOR, then check it.

    When the result is invalid, says what is wrong and, on a terminal, offers to edit again;
    the file is always kept as you left it.

    \b
    Examples:
      llmost config edit
      EDITOR=nano llmost config edit
    """
    state = state_of(ctx)
    path = paths.config_file()
    _create_from_template(path)
    editor = state.env.environ.get("VISUAL") or state.env.environ.get("EDITOR") or "vi"
    while True:
        _run_editor(editor, path)
        try:
            configfile.load_file(path)
            return
        except ConfigError as exc:
            if not state.env.stdin_isatty:
                raise
            state.ui.error(exc)
            if not _yes(state, "edit again? [Y/n] "):
                raise ConfigError(
                    f"config file {path} is still invalid; it is kept as you left it",
                    hint="fix it with: llmost config edit",
                ) from None


@config_app.command("profiles")
def profiles_cmd(ctx: typer.Context) -> None:
    """List the profiles in the config file, one per line; '*' marks the active one.

    \b
    Examples:
      llmost config profiles
      llmost --profile work config profiles
    """
    state = state_of(ctx)
    cfg = configfile.load_file()
    name, why = configfile.profile_choice(
        cfg, state.profile, state.env.environ, settings.DEFAULT_PROFILE
    )
    names = cfg.profile_names()
    if name not in names:
        if name != settings.DEFAULT_PROFILE:
            state.ui.warn(f"profile {name!r} (chosen by {why}) is not defined in {cfg.path}")
        names.append(name)
    for profile in names:
        if profile == name:
            chosen = "active by default" if why == "default" else f"active, chosen by {why}"
            defined = "" if profile in cfg.profile_names() else "; not in the file yet"
            _echo(ctx, f"* {profile}  ({chosen}{defined})")
        else:
            _echo(ctx, f"  {profile}")


def _create_from_template(path: Path) -> None:
    if path.exists() or path.is_symlink():
        return
    try:
        paths.ensure_private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot create config file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(TEMPLATE)


def _run_editor(editor: str, path: Path) -> None:
    import shlex
    import subprocess

    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except FileNotFoundError:
        raise ConfigError(f"editor {editor!r} not found", hint="set VISUAL or EDITOR") from None


def _yes(state: State, question: str) -> bool:
    """A [Y/n] question on the terminal; end of input means no."""
    env = state.env
    env.stderr.write(question)
    env.stderr.flush()
    line = env.stdin.readline(1024) if env.stdin is not None else b""
    if not line:
        env.stderr.write("\n")
        return False
    return line.strip().lower() in (b"", b"y", b"yes")
