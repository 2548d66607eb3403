"""``llmost templates``: list, show, edit, path (DESIGN §1b)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from llmost_cli import paths
from llmost_cli.cli.options import state_of
from llmost_cli.core import templates
from llmost_cli.errors import ConfigError

TEMPLATES_HELP = """List, show and edit templates: TOML files in the templates folder beside
the config file, applied with 'llmost ask -T NAME' (or 'chat -T NAME', '/template NAME').

A template may set: description, system, prompt ({input} is your text, -f context and stdin;
{name} is filled by -v name=value or a [defaults] table; {{ and }} are literal braces),
model, temperature, top_p, max_tokens, frequency_penalty, presence_penalty, stop, seed,
schema and tools. Options on the command line win over the template.

\b
Examples:
  llmost templates edit review        # create or change templates/review.toml
  git diff | llmost ask -T review -v focus=security
  llmost templates list
"""

SKELETON = """\
# llmost template: use it with `llmost ask -T {name}`. See `llmost templates --help`.
description = ""
# system = "You are a careful reviewer."
prompt = \"\"\"
{{input}}
\"\"\"
# model = "openai/gpt-4o"
# temperature = 0.2

# [defaults]
# language = "English"
"""

templates_app = typer.Typer(rich_markup_mode=None, help=TEMPLATES_HELP, no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The template's name, e.g. review.")]


def _folder() -> Path:
    return templates.directory(paths.config_file())


@templates_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the templates with their descriptions (an invalid one is marked, not fatal).

    \b
    Examples:
      llmost templates list
      llmost templates list | cut -f1
    """
    ui = state_of(ctx).ui
    folder = _folder()
    found = templates.names(folder)
    if not found:
        ui.note(f"no templates in {folder}; create one with: llmost templates edit NAME")
        return
    for name in found:
        try:
            about = templates.describe(templates.load(folder, name))
        except ConfigError as exc:
            about = f"(invalid: {exc.message})"
        ui.write(f"{name}\t{about}\n" if about else f"{name}\n")


@templates_app.command("show")
def show_cmd(ctx: typer.Context, name: NameArg) -> None:
    """Print a template's file, after checking it.

    \b
    Examples:
      llmost templates show review
      llmost templates show translate | grep prompt
    """
    template = templates.load(_folder(), name)
    text = template.path.read_bytes().decode("utf-8")
    state_of(ctx).ui.write(text if text.endswith("\n") else text + "\n")


@templates_app.command("edit")
def edit_cmd(name: NameArg) -> None:
    """Open a template in $VISUAL or $EDITOR (a new one starts from a skeleton), then check it.

    \b
    Examples:
      llmost templates edit review
      EDITOR=nano llmost templates edit commit-message
    """
    import shlex
    import subprocess

    folder = _folder()
    path = templates.path_for(folder, name)
    if not path.exists():
        paths.ensure_private_dir(folder.parent)
        folder.mkdir(exist_ok=True)
        with path.open("x", encoding="utf-8") as fh:
            fh.write(SKELETON.format(name=path.stem))
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except FileNotFoundError:
        raise ConfigError(f"editor {editor!r} not found", hint="set VISUAL or EDITOR") from None
    templates.load(folder, path.stem)  # reports what is wrong; the file stays as the user left it


@templates_app.command("path")
def path_cmd() -> None:
    """Print the templates folder (beside the config file; LLMOST_CONFIG moves both).

    \b
    Examples:
      llmost templates path
      ls "$(llmost templates path)"
    """
    typer.echo(str(_folder()))
