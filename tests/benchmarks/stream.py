"""The stream path against curl: the same 20,000-token SSE stream, read by both.

    python tests/benchmarks/stream.py               # 7 runs of each, about 20 s
    python tests/benchmarks/stream.py --runs 3 --tokens 5000
    python tests/benchmarks/stream.py --profile     # also a cProfile of one llmost run
    git archive <commit> llmost_cli | tar -x -C /tmp/old
    python tests/benchmarks/stream.py --baseline /tmp/old   # that tree too, in the same rounds

The fake server (in this process) serves the stream ``run.py`` uses: one HTTP chunk (one
``send``) per token. Each run is a fresh process reaped with ``os.wait4`` (its own CPU), runs of
curl and llmost alternate so that both see the same load, and the figures are the minimum and
median of the runs:

* ``curl -sN`` writing the body to /dev/null: the price of reading the stream at all;
* ``llmost ask`` with stdout and stderr on pipes read to the end (its stdout checked byte for
  byte);
* with ``--baseline DIR``, ``llmost ask`` again with ``PYTHONPATH=DIR`` (an older tree), in the
  same rounds, for before/after figures under the same load;
* ``llmost ask`` with a one-token answer: its start-up, request and exit, so that
  ``(CPU(big) - CPU(short)) / tokens`` is the CPU one SSE event costs;
* with ``--terminal``, the same answer rendered as live markdown on a 100x40 pseudo-terminal
  (``run.py``'s terminal run), by llmost and the baseline: the lean path must not slow it.

A script, not a test: it prints figures and exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import os
import pstats
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks.run import (  # noqa: E402
    KEY,
    TITLE,
    Sample,
    answer_tokens,
    llmost_executable,
    run_piped,
    run_pty,
)
from tests.fakeserver import FakeServer, Reply, stream_text  # noqa: E402

CURL = "/usr/bin/curl"


def environment(home: Path, base_url: str) -> dict[str, str]:
    """The scrubbed environment of run.py: private directories, no PYTHON* variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLMOST_", "PYTHON", "COVERAGE_"))
        and k not in ("NO_COLOR", "COLUMNS", "LINES")
    }
    env |= {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LLMOST_API_KEY": KEY,
        "LLMOST_BASE_URL": base_url,
        "LANG": env.get("LANG") or "C.UTF-8",
    }
    return env


def curl_argv(base_url: str) -> list[str]:
    return [
        CURL,
        "-sN",
        "-o",
        "/dev/null",
        "-H",
        "Content-Type: application/json",
        "-H",
        f"Authorization: Bearer {KEY}",
        "-d",
        '{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}]}',
        base_url.rstrip("/") + "/chat/completions",
    ]


def checked(sample: Sample, label: str, expect: bytes | None = None) -> Sample:
    if sample.rc != 0:
        tail = (sample.err or sample.out)[-400:].decode("utf-8", "replace")
        raise SystemExit(f"{label}: exit code {sample.rc}: {tail}")
    if expect is not None and sample.out != expect:
        raise SystemExit(f"{label}: stdout is not the answer ({len(sample.out)} bytes)")
    return sample


def rendered(sample: Sample, label: str) -> Sample:
    checked(sample, label)
    if TITLE not in sample.out or b"## 1." in sample.out:
        raise SystemExit(f"{label}: the terminal does not show rendered markdown")
    return sample


def line(label: str, values: Sequence[float], unit: str, scale: float = 1.0) -> str:
    lo, med = min(values) * scale, statistics.median(values) * scale
    return f"  {label:<34} min {lo:8.3f} {unit:<6} median {med:8.3f} {unit}"


