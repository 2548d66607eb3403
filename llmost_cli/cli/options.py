"""The typer side of the option table (cli/flags.py): ``ask``, ``chat`` and ``batch`` as typer
commands, for ``--help``, typer's completion protocol and the completion-script generator.

A normal run of these commands does not come here: ``main`` parses it with ``flags.parse``
(typer would convert every option through pydantic). Both read the same table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmost_cli.cli.flags import Flag, Spec

if TYPE_CHECKING:
    from llmost_cli.cli.state import State

Run = Callable[["State", dict[str, Any]], int]


def state_of(ctx: typer.Context) -> State:
    """The run's state (environment, profile, debug), set up by ``main``."""
    from llmost_cli.cli.state import State

    state = ctx.find_root().obj
    assert isinstance(state, State)
    return state


def _parameter(flag: Flag) -> inspect.Parameter:
    info: Any
    if not flag.decls:
        info = typer.Argument(metavar=flag.metavar, help=flag.help)
    else:
        extra: dict[str, Any] = {}
        if flag.metavar is not None:
            extra["metavar"] = flag.metavar
        if flag.parse is not None:
            extra["parser"] = flag.parse
        if flag.min is not None:
            extra["min"] = flag.min
        if flag.kind == "pair":
            extra["show_default"] = False
        info = typer.Option(*flag.decls, help=flag.help, rich_help_panel=flag.panel, **extra)
    default = inspect.Parameter.empty if flag.kind == "value" and not flag.decls else flag.default
    return inspect.Parameter(
        flag.dest,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[flag.type, info],
    )


def typer_command(spec: Spec, run: Run, help: str) -> Callable[..., int]:
    """A function whose signature declares ``spec`` to typer, and that calls ``run``."""

    def command(ctx: typer.Context, **values: Any) -> int:
        return run(state_of(ctx), values)

    parameters = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        _parameter(spec.argument),
        *(_parameter(flag) for flag in spec.options),
    ]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": int}
    command.__name__ = command.__qualname__ = spec.name
    command.__doc__ = help
    return command
