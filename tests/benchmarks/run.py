"""Benchmarks of the installed ``llmost`` against the in-process fake server.

Run from the repository root (or anywhere):

    python tests/benchmarks/run.py            # full run, about a minute
    python tests/benchmarks/run.py --quick    # fewer repetitions
    python tests/benchmarks/run.py --json     # machine-readable result on stdout

Every figure is the median of N runs of a fresh ``llmost`` process (N is printed).  Each
process is reaped with ``os.wait4``, which returns the resource usage of that one child: its
user + system CPU and its own peak RSS (``ru_maxrss``), with no wrapper process and none of the
"max over all children" pitfall of ``getrusage(RUSAGE_CHILDREN)``.

The script reports; it does not gate: the exit code is 0 whatever the figures say (1 only if
the script itself breaks).  See ``tests/benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import random
import re
import resource
import selectors
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakeserver import FakeServer, Reply, stream_text  # noqa: E402

KEY = "llmost_BENCHKEY_0123456789abcdef"
PTY_COLS, PTY_ROWS = 100, 40
BIG_TOKENS = 20_000
RENDER_SMALL, RENDER_LARGE = 2_000, 8_000
TRICKLE_RATE = 100.0  # tokens per second
TRICKLE_SECONDS = 3.0
RUN_TIMEOUT = 60.0  # seconds: a run that takes longer is killed and reported as an error
SHORT_ANSWER = "The capital of Peru is Lima."
TITLE = b"Client Value Delta"  # the first heading of every generated answer ("## 1. ...")


# --------------------------------------------------------------------------- the answer text

_WORDS = [
    "stream", "token", "render", "buffer", "latency", "terminal", "markdown", "client", "server",
    "answer", "model", "request", "context", "window", "parser", "block", "paragraph", "heading",
    "table", "column", "value", "config", "profile", "session", "conversation", "history",
    "prompt", "system", "user", "assistant", "chunk", "event", "delta", "usage", "cost", "price",
    "retry", "timeout", "network", "socket", "pipe", "output", "input", "cursor", "line", "width",
    "height", "frame", "refresh", "linear", "quadratic", "budget", "memory", "process", "thread",
    "signal", "python", "typer", "rich", "httpx", "sqlite",
]  # fmt: skip


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(_WORDS) for _ in range(n)]


def _sentence(rng: random.Random, n: int) -> str:
    words = _words(rng, n)
    i = rng.randrange(n)
    style = rng.randrange(4)
    if style == 0:
        words[i] = f"**{words[i]}**"
    elif style == 1:
        words[i] = f"`{words[i]}()`"
    elif style == 2:
        words[i] = f"*{words[i]}*"
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng, rng.randint(6, 14)) for _ in range(rng.randint(3, 5)))


def _section(rng: random.Random, index: int) -> str:
    """One realistic chunk of an LLM answer: every block kind the renderer handles."""
    head = " ".join(_words(rng, 3)).title()
    bullets = "\n".join(f"- {_sentence(rng, rng.randint(5, 10))}" for _ in range(rng.randint(3, 5)))
    ordered = "\n".join(
        f"{i}. {_sentence(rng, rng.randint(5, 9))}" for i in range(1, rng.randint(3, 4) + 1)
    )
    a, b, c = _words(rng, 3)
    code = (
        "```python\n"
        f"def {a}_{b}(items: list[int], limit: int = {index}) -> int:\n"
        f'    """Sum the {c} values below the limit."""\n'
        "    total = 0\n"
        "    for item in items:\n"
        "        if item < limit:\n"
        "            total += item * 2\n"
        "    return total\n"
        "```"
    )
    rows = "\n".join(
        f"| {w1} | {rng.randint(1, 9999)} | {w2} {w3} |"
        for w1, w2, w3 in (_words(rng, 3) for _ in range(rng.randint(3, 5)))
    )
    table = f"| name | value | note |\n|------|------:|------|\n{rows}"
    quote = "> " + _sentence(rng, rng.randint(8, 12))
    blocks = [
        f"## {index}. {head}",
        _paragraph(rng),
        bullets,
        _paragraph(rng),
        code,
        table,
        ordered,
        quote,
    ]
    return "\n\n".join(blocks) + "\n\n"


_TOKEN = re.compile(r"\s*\S+")


def answer_tokens(n: int, seed: int = 2026) -> list[str]:
    """n token-like pieces (" word", "\\n\\n##", ...) of a markdown answer, deterministic.

    Whitespace is attached to the front of the following word, as LLM tokenizers do; the last
    piece ends with a newline.
    """
    rng = random.Random(seed)
    sections: list[str] = []
    count = 0
    while count < n:
        sections.append(_section(rng, len(sections) + 1))
        count += len(_TOKEN.findall(sections[-1]))
    tokens = _TOKEN.findall("".join(sections))[:n]
    tokens[-1] += "\n"
    return tokens


# --------------------------------------------------------------------------- running llmost


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user + system CPU seconds of the llmost process
    maxrss_mib: float  # its peak resident set size
    rc: int
    out: bytes
    err: bytes

    def ok(self) -> bool:
        return self.rc == 0


def llmost_executable() -> str:
    # The script next to this interpreter: the one on PATH may be a pyenv shim (a bash script).
    exe = Path(sys.executable).parent / "llmost"
    if exe.exists():
        return str(exe)
    found = shutil.which("llmost")
    if found is None:
        raise SystemExit("llmost is not installed: run  python -m pip install -e '.[test]'")
    return found


def _reap(
    proc: subprocess.Popen[bytes], started: float
) -> tuple[float, int, resource.struct_rusage]:
    """Reap the child with wait4: its own CPU times and peak RSS, nobody else's."""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, proc.returncode, usage


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # Not proc.kill(): Popen.send_signal() polls, and so would reap the child before wait4.
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)


