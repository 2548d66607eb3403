"""``batch``: many independent questions, answered concurrently, one output line each.

Every line becomes a checked ``Turn`` by the same ``compose`` as ``ask``; its answer is
accumulated by the same ``stream_answer`` (from the events of a whole response, read at once:
batch prints only complete answers) and written by ``batch_output``. The HTTP client is handed
in (``api/batch_client.py``); this module holds the policy:

* **Validation first.** ``prepare`` reads INPUT once, checking every line and every id, before
  anything is sent: a malformed line is exit 2 (``--skip-invalid``: a failed output line), a
  duplicate id always exit 2.
* **Concurrency.** ``concurrency`` workers take lines one at a time from a lazy reader.
* **Rate.** ``--rpm R``: requests (retries included) leave at least 60/R s apart (a token
  bucket of one token), so no 60-second window holds more than R + 1 of them.
* **Shared backoff.** A 429, 408 or 5xx, or a failure to connect, pauses *every* worker until
  the ``Retry-After`` time (else 1, 2, 4... s with jitter); then each line retries, up to
  ``--retries`` times per line, as ``ask`` does. Never once an answer has started.
* **Whole-run failures.** HTTP 401, 402 or a server that cannot be reached after the retries
  stop the run: nothing more is started, that line is not written (``--resume`` retries it),
  and the exit code is the error's (4, 5, 8).
* **Order.** Lines are written as they complete; ``--ordered`` writes them in input order and
  bounds the buffering: line k + WINDOW (WINDOW = 4 x concurrency) is not started before line k
  is written.
* **``--max-cost``.** Nothing more is started once the spent cost reaches the limit, nor while
  the spent cost plus the expected cost of the lines in flight (their number times the mean
  cost so far) would reach it; until a first cost is known, one line at a time. A line whose
  cost is unknown (no ``usage.cost``, no cached price) stops the run, since the limit could not
  be kept. Lines not started are not written; the exit code stays 0 when every written line
  succeeded (the summary and a warning say how many were not started).
* **Signals.** SIGINT, SIGTERM, SIGHUP: nothing more is started, lines in flight are
  cancelled (not written), finished ones are written (``--ordered``: those after a gap too,
  still in order), then exit 130/143/129. A closed stdout (``| head``) stops it the same way,
  exit 0.
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from llmost_cli.core.ask import check_structured, result_json
from llmost_cli.core.batch_input import BadLine, Line
from llmost_cli.core.batch_output import Sink, record
from llmost_cli.core.batch_plan import Plan
from llmost_cli.core.events import StreamEvent
from llmost_cli.core.messages import Reply
from llmost_cli.core.turn import Turn, TurnResult, stream_answer
from llmost_cli.errors import (
    AuthError,
    CreditsError,
    ExitCode,
    Interrupted,
    LlmostError,
    OutputClosed,
    Terminated,
)

BACKOFF_BASE = 1.0  # seconds; doubled per retry of a line (as the sync client does)
RESTART_JITTER = 0.2  # seconds: workers leave a shared pause spread over this much
WINDOW_FACTOR = 4  # --ordered: lines started ahead of the oldest unwritten one, x concurrency
EXIT_SOME_FAILED = int(ExitCode.BATCH_FAILED)  # DESIGN §5


# --------------------------------------------------------------------------- the run


@dataclass
class Attempt:
    """One request's outcome, as the batch client reports it."""

    events: list[StreamEvent] = field(default_factory=list)
    error: LlmostError | None = None
    retry: bool = False  # worth another try: HTTP 408/429/5xx, or the server was not reached
    retry_after: float | None = None  # the server's Retry-After, in seconds
    reason: str = ""  # "HTTP 503", "connection refused": for the pause note
    unreachable: bool = False  # nothing reached the server (connect failed)


class BatchClient(Protocol):
    async def attempt(self, body: dict[str, Any]) -> Attempt: ...
    async def aclose(self) -> None: ...


