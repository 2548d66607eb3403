"""Benchmark of ``llmost conversations`` on a big store: 10,000 conversations, 100,000 messages.

    python tests/benchmarks/conversations.py            # full run (filling the store ~1 min)
    python tests/benchmarks/conversations.py --quick    # 1,000 conversations, fewer runs
    python tests/benchmarks/conversations.py --json     # one JSON object on stdout

It prints figures and asserts nothing (exit 0 whatever they say). Wall times are medians of N
fresh ``llmost`` processes (the console script next to this interpreter), piped, in a private
``XDG_DATA_HOME``; "beyond start-up" subtracts the median of ``llmost --version`` (answered
before typer is imported), so it counts typer, the command tree, the store and the output.
The database size is measured after a checkpoint and ``VACUUM``, then again on a copy with the
full-text index (table, view, triggers) dropped and vacuumed: the ratio is what search costs
in disk space.

Goals: ``conversations list`` and ``conversations search WORD`` each under 0.3 s beyond
start-up; the index grows the file by less than 2x. For reference it also times ``llmost
conversations --help`` and ``llmost config path`` (typer and the command tree, no store), and
the store calls alone in this process: the difference is what the conversations code costs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORDS = [
    "stream",
    "token",
    "render",
    "buffer",
    "latency",
    "terminal",
    "markdown",
    "client",
    "server",
    "answer",
    "model",
    "request",
    "context",
    "window",
    "parser",
    "block",
    "paragraph",
    "heading",
    "table",
    "column",
    "value",
    "config",
    "profile",
    "session",
    "history",
    "prompt",
    "system",
    "chunk",
    "event",
    "delta",
    "usage",
    "cost",
    "price",
    "retry",
    "timeout",
    "network",
    "socket",
    "pipe",
    "output",
    "input",
    "cursor",
    "line",
    "width",
    "height",
    "frame",
    "refresh",
    "linear",
    "budget",
    "memory",
    "process",
    "thread",
    "signal",
    "python",
    "typer",
    "rich",
    "httpx",
    "sqlite",
    "postgres",
    "index",
    "query",
    "cache",
    "deploy",
    "kubernetes",
    "docker",
    "invoice",
    "customer",
    "report",
    "schedule",
    "migrate",
    "schema",
    "backup",
    "restore",
    "encrypt",
    "decrypt",
    "compile",
]
RARE = "zanzibar"  # in one message of 2,000
COMMON = "python"  # in most messages


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def fill(db: Path, conversations: int, per: int, seed: int = 7) -> None:
    """``conversations`` conversations of ``per`` messages: questions of 1-3 sentences, answers
    of a few paragraphs (about 700 characters), some with a code block."""
    from llmost_cli.core.messages import Conversation, Message
    from llmost_cli.store.store import Store, new_id

    rng = random.Random(seed)
    start = time.time() - 400 * 86400
    with Store(db) as store:
        for c in range(conversations):
            created = start + c * 3000.0
            msgs = []
            for i in range(per):
                if i % 2 == 0:
                    text = " ".join(
                        sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(1, 3))
                    )
                    role = "user"
                else:
                    paras = [
                        " ".join(sentence(rng, rng.randint(8, 18)) for _ in range(3))
                        for _ in range(rng.randint(1, 3))
                    ]
                    if rng.random() < 0.3:
                        paras.append(f"```python\nprint({rng.choice(WORDS)!r})\n```")
                    text, role = "\n\n".join(paras), "assistant"
                if rng.random() < 1 / 2000:
                    text += f" {RARE}"
                msgs.append(Message(role, text, model="openai/gpt-4o", created=created + i))
            name = f"project-{c}" if c % 10 == 0 else None
            conv = Conversation(new_id(), name, "openai/gpt-4o", created, created + per)
            store.add(conv, msgs)


def size_with_and_without_index(db: Path, work: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.close()
    with_index = db.stat().st_size
    bare = work / "without-index.db"
    shutil.copy(db, bare)
    conn = sqlite3.connect(bare)
    for statement in (
        "DROP TRIGGER messages_fts_insert",
        "DROP TRIGGER messages_fts_delete",
        "DROP TRIGGER messages_fts_update",
        "DROP TABLE messages_fts",
        "DROP VIEW message_bodies",
    ):
        conn.execute(statement)
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    return with_index, bare.stat().st_size


def llmost() -> str:
    exe = Path(sys.executable).parent / "llmost"
    return str(exe) if exe.exists() else shutil.which("llmost") or "llmost"


def environment(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLMOST_", "PYTHON", "COVERAGE_")) and k not in ("NO_COLOR", "COLUMNS")
    }
    return env | {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }


@dataclass
class Figure:
    wall: float  # median seconds
    cpu: float  # median user + system CPU seconds of the process
    out: int  # bytes on stdout (of the last run)


def measure(args: list[str], env: dict[str, str], n: int) -> Figure:
    """Medians of n runs (after one warm-up); each child reaped with os.wait4 for its own CPU."""
    walls, cpus, out = [], [], 0
    for i in range(n + 1):
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [llmost(), *args], env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
            )
            # reaped with wait4, not Popen.wait: the CPU of this one child, nobody else's
            _, status, usage = os.wait4(proc.pid, 0)
            took = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                stderr.seek(0)
                raise SystemExit(f"llmost {' '.join(args)} failed: {stderr.read().decode()}")
            out = stdout.tell()
        if i:
            walls.append(took)
            cpus.append(usage.ru_utime + usage.ru_stime)
    return Figure(statistics.median(walls), statistics.median(cpus), out)


def in_process(db: Path, n: int) -> dict[str, float]:
    """The store calls alone, in this process: what the commands add to start-up."""
    from llmost_cli.store.store import Store

    calls = {
        "Store() open": lambda s: None,
        "summaries(20)": lambda s: s.summaries(20),
        "summaries(all)": lambda s: s.summaries(None),
        f"search({COMMON!r})": lambda s: s.search(COMMON),
        f"search({RARE!r})": lambda s: s.search(RARE),
        "resolve('last') + messages": lambda s: s.messages(s.resolve("last").id),
    }
    out = {}
    for label, call in calls.items():
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            with Store(db) as store:
                call(store)
            samples.append(time.perf_counter() - started)
        out[f"in process: {label}"] = statistics.median(samples)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 conversations, 5 runs each")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    opts = parser.parse_args()
    conversations, per = (1_000, 10) if opts.quick else (10_000, 10)
    n = 5 if opts.quick else 11
    say = (lambda s: print(s, file=sys.stderr)) if opts.json else print
    with tempfile.TemporaryDirectory(prefix="llmost-bench-conv-") as tmp:
        home = Path(tmp)
        env = environment(home)
        os.environ.update({k: env[k] for k in ("XDG_DATA_HOME", "HOME")})
        from llmost_cli import paths

        db = paths.database_file()
        say(f"filling {conversations:,} conversations / {conversations * per:,} messages ...")
        started = time.perf_counter()
        fill(db, conversations, per)
        fill_s = time.perf_counter() - started
        figures: dict[str, Any] = {"conversations": conversations, "messages": conversations * per}
        figures["fill seconds (Store.add per conversation)"] = round(fill_s, 1)
        base = measure(["--version"], env, n)
        figures["llmost --version: wall (start-up)"] = base.wall
        figures["llmost --version: CPU"] = base.cpu
        for label, args in {
            "llmost conversations --help": ["conversations", "--help"],
            "llmost config path": ["config", "path"],
        }.items():  # typer, the command tree, a command with no store: the floor under ours
            got = measure(args, env, n)
            figures[f"{label} (reference): wall beyond start-up"] = got.wall - base.wall
            figures[f"{label} (reference): CPU beyond start-up"] = got.cpu - base.cpu
        runs = {
            "conversations list": ["conversations", "list"],
            "conversations list --json": ["conversations", "list", "--json"],
            "conversations list -n 0 (all)": ["conversations", "list", "-n", "0"],
            f"conversations search {COMMON} (in most messages)": ["conv", "search", COMMON],
            f"conversations search {RARE} (in 1 of 2,000)": ["conv", "search", RARE],
            "conversations search kubernetes invoice --json": [
                "conv",
                "search",
                "kubernetes",
                "invoice",
                "--json",
            ],
            "conversations show last (markdown)": ["conv", "show", "last"],
        }
        for label, args in runs.items():
            got = measure(args, env, n)
            figures[f"{label}: wall beyond start-up"] = got.wall - base.wall
            figures[f"{label}: CPU beyond start-up"] = got.cpu - base.cpu
        figures |= in_process(db, n)
        started = time.perf_counter()
        subprocess.run(
            [llmost(), "conv", "export", "--all", "-o", str(home / "all.jsonl")],
            env=env,
            check=True,
        )
        figures["export --all to JSON Lines, 1 run: wall"] = time.perf_counter() - started
        figures["export size MiB"] = round((home / "all.jsonl").stat().st_size / 2**20, 1)
        with_index, without = size_with_and_without_index(db, home)
        figures["database MiB with the index"] = round(with_index / 2**20, 1)
        figures["database MiB without the index"] = round(without / 2**20, 1)
        figures["index growth (with / without)"] = round(with_index / without, 2)
    if opts.json:
        print(json.dumps(figures, indent=2))
        return 0
    print()
    for label, value in figures.items():
        if isinstance(value, float) and (
            "wall" in label or "CPU" in label or "in process" in label
        ):
            shown = f"{value * 1000:.0f} ms"
        elif isinstance(value, float) and "seconds" in label:
            shown = f"{value:.1f} s"
        else:
            shown = f"{value:,}" if isinstance(value, int) else str(value)
        print(f"{label:<70} {shown:>10}")
    print(f"\nmedians of {n} runs; goals: list and search < 300 ms beyond start-up, growth < 2x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