def run_piped(argv: Sequence[str], env: dict[str, str]) -> Sample:
    """Run with stdin from /dev/null and stdout/stderr to pipes that are read to the end."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    deadline = started + RUN_TIMEOUT
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            if time.perf_counter() > deadline:
                _kill(proc)
            for key, _ in sel.select(timeout=1.0):
                fd = int(key.fd)
                data = os.read(fd, 1 << 16)
                if data:
                    chunks[fd].append(data)
                else:
                    sel.unregister(fd)
    wall, rc, usage = _reap(proc, started)
    proc.stdout.close()
    proc.stderr.close()
    return Sample(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        rc,
        b"".join(chunks[out_fd]),
        b"".join(chunks[err_fd]),
    )


def run_pty(argv: Sequence[str], env: dict[str, str]) -> Sample:
    """Run with stdin, stdout and stderr on a PTY_COLS x PTY_ROWS pseudo-terminal.

    The master side is drained continuously, so the child never blocks on a full tty buffer.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLS, 0, 0))
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    out: list[bytes] = []
    deadline = started + RUN_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(master, selectors.EVENT_READ)
        while True:
            if time.perf_counter() > deadline:
                _kill(proc)
            if not sel.select(timeout=1.0):
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: every slave descriptor is closed and the buffer is empty
                break
            if not data:
                break
            out.append(data)
    wall, rc, usage = _reap(proc, started)
    os.close(master)
    return Sample(
        wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rc, b"".join(out), b""
    )


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    name: str
    unit: str
    value: float | None
    goal: float | None = None  # value <= goal passes; None: reference only
    runs: int = 0
    samples: list[float] = field(default_factory=list)
    note: str = ""
    error: str = ""

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if self.goal is None or self.value is None:
            return "info"
        return "PASS" if self.value <= self.goal else "FAIL"


