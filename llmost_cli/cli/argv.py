"""The command line of ``ask``, ``chat`` and ``batch``, parsed from the option table
(cli/flags.py) without typer.

typer 0.29 converts every option of a command through a pydantic ``TypeAdapter`` (options
with ``parser=`` too), and importing pydantic and building the adapters was about a third of a
short ``ask``; typer's own import is another tenth. So ``main`` runs these three commands from
here: the rules and the error messages are click's, as typer prints them (long and short
options, ``--opt=value``, ``-oVALUE``, clustered flags, options after positionals, ``--``,
"No such option: --modle (Possible options: ...)"). Help (``-h``/``--help``), completion and
every other command still go through typer, whose commands are built from the same table.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmost_cli.errors import UsageError

if TYPE_CHECKING:
    from llmost_cli.cli.flags import Flag, Spec

HELP_NAMES = ("-h", "--help")
COMMANDS = ("ask", "chat", "batch")  # the keys of flags.SPECS: route() needs no table


class HelpWanted(Exception):
    """``-h``/``--help`` was given: typer prints the help."""


def _escape(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m[0]):02x}", text)


def _no_such_option(name: str, longs: Sequence[str]) -> Usage:
    message = f"No such option: {_escape(name)}"
    close = difflib.get_close_matches(name, longs) if name.startswith("--") else []
    if close:
        message += f" (Possible options: {', '.join(sorted(close))})"
    return Usage(message)


def parse(spec: Spec, args: Sequence[str]) -> dict[str, Any]:
    """The values of ``args`` for ``spec``, as typer would pass them (``None``: not given).

    Raises ``HelpWanted`` for ``-h``/``--help`` and ``Usage`` for a bad command line.
    """
    by_name: dict[str, Flag] = {}
    for option in spec.options:
        by_name.update(dict.fromkeys(option.names, option))
    longs = [n for n in (*by_name, "--help") if n.startswith("--")]
    raw: dict[str, list[tuple[str, str | None]]] = {}  # dest -> (spelling, text) in order
    positional: list[str] = []
    help_wanted = False
    rest = list(args)

    def take(name: str) -> str:
        if not rest:
            raise Usage(f"Option {name!r} requires an argument.", global_hint=True)
        return rest.pop(0)

    def given(flag: Flag, name: str, text: str | None) -> None:
        raw.setdefault(flag.dest, []).append((name, text))

    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positional += rest
            break
        if arg[:1] != "-" or len(arg) == 1:
            positional.append(arg)
            continue
        if arg[:2] == "--":  # a long option; "-m=x" is a short one with the value "=x"
            name, eq, attached = arg.partition("=")
            flag = by_name.get(name)
            if flag is None and name not in HELP_NAMES:
                raise _no_such_option(name, longs)
            if flag is None or flag.kind in ("flag", "pair"):
                if eq:
                    raise Usage(f"Option {name!r} does not take a value.", global_hint=True)
                help_wanted = help_wanted or flag is None
                if flag is not None:
                    given(flag, name, None)
            else:
                given(flag, name, attached if eq else take(name))
            continue
        for i, ch in enumerate(arg[1:], start=2):  # -cu, -ojson, -m=x (value "=x", as click)
            short = "-" + ch
            flag = by_name.get(short)
            if short == "-h":
                help_wanted = True
                continue
            if flag is None:
                raise _no_such_option(short, longs)
            if flag.kind in ("flag", "pair"):
                given(flag, short, None)
                continue
            given(flag, short, arg[i:] if i < len(arg) else take(short))
            break
    if help_wanted:
        raise HelpWanted
    values = _convert(spec, raw)
    argument = spec.argument
    if argument.kind == "list":
        values[argument.dest] = positional or None
    elif not positional:
        raise Usage(f"Missing argument {argument.metavar!r}.")
    else:
        values[argument.dest] = positional[0]
        if positional[1:]:
            raise Usage(f"Got unexpected extra argument(s) ({' '.join(positional[1:])})")
    return values


def _convert(spec: Spec, raw: dict[str, list[tuple[str, str | None]]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    # As click: the options given, in the order they came (the first bad one is reported),
    # then the others' defaults.
    dests = [*raw, *(f.dest for f in spec.options if f.dest not in raw)]
    table = {f.dest: f for f in spec.options}
    for flag in (table[d] for d in dests):
        given = raw.get(flag.dest)
        if not given:
            values[flag.dest] = flag.default
        elif flag.kind == "flag":
            values[flag.dest] = True
        elif flag.kind == "pair":
            values[flag.dest] = given[-1][0] == flag.decls[0].split("/")[0]
        elif flag.kind == "list":
            values[flag.dest] = [text for _, text in given]
        else:
            values[flag.dest] = _value_of(flag, *given[-1])
    return values


def _value_of(flag: Flag, name: str, text: str | None) -> Any:
    assert text is not None
    if flag.parse is not None:
        return flag.parse(text)
    if flag.type is str or flag.type == str | None:
        return text
    hint = f"Invalid value for {' / '.join(repr(n) for n in flag.decls)}: "
    if flag.type in (int, int | None):
        try:
            number: int | float = int(text.strip())
        except ValueError:
            raise Usage(
                hint + "Input should be a valid integer, unable to parse string as an integer"
            ) from None
        if flag.min is not None and number < flag.min:
            raise Usage(hint + f"Input should be greater than or equal to {flag.min}")
        return number
    try:
        return float(text.strip())
    except ValueError:
        raise Usage(
            hint + "Input should be a valid number, unable to parse string as a number"
        ) from None


class Usage(Exception):
    """A command-line error in click's words; ``main`` adds where to look for help."""

    def __init__(self, message: str, *, global_hint: bool = False) -> None:
        super().__init__(message)
        self.global_hint = global_hint  # typer's click points these at 'llmost --help'


# --------------------------------------------------------------------------- running


def route(args: Sequence[str]) -> tuple[str, list[str], str | None, bool] | None:
    """``(command, its args, --profile, --debug)`` when ``args`` run ask, chat or batch with
    at most the global options ``--profile`` and ``--debug`` before it; else None (typer)."""
    profile, debug, i = None, False, 0
    while i < len(args):
        arg = args[i]
        if arg == "--profile" and i + 1 < len(args):
            profile, i = args[i + 1], i + 2
        elif arg.startswith("--profile="):
            profile, i = arg.removeprefix("--profile="), i + 1
        elif arg == "--debug":
            debug, i = True, i + 1
        elif arg in COMMANDS:
            return arg, list(args[i + 1 :]), profile, debug
        else:
            return None
    return None


def values_for(name: str, args: Sequence[str]) -> dict[str, Any] | None:
    """The values of a command line of ``name``; None when typer must print the help."""
    from llmost_cli.cli.flags import SPECS  # the table imports core (params, settings)

    try:
        return parse(SPECS[name], args)
    except HelpWanted:
        return None
    except Usage as exc:
        where = "llmost" if exc.global_hint else f"llmost {name}"
        message = " ".join(str(exc).split())
        raise UsageError(message, hint=f"see '{where} --help'") from None
