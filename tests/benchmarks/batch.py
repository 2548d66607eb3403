"""Batch throughput of the installed ``llmost`` against the fake server (100 ms per request).

    python tests/benchmarks/batch.py            # full run, about a minute
    python tests/benchmarks/batch.py --quick    # one run per figure, fewer xargs prompts

Prints figures, asserts nothing (exit 0 whatever they say). See README.md, "Batch".

1. The server's floor: a minimal client (raw asyncio sockets, in its own process) sends the
   same 2,000 requests over 64 keep-alive connections. The fake server is a
   ThreadingHTTPServer (a thread per connection); this shows whether it, and not llmost, is
   the bottleneck. The ideal is 2,000 / 64 x 100 ms = 3.1 s.
2. ``llmost batch`` on 2,000 prompts at --concurrency 64: wall, CPU, peak RSS (``os.wait4``).
3. Peak RSS for 4x the lines (full run only): memory is flat in the number of lines.
4. 200 prompts: ``xargs -P 8 llmost ask`` (one process per prompt, 8 at a time) against
   ``llmost batch`` at --concurrency 8 (the same parallelism) and 64.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks.run import Bench, Sample, run_piped  # noqa: E402

LATENCY = 0.1
BIG, CONCURRENCY = 2000, 64
SMALL = 200


def probe_main(host: str, port: int, n: int, connections: int) -> None:
    """The minimal client of figure 1: prints its wall time."""
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
    request = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    todo = iter(range(n))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        for _ in todo:
            writer.write(request)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # headers
            await reader.readuntil(b"\r\n0\r\n\r\n")  # the chunked body's end
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(connection() for _ in range(connections)))

    started = time.perf_counter()
    asyncio.run(main())
    print(f"{time.perf_counter() - started:.3f}")


def write_prompts(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "prompt": f"Say hello to number {i}."}) + "\n")
    return path


def median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/batch.py")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--probe", nargs=4, metavar=("HOST", "PORT", "N", "CONN"))
    args = parser.parse_args(argv)
    if args.probe:
        host, port, n, conn = args.probe
        probe_main(host, int(port), int(n), int(conn))
        return 0
    runs = 1 if args.quick else 3
    xargs_n = 80 if args.quick else SMALL
    bench = Bench(quick=args.quick, log=lambda s: print(s, file=sys.stderr))
    bench.start()
    server = bench.server
    server.latency = LATENCY
    rows: list[tuple[str, str, str]] = []
    try:
        big = write_prompts(bench.tmp / "big.jsonl", BIG)
        small = write_prompts(bench.tmp / "small.jsonl", SMALL)
        env = bench.env

        floor = []
        for _ in range(runs):
            probe = [sys.executable, __file__, "--probe", server.host, str(server.port)]
            s = run_piped([*probe, str(BIG), str(CONCURRENCY)], env)
            floor.append(float(s.out))
        rows.append((
            f"fake server floor: {BIG} requests, {CONCURRENCY} connections, raw client",
            f"{statistics.median(floor):.2f} s",
            f"ideal {BIG / CONCURRENCY * LATENCY:.2f} s",
        ))  # fmt: skip

        samples = []
        for _ in range(runs):
            server.reset()
            server.latency = LATENCY
            s = run_piped([bench.exe, "batch", str(big), "--concurrency", str(CONCURRENCY)], env)
            lines = s.out.splitlines()
            ok = s.rc == 0 and len(lines) == BIG and all(b'"error": null' in x for x in lines)
            if not ok:
                print(f"batch run failed: rc={s.rc} {s.err.decode()[-500:]}", file=sys.stderr)
            samples.append(s)
            peak = server.max_in_flight
        rows.append(
            (
                f"batch {BIG} prompts --concurrency {CONCURRENCY}, wall",
                f"{median(samples, 'wall'):.2f} s",
                "<= 8 s",
            )
        )
        rows.append(
            (
                f"batch {BIG} prompts, peak RSS",
                f"{median(samples, 'maxrss_mib'):.1f} MiB",
                "<= 120 MiB",
            )
        )
        rows.append(
            (f"batch {BIG} prompts, CPU (reference)", f"{median(samples, 'cpu'):.2f} CPU-s", "-")
        )
        rows.append(("server's max in-flight requests (reference)", str(peak), f"{CONCURRENCY}"))

        if not args.quick:  # memory is flat in the number of lines
            server.reset()
            server.latency = 0.005
            many = write_prompts(bench.tmp / "many.jsonl", 4 * BIG)
            s = run_piped([bench.exe, "batch", str(many), "--concurrency", str(CONCURRENCY)], env)
            rows.append((f"batch {4 * BIG} prompts (5 ms latency), peak RSS",
                         f"{s.maxrss_mib:.1f} MiB", f"vs {BIG}: flat"))  # fmt: skip

        prompts = [f"Say hello to number {i}." for i in range(xargs_n)]
        listing = bench.tmp / "prompts.txt"
        listing.write_text("\n".join(prompts) + "\n")
        xargs = f"xargs -P 8 -I{{}} '{bench.exe}' ask --no-stdin {{}} < '{listing}' > /dev/null"
        server.reset()
        server.latency = LATENCY
        x = run_piped(["bash", "-c", xargs], env)
        per_prompt = x.wall / xargs_n
        scaled = "" if xargs_n == SMALL else f", scaled to {SMALL}: {per_prompt * SMALL:.1f} s"
        shown = f"{x.wall:.2f} s ({per_prompt * 1000:.0f} ms a prompt{scaled})"
        rows.append((f"xargs -P 8 llmost ask, {xargs_n} prompts", shown, "-"))
        xargs_200 = per_prompt * SMALL
        for conc in (8, 64):
            times = []
            for _ in range(runs):
                server.reset()
                server.latency = LATENCY
                s = run_piped([bench.exe, "batch", str(small), "--concurrency", str(conc)], env)
                times.append(s.wall)
            t = statistics.median(times)
            rows.append((f"batch {SMALL} prompts --concurrency {conc}", f"{t:.2f} s",
                         f"{xargs_200 / t:.1f}x faster than xargs (goal >= 10x)"))  # fmt: skip
    finally:
        bench.close()
    print(f"\nbatch benchmark, {os.cpu_count()} cores, latency {LATENCY * 1000:.0f} ms/request\n")
    print("| figure | measured | goal / note |\n|---|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
