"""Test isolation and the helpers every end-to-end test uses.

Every test gets its own config, data and cache directories and a scrubbed environment, so no
test can read or write the developer's real files or depend on another test.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import importlib
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _pytest.assertion.rewrite as _pytest_rewrite
import pytest

from tests.fakeserver import FakeServer

TEST_KEY = "llmost_TESTKEY_9f2c7e1d5a3b4c6d8e0f"

# Byte-code caches on, whatever the shell says: with PYTHONDONTWRITEBYTECODE set (some CI
# images set it), every `llmost` the tests start would compile llmost_cli from source again,
# and this process would not cache what it compiles either.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# The signals the tests send to `llmost` must reach it. A shell that starts the suite in the
# background without job control (`cmd &` in a script, `nohup`) leaves SIGINT, SIGQUIT or SIGHUP
# ignored, and an ignored signal stays ignored in every child. A handled one is reset to its
# default in a child, so handle them here.
for _sig, _handler in (
    (signal.SIGINT, signal.default_int_handler),
    (signal.SIGHUP, signal.SIG_DFL),
    (signal.SIGQUIT, signal.SIG_DFL),
):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, _handler)


@contextmanager
def untraced() -> Iterator[None]:
    """Runs a block of the test's own work (the pyte terminal emulator) without the coverage
    tracer, which makes pure-Python code several times slower and measures nothing of llmost
    there. Code of llmost must not run inside."""
    collector = _collector()
    if collector is not None and sys.gettrace() is not None:
        # paused and resumed (not when already paused): the tracer starts afresh at its depth
        with _paused(collector):
            yield
        return
    trace = sys.gettrace()
    sys.settrace(None)
    try:
        yield
    finally:
        sys.settrace(trace)


def _untraced_rewriting() -> None:
    """pytest's rewriting of the tests' asserts, done without the coverage tracer."""
    rewrite = getattr(_pytest_rewrite, "rewrite_asserts", None)
    if rewrite is None or getattr(rewrite, "untraced", False):
        return

    def rewrite_asserts(*args: Any, **kwargs: Any) -> None:
        with untraced():
            rewrite(*args, **kwargs)

    rewrite_asserts.untraced = True  # type: ignore[attr-defined]
    _pytest_rewrite.rewrite_asserts = rewrite_asserts


# The libraries llmost and the tests use, imported before the tests and without the coverage
# tracer (llmost's own modules are still imported traced, so their module-level lines count).
_LIBRARIES = (
    "bs4",
    "h11",
    "httpcore",
    "httpx",
    "hypothesis",
    "hypothesis.strategies",
    "jsonschema",
    "markdown_it",
    "markdownify",
    "pathspec",
    "pexpect",
    "platformdirs",
    "prompt_toolkit",
    "pygments",
    "pygments.lexers",
    "pypdf",
    "pyte",
    "rich.console",
    "rich.live",
    "rich.markdown",
    "rich.syntax",
    "rich.table",
    "tomli_w",
    "typer",
)
_untraced_rewriting()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_TestBody(), "llmost-test-body")
    _stop_stray_coverage(config)
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):
        # The xdist controller runs no test: it only prepares what every worker would repeat.
        _precompile(config)
        return
    with untraced():
        for name in _LIBRARIES:
            importlib.import_module(name)


def _precompile(config: pytest.Config) -> None:
    """Rewrite the tests' asserts once, before the xdist workers start, in two processes (the
    machine has two cores): on a fresh clone each worker would otherwise rewrite every test
    module itself, most of its collection time."""
    root = Path(__file__).resolve().parent
    try:  # pytest's own cache of rewritten test modules (private: skipped if it changes)
        state = config.stash[_pytest_rewrite.assertstate_key]
        cache = _pytest_rewrite.get_cache_dir(root / "conftest.py")
        if not _pytest_rewrite.try_makedirs(cache):
            return
        todo = []
        for path in [*sorted(root.glob("test_*.py")), root / "conftest.py"]:
            pyc = cache / (path.stem + _pytest_rewrite.PYC_TAIL)
            if _pytest_rewrite._read_pyc(path, pyc, state.trace) is None:
                todo.append((path, pyc))
        pid = os.fork() if len(todo) > 1 else -1
        if pid == 0:  # the child takes every other module, and never returns into pytest
            try:
                compileall.compile_dir(root.parent / "llmost_cli", quiet=2)  # as the workers would
                _rewrite(config, state, todo[0::2])
            finally:
                os._exit(0)
        _rewrite(config, state, todo[1::2] if pid > 0 else todo)
        if pid > 0:
            os.waitpid(pid, 0)
    except Exception:  # only an optimisation: the workers rewrite what is missing
        pass


def _rewrite(config: pytest.Config, state: Any, todo: list[tuple[Path, Path]]) -> None:
    with untraced():
        for path, pyc in todo:
            source_stat, code = _pytest_rewrite._rewrite_test(path, config)
            _pytest_rewrite._write_pyc(state, code, source_stat, pyc)


# The coverage tracer runs only while a test's own body does: pytest's machinery, fixtures and
# hypothesis's example generation run untraced (on Python 3.11 an installed tracer makes all
# code of the thread about twice as slow, measured or not). Fixtures that run llmost code do
# so in the tests too. The collector is paused and resumed (coverage's private API: without
# it everything stays traced, only slower); a resumed tracer starts afresh at its call depth.
_COLLECTOR = pytest.StashKey[Any]()


def _collector() -> Any:
    """The running coverage collector of this process, or None."""
    coverage = sys.modules.get("coverage")
    cov = coverage.Coverage.current() if coverage is not None else None
    collector = getattr(cov, "_collector", None)
    if not getattr(cov, "_started", False) or not hasattr(collector, "pause"):
        return None
    return collector


@contextmanager
def _paused(collector: Any) -> Iterator[None]:
    collector.pause()
    try:
        yield
    finally:
        collector.resume()


@contextmanager
def _traced(collector: Any) -> Iterator[None]:
    """The other way round: a paused collector runs for the block."""
    collector.resume()
    try:
        yield
    finally:
        collector.pause()


def _stop_stray_coverage(config: pytest.Config) -> None:
    """In an xdist run, stop the collector pytest-cov has already started: in the controller
    (it runs no test, yet its tracer would slow the report it computes) and in each worker,
    where pytest-cov 7.1 starts the controller's too, beneath the worker's own: it measures
    nothing that is reported, but pausing the worker's (for ``no_cover``) would resume it."""
    coverage = sys.modules.get("coverage")
    xdist = hasattr(config, "workerinput") or config.getoption("numprocesses", None)
    if xdist and coverage is not None:
        stray = coverage.Coverage.current()
        if stray is not None:
            stray.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    collector = item.stash[_COLLECTOR] = _collector()
    if collector is None:
        return (yield)
    with _paused(collector):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    collector = item.stash.get(_COLLECTOR, None)
    if collector is None:
        return (yield)
    with _traced(collector):
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def _test_body(item: pytest.Item) -> Iterator[None]:
    """Innermost around the test: hypothesis generates examples untraced, runs each traced."""
    collector = item.stash.get(_COLLECTOR, None)
    hypothesis = getattr(getattr(item, "obj", None), "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", None)
    if collector is None or inner is None or item.get_closest_marker("no_cover") is not None:
        return (yield)

    # hypothesis lets plugins wrap the test it calls with each example (``inner_test``); wraps
    # keeps the digest hypothesis derives its seed and database key from
    @functools.wraps(inner)
    def traced(*args: Any, **kwargs: Any) -> Any:
        with _traced(collector):
            return inner(*args, **kwargs)

    hypothesis.inner_test = traced
    try:
        with _paused(collector):
            return (yield)
    finally:
        hypothesis.inner_test = inner


