"""Entry point and the one error boundary: every failure becomes an exit code and one line.

``llmost --version`` is answered before typer is imported, to keep it instant.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from llmost_cli import __version__
from llmost_cli.env import Environment
from llmost_cli.errors import (
    ExitCode,
    Interrupted,
    LlmostError,
    OutputClosed,
    Terminated,
    UsageError,
)

if TYPE_CHECKING:
    from types import FrameType

    from llmost_cli.cli.state import State


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    env = Environment.from_system()
    code = run(args, env)
    _flush_quietly(env)
    sys.exit(code)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def run(args: list[str], env: Environment | None = None) -> int:
    env = env or Environment.from_system()
    if args == ["--version"]:  # answered before typer is imported, to keep it instant
        _write(env, f"llmost {__version__}\n")
        return ExitCode.OK
    if args[:1] == ["--complete-values"]:  # hidden: the shell completion scripts, on every Tab
        from llmost_cli.cli.complete import main as complete

        return complete(args[1:], env)
    from llmost_cli.cli.state import CURRENT, State  # after --version: it imports dataclasses

    state = State(env, debug=env.flag("LLMOST_DEBUG"))
    token = CURRENT.set(state)
    try:
        return _run(args, state)
    finally:
        CURRENT.reset(token)


def _run(args: list[str], state: State) -> int:
    env = state.env
    state.json_errors = _wants_json(args)
    # SIGTERM and SIGHUP (the terminal closed) store the partial answer, as Ctrl-C does.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        args = _decoded(args, env)
        if "_LLMOST_COMPLETE" not in env.environ:
            rv = _run_without_typer(args, state)
            if rv is not None:
                return rv
        import typer

        from llmost_cli.cli.app import command, command_for

        cmd = command_for(args)
        if "_LLMOST_COMPLETE" in env.environ:  # typer's own completion protocol
            cmd = command()
            with env.as_sys_streams():
                return _exit_code(cmd.main, args)
        try:
            # click prints help and its own messages to the process streams: route them through
            # the Environment, so that nothing reaches the process's streams behind its back.
            # make_context + invoke (not main): Ctrl-C, a closed pipe or EOF must reach this
            # boundary, not typer's standalone handling (which turns Ctrl-C into a silent 130
            # and a closed pipe into exit 1).
            with env.as_sys_streams(), cmd.make_context("llmost", args, obj=state) as ctx:
                rv = cmd.invoke(ctx)
        except typer.Exit as exc:  # --help, --version
            return int(exc.exit_code)
        except typer.TyperException as exc:  # typer's click: usage errors of the parser
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, exit 0
                _write(env, exc.ctx.get_help() + "\n")  # type: ignore[attr-defined]
                return ExitCode.OK
            return _usage_error(exc, state)
        except typer.Abort:
            return _interrupted(env)
        except SystemExit as exc:  # --show-completion / --install-completion exit by themselves
            return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
        return rv if isinstance(rv, int) else 0
    except KeyboardInterrupt:
        return _interrupted(env)
    except LlmostError as exc:
        if state.debug and not isinstance(exc, Terminated | Interrupted | OutputClosed):
            import traceback

            traceback.print_exc(file=env.stderr)
        return _report(exc, state)
    except BrokenPipeError:
        return _pipe_closed(env)
    except Exception as exc:
        if state.debug:
            raise
        name = type(exc).__name__
        env.stderr.write(
            f"llmost: error: internal error: {name} "
            "(run again with --debug for the traceback, and please report it)\n"
        )
        return ExitCode.INTERNAL


def _run_without_typer(args: list[str], state: State) -> int | None:
    """``ask``, ``chat`` and ``batch`` parsed from the option table (cli/argv.py), without
    typer: it converts each option through pydantic, a third of a short ``ask``. None: typer
    runs it (help, the other commands, global options other than --profile and --debug)."""
    from llmost_cli.cli import argv

    route = argv.route(args)
    if route is None:
        return None
    name, rest, profile, debug = route
    values = argv.values_for(name, rest)
    if values is None:  # -h/--help
        return None
    state.profile, state.debug = profile, state.debug or debug
    with state.env.as_sys_streams():
        if name == "ask":
            from llmost_cli.cli.ask import ask as command
        elif name == "chat":
            from llmost_cli.cli.chat import chat as command
        else:
            from llmost_cli.cli.batch import batch as command
        return command(state, values)


def _exit_code(main: Callable[..., object], args: list[str]) -> int:
    try:
        main(args=args, prog_name="llmost")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    return ExitCode.OK


def _decoded(args: list[str], env: Environment) -> list[str]:
    """Arguments that were not valid UTF-8 arrive with surrogate escapes: replace, and say so."""
    out = []
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            env.stderr.write(
                "llmost: warning: an argument is not valid UTF-8; invalid bytes were "
                "replaced with U+FFFD\n"
            )
            arg = arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            arg = arg.encode("utf-8", "replace").decode("utf-8")
        out.append(arg)
    return out


def _report(exc: LlmostError, state: State) -> int:
    env = state.env
    if isinstance(exc, OutputClosed):
        return _pipe_closed(env) if exc.quiet else _output_failed(exc, state)
    if state.json_errors:
        import json

        from llmost_cli.core.ask import finite

        error = {"code": exc.code, "type": type(exc).__name__, "message": str(exc)}
        body = finite({**exc.details, "error": error})
        text = json.dumps(body, ensure_ascii=False, allow_nan=False) + "\n"
        if env.stdout_isatty:
            state.ui.write_data(text)  # the server's words, escaped on a terminal
        else:
            _write(env, text)
    if isinstance(exc, Interrupted | Terminated):
        _stderr(env, f"\nllmost: {exc.message}\n")
    else:
        state.ui.error(exc)
    return int(exc.exit_code)


def _output_failed(exc: OutputClosed, state: State) -> int:
    _stderr(state.env, f"llmost: error: {exc.message}\n")
    return int(exc.exit_code)


def _wants_json(args: list[str]) -> bool:
    """``ask ... -o json`` (anywhere before ``--``): parse errors must then be JSON too.
    Only ``ask`` prints JSON on stdout: ``batch -o json`` names an output file."""
    if "ask" not in args[: args.index("--") if "--" in args else len(args)]:
        return False
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
    return _report(UsageError(message, hint=f"see {where}"), state)


def _interrupted(env: Environment) -> int:
    _stderr(env, "\nllmost: interrupted\n")
    return ExitCode.INTERRUPTED


def _pipe_closed(env: Environment) -> int:
    # The reader went away (`llmost ask ... | head`): nothing left to say, and nobody to say
    # it to. Point stdout at /dev/null so the interpreter's final flush does not complain.
    try:
        fd = env.stdout.fileno() if env.stdout is not None else None
    except (OSError, ValueError, AttributeError):
        fd = None
    if fd is not None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return ExitCode.OK


def _write(env: Environment, text: str) -> None:
    if env.stdout is None:
        return
    try:
        env.stdout.write(text.encode("utf-8"))
        env.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _stderr(env: Environment, text: str) -> None:
    try:
        env.stderr.write(text)
        env.stderr.flush()
    except (OSError, ValueError):
        pass


def _flush_quietly(env: Environment) -> None:
    """A full disk or a closed pipe on the final flush is no reason for a traceback."""
    for stream in (env.stdout, env.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            if stream is env.stdout:
                _pipe_closed(env)
