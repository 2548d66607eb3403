"""Rendering benchmarks: a huge code block and a huge model list, on a terminal and piped.

    python tests/benchmarks/render.py                        # 200,000 lines, 100,000 models
    python tests/benchmarks/render.py --lines 50000 --models 20000 --reps 1
    python tests/benchmarks/render.py --source /tmp/old      # another source tree (PYTHONPATH)

``--source DIR`` runs ``llmost`` with ``PYTHONPATH=DIR``, so a checkout of an older commit
(``git archive <commit> llmost_cli | tar -x -C DIR``) gives the "before" figures with the same
script. A script, not a test: it prints figures (median of ``--reps`` runs of a fresh process,
reaped with ``wait4`` as in ``run.py``) and exits 0 whatever they are.

Figures:

* ``ask``, one answer that is a single fenced code block of N lines (``value_n = compute(n)``,
  streamed in pieces of about 500 characters): on a 100x40 pseudo-terminal (live markdown) and
  piped (the floor: start-up, HTTP, SSE parsing), wall and CPU. The terminal run must show the
  last line.
* the same at N/4: ``wall(N) / wall(N/4)`` is about 4 when rendering is linear, 16 quadratic.
* in-process ``LiveMarkdown`` on a terminal console writing to memory: the renderer alone.
* ``llmost models`` with M models from the fake server (cached by the first run): on the
  pseudo-terminal (a table) and piped (tab-separated lines).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks import run as bench  # noqa: E402
from tests.fakeserver import FakeServer, stream_text  # noqa: E402

PIECE = 500  # characters per streamed chunk


def plain(data: bytes) -> bytes:
    """Terminal output without its escape sequences (styles split the text)."""
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", data)


def code_answer(lines: int) -> str:
    return "```python\n" + "".join(f"value_{n} = compute({n})\n" for n in range(lines)) + "```\n"


def pieces(text: str, size: int = PIECE) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def model_list(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"vendor{n % 97}/model-{n}",
            "name": f"Model {n}",
            "context_length": 4096 + n,
            "pricing": {"prompt": "0.000001", "completion": "0.000002"},
            "architecture": {"input_modalities": ["text", "image"] if n % 3 else ["text"]},
        }
        for n in range(count)
    ]


class Runner:
    def __init__(self, source: str | None, reps: int) -> None:
        self.reps = reps
        self.server = FakeServer().start()
        self.bench = bench.Bench(quick=True, log=lambda line: print(line, file=sys.stderr))
        self.env = self.bench.env | {"LLMOST_BASE_URL": self.server.base_url}
        if source:
            self.env["PYTHONPATH"] = source
        self.exe = bench.llmost_executable()
        self.rows: list[tuple[str, str]] = []

    def close(self) -> None:
        self.server.stop()
        self.bench.close()

    def median(self, run: Callable[[], bench.Sample], check: Callable[[bench.Sample], bool]) -> Any:
        samples = []
        for _ in range(self.reps):
            sample = run()
            if sample.rc != 0 or not check(sample):
                raise RuntimeError(f"bad run: rc={sample.rc} {sample.err[-300:]!r}")
            samples.append(sample)
        return statistics.median(s.wall for s in samples), statistics.median(s.cpu for s in samples)

    def ask(self, lines: int, *, pty: bool) -> tuple[float, float]:
        answer = code_answer(lines)
        last = f"value_{lines - 1} = compute({lines - 1})".encode()
        argv = [self.exe, "ask", "--no-stdin", "go"]

        def run() -> bench.Sample:
            self.server.add(stream_text(pieces(answer), keepalive=False))
            return bench.run_pty(argv, self.env) if pty else bench.run_piped(argv, self.env)

        return self.median(run, lambda s: last in plain(s.out))  # type: ignore[no-any-return]

    def models(self, count: int, *, pty: bool) -> tuple[float, float]:
        self.server.models = model_list(count)
        argv = [self.exe, "models"]
        # fill the cache first: every timed run reads the same list from disk
        bench.run_piped([*argv, "--refresh"], self.env)
        want = f"{count} models".encode() if pty else f"model-{count - 1}\t".encode()

        def run() -> bench.Sample:
            return bench.run_pty(argv, self.env) if pty else bench.run_piped(argv, self.env)

        return self.median(run, lambda s: want in plain(s.out))  # type: ignore[no-any-return]

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))
        print(f"{name}: {value}", file=sys.stderr)


def in_process(lines: int) -> float:
    from rich.console import Console

    from llmost_cli.ui.livemd import LiveMarkdown

    console = Console(
        file=io.StringIO(), force_terminal=True, width=100, height=40, color_system="truecolor"
    )
    started = time.perf_counter()
    with LiveMarkdown(console) as live:
        for piece in pieces(code_answer(lines)):
            live.feed(piece)
    return time.perf_counter() - started


def timing(wall: float, cpu: float | None = None) -> str:
    return f"{wall:.2f} s" + (f" ({cpu:.2f} CPU-s)" if cpu is not None else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--source", help="run llmost from this source tree (PYTHONPATH)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--skip", action="append", default=[], choices=["ask", "models", "lib"])
    args = parser.parse_args(argv)
    bench.RUN_TIMEOUT = args.timeout
    runner = Runner(args.source, args.reps)
    n, m = args.lines, args.models
    try:
        if "ask" not in args.skip:
            wall, cpu = runner.ask(n, pty=True)
            runner.add(f"ask, {n:,}-line code block, terminal 100x40", timing(wall, cpu))
            runner.add(f"ask, {n:,}-line code block, piped", timing(*runner.ask(n, pty=False)))
            quarter, _ = runner.ask(n // 4, pty=True)
            runner.add(f"ask, {n // 4:,}-line code block, terminal", timing(quarter))
            runner.add("terminal wall ratio, 4x the lines", f"{wall / quarter:.2f}x (linear: 4)")
        if "lib" not in args.skip and not args.source:
            runner.add(f"LiveMarkdown alone, {n:,}-line code block", timing(in_process(n)))
        if "models" not in args.skip:
            runner.add(f"models, {m:,} models, piped", timing(*runner.models(m, pty=False)))
            wall, cpu = runner.models(m, pty=True)
            runner.add(f"models, {m:,} models, terminal 100x40", timing(wall, cpu))
            quarter, _ = runner.models(m // 4, pty=True)
            runner.add(f"models, {m // 4:,} models, terminal", timing(quarter))
            runner.add("terminal wall ratio, 4x the models", f"{wall / quarter:.2f}x (linear: 4)")
    finally:
        runner.close()
    source = args.source or "this checkout"
    print(f"\nllmost from {source}; median of {args.reps}; {os.cpu_count()} CPUs\n")
    print("| figure | measured |\n|---|---|")
    for name, value in runner.rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