class _TestBody:
    """``_test_body`` as a plugin: a conftest can hold only one ``pytest_runtest_call``."""

    pytest_runtest_call = staticmethod(_test_body)


@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A new directory under pytest's base temporary directory, as pytest's own ``tmp_path``
    but not numbered: pytest scans the whole base directory for the next number each time,
    which grows with every test of a worker (every test has one: isolated_env)."""
    name = re.sub(r"\W", "_", request.node.name)[:30]
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_path_factory.getbasetemp()))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("LLMOST_") or name in ("NO_COLOR", "VISUAL", "EDITOR"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8")
    return home


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(_server: FakeServer) -> Iterator[FakeServer]:
    _server.reset()
    yield _server
    _server.reset()


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    stdout_bytes: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Result(rc={self.rc}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def llmost_executable() -> str:
    # The script installed next to this interpreter: PATH may hold a wrapper (a pyenv shim
    # costs a bash process per call) or another installation.
    exe = str(Path(sys.executable).parent / "llmost")
    if not Path(exe).exists():
        exe = shutil.which("llmost") or exe
    if not Path(exe).exists():
        pytest.fail("the llmost executable is not installed: run pip install -e '.[test]'")
    return exe


class Runner:
    """Runs ``llmost``: in this process through an ``Environment`` over byte buffers (httpie's
    ``MockEnvironment`` pattern; fast), or as the installed executable in a subprocess
    (``subprocess=True``: for what only a real process proves: signals, pipes, exit paths)."""

    def __init__(self, env: dict[str, str], *, subprocess: bool = False) -> None:
        self.env = env
        self.subprocess = subprocess

    def proc(self) -> Runner:
        """The same runner, as a subprocess."""
        return Runner(self.env, subprocess=True)

    def __call__(
        self,
        *args: str,
        input: bytes | str | None = b"",
        env: Mapping[str, str | None] | None = None,
        timeout: float = 60,
    ) -> Result:
        full_env = dict(os.environ) | self.env
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        data = input.encode() if isinstance(input, str) else input
        if not self.subprocess:
            return run_in_process(list(args), data, full_env)
        proc = subprocess.run(
            [llmost_executable(), *args],
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            proc.stdout,
        )


def run_in_process(
    args: list[str],
    data: bytes | None,
    environ: Mapping[str, str],
    *,
    stdin_tty: bool = False,
    stdout_tty: bool = False,
    stderr_tty: bool = False,
) -> Result:
    """``llmost ARGS`` in this process, through an Environment over byte buffers: stdin from
    ``data``; the streams are terminals only where asked (nothing is drawn for real)."""

    from llmost_cli.env import Environment
    from llmost_cli.main import run

    out, err = io.BytesIO(), io.StringIO()
    env = Environment(
        stdin=io.BytesIO(data or b""),
        stdout=out,
        stderr=err,
        stdin_isatty=stdin_tty,
        stdout_isatty=stdout_tty,
        stderr_isatty=stderr_tty,
        environ=dict(environ),
    )
    saved_environ = dict(os.environ)
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    os.environ.clear()
    os.environ.update(environ)  # paths and platformdirs read the process's variables
    try:
        rc = run(args, env)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
    raw = out.getvalue()
    return Result(rc, raw.decode("utf-8", "replace"), err.getvalue(), raw)


def forked(jobs: Sequence[Callable[[], str]], timeout: float = 60) -> list[str]:
    """Run each job in a child process forked from this one, all released at once, and return
    what each job returned.

    Real processes, so that file locks and SQLite's locking are contended between processes,
    without starting Python and importing llmost again in each child. A job that raises fails
    the test with the child's traceback."""
    go_read, go_write = os.pipe()
    children: list[tuple[int, int]] = []
    results: list[str] = []
    failures: list[str] = []
    try:  # whatever fails here, no child is left waiting
        for job in jobs:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                _child(job, go_read, go_write, read, write)  # never returns
            os.close(write)
            children.append((pid, read))
        os.write(go_write, b"g" * len(children))
        deadline = time.monotonic() + timeout
        for pid, read in children:
            data = _read_all(read, deadline)
            _, status = os.waitpid(pid, 0)
            (results if os.waitstatus_to_exitcode(status) == 0 else failures).append(data.decode())
    finally:
        for fd in (go_read, go_write, *(read for _, read in children)):
            with contextlib.suppress(OSError):
                os.close(fd)
        for pid, _ in children:
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    assert not failures, failures[0]
    return results