class Bench:
    def __init__(self, *, quick: bool, log: Callable[[str], None], llm: str | None = None) -> None:
        self.quick = quick
        self.llm = llm  # simonw/llm's executable, for the comparison row (None: skipped)
        self.log = log
        self.exe = llmost_executable()
        self.server = FakeServer()
        self.tmp = Path(tempfile.mkdtemp(prefix="llmost-bench-"))
        self.env = self._environment()
        self.figures: list[Figure] = []
        self.medians: dict[str, Sample] = {}
        self.only_startup = False

    def _environment(self) -> dict[str, str]:
        """A scrubbed environment with private config/data/cache directories.

        PYTHON* variables are dropped too: PYTHONDONTWRITEBYTECODE would make every run
        recompile llmost_cli, and PYTHONUNBUFFERED changes how stdout is written; a user's
        shell has neither.
        """
        home = self.tmp / "home"
        home.mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LLMOST_", "PYTHON", "COVERAGE_"))
            and k not in ("NO_COLOR", "COLUMNS", "LINES", "VISUAL", "EDITOR")
        }
        env |= {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "LLMOST_API_KEY": KEY,
            "TERM": "xterm-256color",
            "LANG": env.get("LANG") or "C.UTF-8",
        }
        return env

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def start(self) -> None:
        self.server.start()
        self.env["LLMOST_BASE_URL"] = self.server.base_url

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- measuring --

    def measure(
        self,
        label: str,
        argv: Sequence[str],
        *,
        runs: int,
        pty: bool = False,
        reply: Reply | None = None,
        expect: bytes | None = None,
        rendered: bytes | None = None,
        warmup: int = 1,
    ) -> list[Sample]:
        """Run argv warmup + runs times; return the measured samples (warm-ups dropped).

        expect: the exact stdout.  rendered: text the terminal must show, while no raw markdown
        heading ("## 1.") may appear (markdown was rendered, not printed as is).  Raises
        RuntimeError with the child's output if a run fails or prints the wrong answer.
        """
        if reply is not None:
            self.server.set_default(reply)
        runner = run_pty if pty else run_piped
        samples: list[Sample] = []
        for i in range(warmup + runs):
            sample = runner(argv, self.env)
            if not sample.ok():
                tail = (sample.err or sample.out)[-400:].decode("utf-8", "replace")
                raise RuntimeError(f"{label}: exit code {sample.rc}: {tail!r}")
            if expect is not None and sample.out != expect:
                raise RuntimeError(
                    f"{label}: stdout differs from the streamed answer "
                    f"({len(sample.out)} bytes, expected {len(expect)})"
                )
            if rendered is not None and (rendered not in sample.out or b"## 1." in sample.out):
                raise RuntimeError(f"{label}: the terminal output is not rendered markdown")
            if self.server.errors:
                raise RuntimeError(f"{label}: the fake server failed: {self.server.errors[0]!r}")
            if i >= warmup:
                samples.append(sample)
        walls = ", ".join(f"{s.wall:.3f}" for s in samples)
        self.log(f"  {label}: wall [{walls}] s")
        self.medians[label] = _median_sample(samples)
        return samples

    def add(
        self,
        name: str,
        unit: str,
        samples: list[float],
        goal: float | None = None,
        note: str = "",
    ) -> Figure:
        fig = Figure(name, unit, statistics.median(samples), goal, len(samples), samples, note)
        self.figures.append(fig)
        return fig

    def guarded(self, names: Sequence[str], body: Callable[[], None]) -> None:
        """Run one group of figures; a failure becomes ERROR rows and the run goes on."""
        try:
            body()
        except Exception as exc:  # the benchmark reports; one broken scenario must not stop it
            self.log(f"  ERROR: {exc}")
            present = {f.name for f in self.figures}
            for name in names:
                if name not in present:
                    self.figures.append(Figure(name, "", None, error=str(exc)))

    # -- the scenarios --

    def startup(self) -> None:
        n = self.reps(15, 5)
        self.log(f"start-up (N={n})")
        py = self.measure("python -c pass", [sys.executable, "-c", "pass"], runs=n)
        self.add("`python -c pass` wall (reference)", "ms", [s.wall * 1000 for s in py])
        ver = self.measure("llmost --version", [self.exe, "--version"], runs=n)
        self.add("`llmost --version` wall", "ms", [s.wall * 1000 for s in ver], 60)
        ratio = statistics.median(s.wall for s in ver) / statistics.median(s.wall for s in py)
        self.add("`llmost --version` / `python -c pass` wall", "x", [ratio], 4)
        hlp = self.measure("llmost --help", [self.exe, "--help"], runs=n)
        self.add("`llmost --help` wall", "ms", [s.wall * 1000 for s in hlp], 250)

    def short_ask(self) -> None:
        n = self.reps(15, 5)
        self.log(f"short ask (N={n})")
        reply = stream_text(SHORT_ANSWER)
        argv = [self.exe, "ask", "--no-stdin", "What is the capital of Peru?"]
        piped = self.measure(
            "ask short, piped", argv, runs=n, reply=reply, expect=SHORT_ANSWER.encode() + b"\n"
        )
        self.add("`ask` short answer, piped, wall", "ms", [s.wall * 1000 for s in piped], 250)
        self.add(
            "`ask` short answer, piped, CPU (reference)", "CPU-ms", [s.cpu * 1000 for s in piped]
        )
        self.add(
            "`ask` short answer, piped, peak RSS (reference)",
            "MiB",
            [s.maxrss_mib for s in piped],
        )
        term = self.measure(
            "ask short, terminal", argv, runs=n, reply=reply, pty=True, rendered=b"Lima"
        )
        self.add(
            "`ask` short answer, terminal, wall (reference)", "ms", [s.wall * 1000 for s in term]
        )

    def versus_llm(self) -> None:
        """The same short answer through simonw/llm (an OpenAI-compatible model in a private
        LLM_USER_PATH pointed at the fake server), alternating with llmost run by run."""
        assert self.llm is not None
        n = self.reps(15, 5)
        self.log(f"short ask vs llm (N={n}): {self.llm}")
        user = self.tmp / "llm-user"
        user.mkdir(exist_ok=True)
        (user / "extra-openai-models.yaml").write_text(
            f'- model_id: fake\n  model_name: fake-model\n  api_base: "{self.server.base_url}"\n'
            "  api_key_name: fake\n"
        )
        (user / "keys.json").write_text(json.dumps({"fake": KEY}))
        env = self.env | {"LLM_USER_PATH": str(user)}
        self.server.set_default(stream_text(SHORT_ANSWER))
        question = "What is the capital of Peru?"
        argvs = {
            "llmost": [self.exe, "ask", "--no-stdin", question],
            "llm": [self.llm, "-m", "fake", question],
        }
        walls: dict[str, list[float]] = {name: [] for name in argvs}
        for i in range(n + 1):  # alternate, so that load on the machine hits both alike
            for name, argv in argvs.items():
                sample = run_piped(argv, env)
                if not sample.ok() or SHORT_ANSWER.encode() not in sample.out:
                    tail = (sample.err or sample.out)[-400:].decode("utf-8", "replace")
                    raise RuntimeError(f"{name}: exit code {sample.rc}: {tail!r}")
                if i:
                    walls[name].append(sample.wall)
        for name, values in walls.items():
            self.log(f"  {name}: wall [{', '.join(f'{w:.3f}' for w in values)}] s")
        self.add(
            "`llm` short answer, piped, wall (reference)", "ms", [w * 1000 for w in walls["llm"]]
        )
        self.add(
            "`ask` short answer, piped, wall (alternating with llm)",
            "ms",
            [w * 1000 for w in walls["llmost"]],
        )
        ratio = statistics.median(walls["llmost"]) / statistics.median(walls["llm"])
        self.add("`ask` / `llm` wall, short answer", "x", [ratio], 0.25)

    def big_stream(self) -> None:
        n = self.reps(5, 2)
        self.log(f"{BIG_TOKENS:,}-token answer (N={n})")
        tokens = answer_tokens(BIG_TOKENS)
        reply = stream_text(tokens)
        text = "".join(tokens).encode()
        argv = [self.exe, "ask", "--no-stdin", "Write a long answer."]

        floor = self.measure("server floor", self._floor_argv(), runs=n, reply=reply)
        self.add(
            f"{BIG_TOKENS:,} tokens, fake server to a bare socket reader (reference)",
            "s",
            [s.wall for s in floor],
            note="python start-up + the server writing every chunk; a floor for the rows below",
        )
        piped = self.measure("big answer, piped", argv, runs=n, reply=reply, expect=text)
        piped_wall = self.add(
            f"{BIG_TOKENS:,}-token answer, piped, wall", "s", [s.wall for s in piped], 1.0
        )
        self.add(
            f"{BIG_TOKENS:,}-token answer, piped, peak RSS",
            "MiB",
            [s.maxrss_mib for s in piped],
            60,
        )
        self.add(
            f"{BIG_TOKENS:,}-token answer, piped, CPU (reference)",
            "CPU-s",
            [s.cpu for s in piped],
        )
        term = self.measure(
            "big answer, terminal", argv, runs=n, reply=reply, pty=True, rendered=TITLE
        )
        term_wall = self.add(
            f"{BIG_TOKENS:,}-token answer, terminal {PTY_COLS}x{PTY_ROWS}, wall",
            "s",
            [s.wall for s in term],
            2.5,
        )
        self.add(
            f"{BIG_TOKENS:,}-token answer, terminal, CPU (reference)",
            "CPU-s",
            [s.cpu for s in term],
        )
        self.add(
            f"{BIG_TOKENS:,}-token answer, terminal, peak RSS (reference)",
            "MiB",
            [s.maxrss_mib for s in term],
        )
        assert piped_wall.value is not None and term_wall.value is not None
        ratio = term_wall.value / piped_wall.value
        self.figures.append(
            Figure("terminal / piped wall, same answer", "x", ratio, 2.5, n, note="of the medians")
        )

    def render_scaling(self) -> None:
        n = self.reps(5, 2)
        self.log(f"render scaling {RENDER_SMALL:,} vs {RENDER_LARGE:,} tokens (N={n})")
        argv = [self.exe, "ask", "--no-stdin", "Write an answer."]
        small = self.measure(
            f"{RENDER_SMALL} tokens, terminal",
            argv,
            runs=n,
            pty=True,
            reply=stream_text(answer_tokens(RENDER_SMALL)),
            rendered=TITLE,
        )
        large = self.measure(
            f"{RENDER_LARGE} tokens, terminal",
            argv,
            runs=n,
            pty=True,
            reply=stream_text(answer_tokens(RENDER_LARGE)),
            rendered=TITLE,
        )
        base = self.medians.get("ask short, terminal")
        s_wall = statistics.median(s.wall for s in small)
        l_wall = statistics.median(s.wall for s in large)
        self.add(
            f"{RENDER_SMALL:,} tokens, terminal, wall (reference)", "s", [s.wall for s in small]
        )
        self.add(
            f"{RENDER_LARGE:,} tokens, terminal, wall (reference)", "s", [s.wall for s in large]
        )
        if base is not None and s_wall > base.wall:
            net = (l_wall - base.wall) / (s_wall - base.wall)
            self.figures.append(
                Figure(
                    f"render cost {RENDER_LARGE:,} / {RENDER_SMALL:,} tokens, terminal",
                    "x",
                    net,
                    5.0,
                    n,
                    note="wall minus the short-answer terminal run (start-up); linear = 4",
                )
            )
        self.figures.append(
            Figure(
                f"whole-process wall {RENDER_LARGE:,} / {RENDER_SMALL:,} tokens, terminal",
                "x",
                l_wall / s_wall,
                None,
                n,
                note="start-up included (reference)",
            )
        )

    def trickle(self) -> None:
        n = self.reps(3, 1)
        count = int(TRICKLE_RATE * TRICKLE_SECONDS)
        self.log(f"trickle {count} tokens at {TRICKLE_RATE:g}/s (N={n})")
        tokens = answer_tokens(count)
        reply = stream_text(tokens, delay=1.0 / TRICKLE_RATE)
        argv = [self.exe, "ask", "--no-stdin", "Write slowly."]
        piped = self.measure(
            "trickle, piped", argv, runs=n, reply=reply, expect="".join(tokens).encode(), warmup=0
        )
        self.add(
            f"CPU while {count} tokens trickle at {TRICKLE_RATE:g}/s, piped",
            "CPU-s",
            [s.cpu for s in piped],
            0.5,
            note=f"stream wall {statistics.median(s.wall for s in piped):.2f} s",
        )
        term = self.measure(
            "trickle, terminal", argv, runs=n, reply=reply, pty=True, rendered=TITLE, warmup=0
        )
        self.add(
            f"CPU while {count} tokens trickle at {TRICKLE_RATE:g}/s, terminal",
            "CPU-s",
            [s.cpu for s in term],
            0.8,
            note=f"stream wall {statistics.median(s.wall for s in term):.2f} s",
        )

    def _floor_argv(self) -> list[str]:
        """A minimal client: POST, then read the response to the end, parsing nothing."""
        code = (
            "import socket,sys\n"
            "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
            "b=b'{\"stream\":true}'\n"
            "s.sendall(b'POST /api/v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\n"
            "Content-Type: application/json\\r\\nConnection: close\\r\\n"
            "Content-Length: %d\\r\\n\\r\\n%s'%(len(b),b))\n"
            "n=0\n"
            "while True:\n"
            "    d=s.recv(1<<16)\n"
            "    n+=len(d)\n"
            "    if not d or d.endswith(b'0\\r\\n\\r\\n'): break\n"
            "print(n)\n"
        )
        return [sys.executable, "-c", code, str(self.server.port)]

    def run(self) -> None:
        self.guarded(
            [
                "`python -c pass` wall (reference)",
                "`llmost --version` wall",
                "`llmost --help` wall",
            ],
            self.startup,
        )
        self.guarded(["`ask` short answer, piped, wall"], self.short_ask)
        if self.llm is not None:
            self.guarded(["`ask` / `llm` wall, short answer"], self.versus_llm)
        else:
            self.log("llm comparison skipped: llm not found (--llm PATH or LLMOST_BENCH_LLM)")
        if self.only_startup:
            return
        self.guarded(
            [
                f"{BIG_TOKENS:,}-token answer, piped, wall",
                f"{BIG_TOKENS:,}-token answer, piped, peak RSS",
                f"{BIG_TOKENS:,}-token answer, terminal {PTY_COLS}x{PTY_ROWS}, wall",
                "terminal / piped wall, same answer",
            ],
            self.big_stream,
        )
        self.guarded(
            [f"render cost {RENDER_LARGE:,} / {RENDER_SMALL:,} tokens, terminal"],
            self.render_scaling,
        )
        count = int(TRICKLE_RATE * TRICKLE_SECONDS)
        self.guarded(
            [
                f"CPU while {count} tokens trickle at {TRICKLE_RATE:g}/s, piped",
                f"CPU while {count} tokens trickle at {TRICKLE_RATE:g}/s, terminal",
            ],
            self.trickle,
        )