def profile(exe_python: str, env: dict[str, str], out: Path) -> None:
    argv = [exe_python, "-m", "cProfile", "-o", str(out), "-m", "llmost_cli"]
    checked(run_piped([*argv, "ask", "--no-stdin", "Write."], env), "profile")
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(25)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="cProfile one llmost run")
    parser.add_argument("--baseline", help="also run llmost from this source tree (PYTHONPATH)")
    parser.add_argument("--terminal", action="store_true", help="also time the terminal run")
    args = parser.parse_args(argv)

    tokens = answer_tokens(args.tokens)
    expect = "".join(tokens).encode()
    big: Reply = stream_text(tokens)
    short: Reply = stream_text(["Lima."])
    exe = llmost_executable()
    ask = [exe, "ask", "--no-stdin", "Write a long answer."]
    with tempfile.TemporaryDirectory(prefix="llmost-stream-") as tmp, FakeServer() as server:
        env = environment(Path(tmp), server.base_url)
        curl = curl_argv(server.base_url)
        old_env = {**env, "PYTHONPATH": args.baseline} if args.baseline else None
        server.set_default(big)
        for _ in range(2):  # warm-up: .pyc files, page cache, the store's first creation
            checked(run_piped(curl, env), "curl")
            checked(run_piped(ask, env), "llmost", expect)
        curls: list[Sample] = []
        asks: list[Sample] = []
        olds: list[Sample] = []
        for _ in range(args.runs):
            curls.append(checked(run_piped(curl, env), "curl"))
            asks.append(checked(run_piped(ask, env), "llmost", expect))
            if old_env is not None:
                olds.append(checked(run_piped(ask, old_env), "llmost baseline", expect))
        terms: list[Sample] = []
        old_terms: list[Sample] = []
        for _ in range(args.runs if args.terminal else 0):
            terms.append(rendered(run_pty(ask, env), "llmost terminal"))
            if old_env is not None:
                old_terms.append(rendered(run_pty(ask, old_env), "baseline terminal"))
        server.set_default(short)
        shorts = [checked(run_piped(ask, env), "llmost short") for _ in range(args.runs)]
        if server.errors:
            raise SystemExit(f"the fake server failed: {server.errors[0]!r}")

        n = args.tokens
        python = sys.version.split()[0]
        print(f"{n:,} tokens, one HTTP chunk each; {args.runs} runs; CPython {python}")
        print(line("curl -sN > /dev/null, wall", [s.wall for s in curls], "s"))
        print(line("llmost ask piped, wall", [s.wall for s in asks], "s"))
        if olds:
            print(line("baseline llmost ask piped, wall", [s.wall for s in olds], "s"))
            old_ratios = [o.wall / c.wall for o, c in zip(olds, curls, strict=True)]
            print(line("baseline / curl wall, same round", old_ratios, "x"))
        print(line("llmost ask, one token, wall", [s.wall for s in shorts], "s"))
        ratios = [a.wall / c.wall for a, c in zip(asks, curls, strict=True)]
        print(line("llmost / curl wall, same round", ratios, "x"))
        med = statistics.median
        print(
            f"  {'ratio of the minimums / medians':<34} "
            f"{min(s.wall for s in asks) / min(s.wall for s in curls):.2f}x / "
            f"{med(s.wall for s in asks) / med(s.wall for s in curls):.2f}x"
        )
        print(line("curl CPU", [s.cpu for s in curls], "CPU-s"))
        print(line("llmost CPU", [s.cpu for s in asks], "CPU-s"))
        if olds:
            print(line("baseline llmost CPU", [s.cpu for s in olds], "CPU-s"))
            olds_per_event = [(s.cpu - min(t.cpu for t in shorts)) / n for s in olds]
            print(line("baseline CPU per SSE event", olds_per_event, "us", 1e6))
        print(line("llmost one-token CPU", [s.cpu for s in shorts], "CPU-s"))
        base = min(s.cpu for s in shorts)
        per_event = [(s.cpu - base) / n for s in asks]
        print(line("llmost CPU per SSE event", per_event, "us", 1e6))
        if terms:
            print(line("llmost ask on a terminal, wall", [s.wall for s in terms], "s"))
        if old_terms:
            print(line("baseline on a terminal, wall", [s.wall for s in old_terms], "s"))
        print(line("curl CPU per SSE event", [s.cpu / n for s in curls], "us", 1e6))
        if args.profile:
            server.set_default(big)
            profile(sys.executable, env, Path(tmp) / "llmost.prof")
    return 0


if __name__ == "__main__":
    sys.exit(main())
