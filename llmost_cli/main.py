"""Entry point and the one error boundary: every failure becomes an exit code and one line.

``llmost --version`` is answered before typer is imported, to keep it instant.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

from llmost_cli import __version__
from llmost_cli.errors import ExitCode, Interrupted, LlmostError, OutputClosed, Terminated


@dataclass
class State:
    """Per-run state shared by the commands (click's ``ctx.obj``) and the boundary."""

    profile: str | None = None
    debug: bool = False
    json_errors: bool = False  # `ask -o json`: errors go to stdout as JSON too


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        sys.stdout.write(f"llmost {__version__}\n")
        sys.exit(0)
    if args[:1] == ["--complete-values"]:  # hidden: the shell completion scripts, on every Tab
        from llmost_cli.cli.complete import main as complete

        sys.exit(complete(args[1:]))
    sys.exit(run(args))


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def run(args: list[str]) -> int:
    state = State(debug=os.environ.get("LLMOST_DEBUG", "") not in ("", "0"))
    signal.signal(signal.SIGTERM, _on_sigterm)
    state.json_errors = _wants_json(args)
    try:
        import typer

        from llmost_cli.cli.app import command

        try:
            rv = command().main(args=args, prog_name="llmost", standalone_mode=False, obj=state)
        except typer.TyperException as exc:  # typer's click: usage errors of the parser
            return _usage_error(exc, state)
        except typer.Abort:
            return _interrupted()
        return rv if isinstance(rv, int) else 0
    except KeyboardInterrupt:
        return _interrupted()
    except LlmostError as exc:
        if state.debug and not isinstance(exc, Terminated):
            import traceback

            traceback.print_exc()
        return _report(exc, state)
    except BrokenPipeError:
        return _pipe_closed()
    except Exception as exc:
        if state.debug:
            raise
        name = type(exc).__name__
        sys.stderr.write(
            f"llmost: error: internal error: {name}: {exc} "
            "(run again with --debug for the traceback, and please report it)\n"
        )
        return ExitCode.INTERNAL


def _report(exc: LlmostError, state: State) -> int:
    if state.json_errors and not isinstance(exc, OutputClosed):
        import json

        body = {"error": {"code": exc.code, "type": type(exc).__name__, "message": str(exc)}}
        _safe_stdout(json.dumps(body, ensure_ascii=False) + "\n")
    if isinstance(exc, OutputClosed):
        return _pipe_closed()
    if isinstance(exc, Interrupted | Terminated):
        sys.stderr.write(f"\nllmost: {exc.message}\n")
    else:
        from llmost_cli.ui.output import make_ui

        make_ui().error(exc)
    return int(exc.exit_code)


def _wants_json(args: list[str]) -> bool:
    """``-o json`` anywhere before ``--``: parse errors must then be JSON too."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-o", "--output") and i + 1 < len(args) and args[i + 1] == "json":
            return True
        if arg in ("-ojson", "--output=json"):
            return True
    return False


def _usage_error(exc: Exception, state: State) -> int:
    format_message = getattr(exc, "format_message", None)
    message = str(format_message() if callable(format_message) else exc)
    ctx = getattr(exc, "ctx", None)
    where = f"'{ctx.command_path} --help'" if ctx is not None else "'llmost --help'"
    message = " ".join(message.split())
    if state.json_errors:
        import json

        body = {"error": {"code": 2, "type": "UsageError", "message": message}}
        _safe_stdout(json.dumps(body) + "\n")
    sys.stderr.write(f"llmost: error: {message} (see {where})\n")
    return ExitCode.USAGE


def _interrupted() -> int:
    sys.stderr.write("\nllmost: interrupted\n")
    return ExitCode.INTERRUPTED


def _pipe_closed() -> int:
    # The reader went away (`llmost ask ... | head`): nothing left to say, and nobody to say
    # it to. Point stdout at /dev/null so the interpreter's final flush does not complain.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return ExitCode.OK


def _safe_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        pass