class BatchView(Protocol):
    """How a run reaches the user (``ui/progress.py``)."""

    def update(self, stats: BatchStats) -> None: ...
    def note(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...


# record(turn, reply) -> conversation id: --store keeps each line as a conversation
Recorder = Callable[[Turn, Reply], str | None]


@dataclass
class BatchStats:
    total: int  # lines to run
    resumed: int = 0  # lines skipped, already in OUTPUT
    succeeded: int = 0
    failed: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    costed: int = 0  # finished lines whose cost is known (0 for a failure without usage)
    unpriced: int = 0  # answered lines whose cost is unknown
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    stopped: str | None = None  # max-cost cost-unknown fatal interrupted terminated output

    @property
    def written(self) -> int:
        return self.succeeded + self.failed

    @property
    def not_written(self) -> int:
        return max(0, self.total - self.written)


@dataclass
class Outcome:
    stats: BatchStats
    error: LlmostError | None = None  # a failure of the whole run (exit code), or a signal

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return int(self.error.exit_code)
        return EXIT_SOME_FAILED if self.stats.failed else 0


@dataclass
class _Job:
    seq: int
    item: Line | BadLine
    turn: Turn | None


class _NoWriter:
    """stream_answer's writer for answers nobody watches arrive."""

    def start(self, prefill: str) -> None:
        pass

    def event(self, event: StreamEvent) -> None:
        pass

    def finish(self, reply: Reply) -> None:
        pass

    def abort(self) -> None:
        pass


class _Replay:
    """A whole response's events, replayed to stream_answer as a ChatClient."""

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt

    def chat(self, body: dict[str, Any]) -> Iterator[StreamEvent]:
        yield from self._attempt.events
        if self._attempt.error is not None:
            raise self._attempt.error


class Engine:
    def __init__(
        self,
        plan: Plan,
        client: BatchClient,
        sink: Sink,
        view: BatchView,
        recorder: Recorder | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
        prices: Callable[[Any, str | None], Decimal | None] | None = None,
    ) -> None:
        self.plan = plan
        self.opts = plan.opts
        self.client = client
        self.sink = sink
        self.view = view
        self.recorder = recorder
        self.clock = clock
        self.sleep = sleep
        self.prices = prices or _price_lookup(plan.settings.base_url)
        self.stats = BatchStats(total=plan.total, resumed=plan.resumed)
        self.error: LlmostError | None = None
        self.window = WINDOW_FACTOR * self.opts.concurrency
        self.interval = 60.0 / self.opts.rpm if self.opts.rpm else 0.0
        self.in_flight = 0
        self._jobs: Iterator[_Job] = iter(())
        self._changed = asyncio.Event()
        self._pause_until = 0.0
        self._next_slot = 0.0
        self._next_write = 0  # --ordered: the seq of the next line to write
        self._held: dict[int, bytes | None] = {}  # --ordered: finished lines (None: skipped)
        self._workers: list[asyncio.Task[None]] = []

    # --- the run -------------------------------------------------------------------------

    async def run(self) -> Outcome:
        items = enumerate(self.plan.items())
        self._jobs = (_Job(seq, item, turn) for seq, (item, turn) in items)
        if self.opts.max_cost is not None and self.opts.max_cost <= 0:
            self._stop("max-cost")  # nothing may be spent: nothing is started
        self._workers = [
            asyncio.create_task(self._worker()) for _ in range(min(self.opts.concurrency, 1024))
        ]
        try:
            await self._wait_workers()
        finally:
            for task in self._workers:
                task.cancel()
            self._flush_held()
            self.stats.elapsed = self.clock() - self.stats.started
        return Outcome(self.stats, self.error)

    async def _wait_workers(self) -> None:
        pending = set(self._workers)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # a bug: the boundary shows it

    def interrupt(self, signum: int) -> None:
        """SIGINT/SIGTERM/SIGHUP: stop starting, cancel what is in flight."""
        if signum == signal.SIGINT:
            self._stop("interrupted", Interrupted())
        else:
            self._stop("terminated", Terminated(signum))
        for task in self._workers:
            task.cancel()

    def _stop(self, why: str, error: LlmostError | None = None) -> None:
        if self.stats.stopped is None:
            self.stats.stopped = why
        if error is not None and self.error is None:
            self.error = error
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    async def _worker(self) -> None:
        while self.stats.stopped is None:
            job = next(self._jobs, None)
            if job is None:
                return
            await self._until(functools.partial(self._may_start, job))
            if self.stats.stopped is not None:
                self._hold(job.seq, None)
                return
            item, turn = job.item, job.turn
            if isinstance(item, BadLine) or turn is None:
                error = item.error if isinstance(item, BadLine) else None
                self._failed(job, record(item.id, error=error))
                continue
            self.in_flight += 1
            try:
                await self._run_line(job, item, turn)
            finally:
                self.in_flight -= 1
                self._notify()

    def _may_start(self, job: _Job) -> bool:
        if self.stats.stopped is not None:
            return True
        if self.opts.ordered and job.seq >= self._next_write + self.window:
            return False
        return isinstance(job.item, BadLine) or self._within_budget()

    def _within_budget(self) -> bool:
        limit = self.opts.max_cost
        if limit is None:
            return True
        spent, costed = self.stats.cost, self.stats.costed
        if costed == 0:
            return self.in_flight == 0
        expected = spent + spent / costed * self.in_flight
        return expected < Decimal(str(limit))

    # --- one line ------------------------------------------------------------------------

    async def _run_line(self, job: _Job, line: Line, turn: Turn) -> None:
        body = turn.first_body()
        retries = turn.settings.retries
        attempt = 0
        while True:
            await self._gate()
            result = await self.client.attempt(body)
            if result.error is None or not result.retry or attempt >= retries:
                break
            self._back_off(result, attempt, retries)
            attempt += 1
        if result.error is not None and _fatal(result):
            self._hold(job.seq, None)
            self._stop("fatal", result.error)
            return
        reply, error = stream_answer(_Replay(result), body, turn.prefill, _NoWriter())
        if error is None and (self.opts.json_mode or self.opts.schema) and reply.text.strip():
            try:
                check_structured(reply.text, self.opts)
            except LlmostError as exc:
                error = exc
        self._finish(job, line, turn, reply, error)

    async def _gate(self) -> None:
        """Wait out a shared pause, then for this request's --rpm slot."""
        slot_taken = False
        while True:
            now = self.clock()
            if self._pause_until > now:
                await self.sleep(self._pause_until - now + random.uniform(0, RESTART_JITTER))
                continue
            if self.interval and not slot_taken:
                slot = max(now, self._next_slot)
                self._next_slot = slot + self.interval
                slot_taken = True
                if slot > now:
                    await self.sleep(slot - now)
                    continue
            return

    def _back_off(self, result: Attempt, attempt: int, retries: int) -> None:
        if result.retry_after is not None:
            delay = result.retry_after
        else:
            delay = BACKOFF_BASE * (2**attempt) * random.uniform(0.5, 1.0)
        until = self.clock() + delay
        if until > self._pause_until:
            self._pause_until = until
            self.view.note(
                f"pausing all requests for {delay:.1f} s ({result.reason}; "
                f"retry {attempt + 1}/{retries} of a line)"
            )

    def _finish(
        self, job: _Job, line: Line, turn: Turn, reply: Reply, error: LlmostError | None
    ) -> None:
        result = TurnResult(reply)
        result.add_usage(reply, turn.settings.model)
        cost = self._cost(result, turn, answered=error is None)
        if error is None and self.recorder is not None:
            result.conversation = self.recorder(turn, reply)
        fields = result_json(result, None if cost is None else float(cost))
        fields.pop("id", None)
        if not self.opts.store:
            fields.pop("conversation", None)
        fields["model"] = fields["model"] or turn.settings.model
        if error is not None and reply.empty:
            fields["content"] = None
        if result.usage is not None and result.usage.total_tokens is not None:
            self.stats.tokens += result.usage.total_tokens
        data = record(line.id, fields, error)
        if error is None:
            self.stats.succeeded += 1
            self._write(job.seq, data)
        else:
            self._failed(job, data)

    def _cost(self, result: TurnResult, turn: Turn, *, answered: bool) -> Decimal | None:
        """The line's cost, added to the spent total; --max-cost stops the run on reaching it,
        or when a cost is unknown (the limit could not be kept)."""
        if result.usage is None and not answered:
            self.stats.costed += 1  # a failure with no usage: nothing was counted or charged
            return None
        total: Decimal | None = Decimal(0) if result.usages else None
        for usage, model in result.usages:
            cost = self.prices(usage, model)
            if cost is None and turn.settings.model and turn.settings.model != model:
                cost = self.prices(usage, turn.settings.model)  # a dated id not in the list
            if cost is None:
                total = None
                break
            total = (total or Decimal(0)) + cost
        limit = self.opts.max_cost
        if total is None:
            self.stats.unpriced += 1
            if limit is not None and self.stats.stopped is None:
                self.view.warn(
                    "the cost of an answer is unknown (no usage.cost from the server and no "
                    "cached price for its model; 'llmost models' caches prices), so --max-cost "
                    "cannot be kept: starting no more lines"
                )
                self._stop("cost-unknown")
            return None
        self.stats.cost += total
        self.stats.costed += 1
        if limit is not None and self.stats.cost >= Decimal(str(limit)):
            self._stop("max-cost")
        return total

    def _failed(self, job: _Job, data: bytes) -> None:
        self.stats.failed += 1
        self._write(job.seq, data)

    # --- writing -------------------------------------------------------------------------

    def _write(self, seq: int, data: bytes) -> None:
        if self.opts.ordered:
            self._hold(seq, data)
        else:
            self._emit(data)
        self.view.update(self.stats)
        self._notify()

    def _hold(self, seq: int, data: bytes | None) -> None:
        """--ordered: keep a finished line (None: one that will not be written) until every
        line before it is written."""
        if not self.opts.ordered:
            return
        self._held[seq] = data
        while self._next_write in self._held:
            out = self._held.pop(self._next_write)
            self._next_write += 1
            if out is not None:
                self._emit(out)
        self._notify()

    def _flush_held(self) -> None:
        """At the end (a signal, a stop): lines finished after a gap are written, in order."""
        for seq in sorted(self._held):
            out = self._held.pop(seq)
            if out is not None:
                self._emit(out)

    def _emit(self, data: bytes) -> None:
        if self.stats.stopped == "output":
            return
        try:
            self.sink.write(data)
        except OutputClosed as exc:
            self._stop("output", exc)
            for task in self._workers:
                task.cancel()


def _fatal(result: Attempt) -> bool:
    """Failures of the whole run: a bad key, no credits, a server that cannot be reached."""
    error = result.error
    if isinstance(error, CreditsError) or result.unreachable:
        return True
    return isinstance(error, AuthError) and error.status == 401


def _price_lookup(base_url: str) -> Callable[[Any, str | None], Decimal | None]:
    """usage.cost when the server sent it, else the cached price (read once, when needed)."""
    from llmost_cli.core import models

    index: list[Mapping[str, Any]] = []

    def lookup(usage: Any, model: str | None) -> Decimal | None:
        if usage.cost is not None:
            return Decimal(str(usage.cost))
        if not model:
            return None
        if not index:
            index.append(models.price_index(base_url))
        return models.estimate(usage, index[0].get(model))

    return lookup


# --------------------------------------------------------------------------- entry point


def execute(
    plan: Plan,
    make_client: Callable[[], BatchClient],
    sink: Sink,
    view: BatchView,
    recorder: Recorder | None = None,
) -> Outcome:
    """Run the batch on a fresh event loop, with SIGINT/SIGTERM/SIGHUP handled by ``Engine``."""
    return asyncio.run(_execute(plan, make_client, sink, view, recorder))


async def _execute(
    plan: Plan,
    make_client: Callable[[], BatchClient],
    sink: Sink,
    view: BatchView,
    recorder: Recorder | None,
) -> Outcome:
    client = make_client()
    engine = Engine(plan, client, sink, view, recorder)
    loop = asyncio.get_running_loop()
    saved: dict[int, Any] = {}
    for sig in (int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP)):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, engine.interrupt, sig)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        saved[sig] = previous
    try:
        return await engine.run()
    finally:
        for sig, previous in saved.items():
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)
        await client.aclose()