def _child(job: Callable[[], str], go_read: int, go_write: int, read: int, write: int) -> None:
    code = 1
    try:
        sys.settrace(None)  # what a child measures is lost with it: run at full speed
        os.close(go_write)
        os.close(read)
        os.read(go_read, 1)  # wait for the others
        out = job()
        code = 0
    except BaseException:
        out = traceback.format_exc()
    finally:
        with contextlib.suppress(BaseException):
            data = memoryview(out.encode())
            while data:
                data = data[os.write(write, data) :]
        os._exit(code)


def _read_all(fd: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError("a forked child did not finish in time")
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.fixture
def llmost(server: FakeServer) -> Runner:
    """``llmost`` pointed at the fake server, with a key."""
    return Runner({"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY})


@pytest.fixture
def llmost_bare() -> Runner:
    """``llmost`` with no server and no key configured."""
    return Runner({})


def write_config(home: Path, text: str) -> Path:
    path = home / ".config" / "llmost" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def declare_recording_tool(home: Path, marker: Path, *, extra: str = "") -> None:
    """Declare a local tool get_weather that appends its city to ``marker`` and answers 3 °C.

    ``extra`` goes before the tool table (e.g. a ``[profiles.default]`` table).
    """
    script = home / "weather.py"
    script.write_text(
        "import json, sys\n"
        "args = json.load(sys.stdin)\n"
        f"open({str(marker)!r}, 'a').write(args['city'] + '\\n')\n"
        "print(json.dumps({'city': args['city'], 'temp_c': 3}))\n"
    )
    write_config(
        home,
        f"{extra}[tools.get_weather]\n"
        'description = "Current weather in a city"\n'
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(script))}]\n"
        'parameters = { type = "object", properties = { city = { type = "string" } } }\n',
    )
