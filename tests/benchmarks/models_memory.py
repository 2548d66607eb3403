"""Peak RSS and time of ``llmost models`` on the largest model lists (issues 13 and 14).

    python tests/benchmarks/models_memory.py [--runs N] [--size MiB] [--count N]

Serves from the in-process fake server (a) a hostile but valid list of the largest size the
limit allows (``fakeserver.hostile_model_list``) and (b) ``--count`` realistic OpenRouter-shaped
models (``fakeserver.realistic_models``), then runs a fresh ``llmost models`` (piped, plain and
``--json``; fetched and then from the cache) and reaps it with ``os.wait4``: its own peak RSS.
Times are the minimum of ``--runs`` runs. Reports only; the exit code is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llmost_cli.api import limits  # noqa: E402
from tests import fakeserver as fs  # noqa: E402

MiB = 1 << 20


# A small fresh parent for each measured process: a child's peak RSS starts from its parent's
# size at fork, and this script holds the bodies (tests/test_api_e2e.py does the same).
_WRAPPER = """
import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as fh:
    fh.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run(argv: list[str], env: dict[str, str]) -> tuple[int, float, float, int, int]:
    """(exit code, wall s, peak RSS MiB, stdout lines, stdout bytes) of one fresh process."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as out:
        rss_file = os.path.join(tmp, "rss")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _WRAPPER, rss_file, *argv],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                              env=env, check=False)  # fmt: skip
        wall = time.perf_counter() - started
        with open(rss_file) as fh:
            peak = int(fh.read()) / 1024
        out.seek(0)
        data = out.read()
    if proc.stderr:
        print("   stderr:", proc.stderr.decode(errors="replace")[-300:].strip(), file=sys.stderr)
    return proc.returncode, wall, peak, data.count(b"\n"), len(data)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=float, default=limits.MODEL_LIST_LIMIT / MiB)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("llmost"))
    realistic = json.dumps({"data": fs.realistic_models(args.count)}, separators=(",", ":"))
    bodies = {
        f"hostile {args.size:g} MiB": fs.hostile_model_list(int(args.size * MiB)),
        f"{args.count} realistic": realistic.encode(),
    }
    del realistic
    gc.collect()
    with fs.FakeServer() as server, tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOST_", "PYTHON"))}
        env |= {"HOME": home, "XDG_CONFIG_HOME": f"{home}/c", "XDG_CACHE_HOME": f"{home}/k",
                "XDG_DATA_HOME": f"{home}/d", "LLMOST_BASE_URL": server.base_url,
                "LLMOST_API_KEY": "llmost_BENCHKEY"}  # fmt: skip
        for name, body in bodies.items():
            server.set_default(fs.raw_response(200, body, content_type="application/json"),
                               path=fs.MODELS_PATH)  # fmt: skip
            print(f"{name}: body {len(body) / MiB:.1f} MiB")
            for label, extra in (("fetched", ["--refresh"]), ("cached", [])):
                for flags in ([], ["--json"]):
                    samples = [run([exe, "models", *extra, *flags], env) for _ in range(args.runs)]
                    rc, _, _, lines, size = samples[0]
                    print(f"  models {' '.join(flags):6} {label:7} rc={rc} "
                          f"peak {max(s[2] for s in samples):6.0f} MiB  "
                          f"time {min(s[1] for s in samples):5.2f} s  "
                          f"out {lines} lines {size / MiB:.1f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