# --------------------------------------------------------------------------- the summary


def count(n: int) -> str:
    """1.2M, 15.3k, 950."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def cost_text(stats: BatchStats) -> str:
    """The spent cost, or what is known of it."""
    from llmost_cli.core.text import format_cost

    if not stats.unpriced:
        return format_cost(float(stats.cost))
    if not stats.cost:
        return "cost unknown"
    return f"{format_cost(float(stats.cost))} + {stats.unpriced} lines of unknown cost"


def summary(stats: BatchStats, max_cost: float | None = None, *, resumable: bool = False) -> str:
    """``batch: 2000 done, 3 failed, 1.2M tokens, $0.42, 7.1 s`` (+ what was not run)."""
    parts = [
        f"{stats.succeeded} done",
        f"{stats.failed} failed",
        f"{count(stats.tokens)} tokens",
        cost_text(stats),
        f"{stats.elapsed:.1f} s",
    ]
    if stats.resumed:
        parts.append(f"{stats.resumed} already in OUTPUT")
    if stats.not_written:
        why = {
            "max-cost": f"--max-cost {max_cost or 0:g} reached",
            "cost-unknown": "cost unknown, --max-cost cannot be kept",
            "interrupted": "interrupted",
            "terminated": "terminated",
            "fatal": "stopped by an error",
            "output": "output closed",
        }.get(stats.stopped or "", "stopped")
        resume = "; --resume runs them" if resumable else ""
        parts.append(f"{stats.not_written} not written ({why}{resume})")
    return "batch: " + ", ".join(parts)