def _median_sample(samples: list[Sample]) -> Sample:
    ordered = sorted(samples, key=lambda s: s.wall)
    return ordered[(len(ordered) - 1) // 2]


# --------------------------------------------------------------------------- reporting


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "CPU-ms"):
        return f"{value:.0f} {unit}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.3f} {unit}"


def _goal(fig: Figure) -> str:
    return "-" if fig.goal is None else "<= " + _fmt(fig.goal, fig.unit)


def markdown_table(figures: Sequence[Figure]) -> str:
    lines = ["| figure | N | measured | goal | result |", "|---|---:|---:|---:|---|"]
    for f in figures:
        measured = f.error[:60] if f.error else _fmt(f.value, f.unit)
        lines.append(f"| {f.name} | {f.runs} | {measured} | {_goal(f)} | {f.status} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tests/benchmarks/run.py",
        description="Benchmark the installed llmost against the in-process fake server.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--llm",
        metavar="PATH",
        default=os.environ.get("LLMOST_BENCH_LLM") or shutil.which("llm"),
        help="simonw/llm's executable, for the comparison row (default: $LLMOST_BENCH_LLM, "
        "else llm on PATH; skipped when none)",
    )
    parser.add_argument(
        "--only",
        choices=["startup"],
        help="only the start-up figures (python, --version, --help, short ask, llm)",
    )
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    bench = Bench(quick=args.quick, log=log, llm=args.llm)
    bench.only_startup = args.only == "startup"
    started = time.perf_counter()
    mode = ("quick" if args.quick else "full") + (", start-up only" if args.only else "")
    log(f"llmost: {bench.exe}  ({mode} run)")
    bench.start()
    try:
        bench.run()
    finally:
        bench.close()
    elapsed = time.perf_counter() - started
    failing = [f.name for f in bench.figures if f.status in ("FAIL", "ERROR")]
    if args.json:
        result = {
            "date": datetime.date.today().isoformat(),
            "mode": mode,
            "machine": machine(),
            "elapsed_s": round(elapsed, 1),
            "figures": [asdict(f) | {"status": f.status} for f in bench.figures],
            "failing": failing,
        }
        print(json.dumps(result, indent=2))
    else:
        m = machine()
        print(
            f"\n{datetime.date.today().isoformat()}, Python {m['python']}, {m['cpus']} CPUs, "
            f"{m['platform']}; {mode} run in {elapsed:.0f} s\n"
        )
        print(markdown_table(bench.figures))
        notes = [f"- {f.name}: {f.note}" for f in bench.figures if f.note]
        if notes:
            print("\nNotes:\n" + "\n".join(notes))
        print("\nFailing goals: " + (", ".join(failing) if failing else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
