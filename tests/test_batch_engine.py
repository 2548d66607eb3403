"""The batch engine with a scripted async client: the ordering window, the shared pause,
max-cost arithmetic; and the pure pieces (line parsing, SSE progress clock, summary, view)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from llmost_cli.core import batch, batch_plan
from llmost_cli.core.batch_input import BadLine, Line, parse_line
from llmost_cli.core.batch_output import record
from llmost_cli.core.events import Finish, ResponseMeta, TextDelta, Usage
from llmost_cli.core.settings import Settings
from llmost_cli.errors import APIError, AuthError, UsageError

Behave = Callable[[str], Awaitable[batch.Attempt]]


def answer(text: str, cost: float | None = 0.001) -> batch.Attempt:
    usage = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2, cost=cost)
    return batch.Attempt(events=[ResponseMeta("g", "m/x"), TextDelta(text), Finish("stop"), usage])


class Client:
    def __init__(self, behave: Behave) -> None:
        self.behave = behave
        self.log: list[tuple[float, str, str]] = []  # (time, event, prompt)
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    async def attempt(self, body: dict[str, Any]) -> batch.Attempt:
        prompt = body["messages"][-1]["content"]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.log.append((time.monotonic(), "start", prompt))
        try:
            return await self.behave(prompt)
        finally:
            self.in_flight -= 1
            self.log.append((time.monotonic(), "end", prompt))

    async def aclose(self) -> None:
        self.closed = True


class Sink:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        self.lines.append(json.loads(data))

    def close(self) -> None:
        pass


class View:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.updates = 0

    def update(self, stats: batch.BatchStats) -> None:
        self.updates += 1

    def note(self, text: str) -> None:
        self.notes.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def plan(n: int, retries: int = 3, **options: Any) -> batch_plan.Plan:
    data = "".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(n))
    opts = batch_plan.BatchOptions(input="-", **options)
    settings = Settings(
        profile="default", config_path=Path("none.toml"), base_url="http://x/v1", retries=retries
    )
    return batch_plan.prepare(opts, settings, io.BytesIO(data.encode()))


def execute(p: batch_plan.Plan, client: Client) -> tuple[batch.Outcome, Sink, View]:
    sink, view = Sink(), View()
    try:
        outcome = batch.execute(p, lambda: client, sink, view)
    finally:
        p.source.close()
    assert client.closed
    return outcome, sink, view


def test_ordered_window_bounds_what_runs_ahead_of_a_slow_line() -> None:
    window = batch.WINDOW_FACTOR * 2
    release = asyncio.Event()
    started: list[tuple[int, bool]] = []  # (line, line 0 released yet)

    async def behave(prompt: str) -> batch.Attempt:
        i = int(prompt[1:])
        started.append((i, release.is_set()))
        if i == 0:
            await release.wait()
        elif i == window - 1:  # the last line allowed to run ahead: let line 0 end soon
            asyncio.get_running_loop().call_later(0.1, release.set)
        return answer(prompt)

    outcome, sink, _ = execute(plan(30, concurrency=2, ordered=True), Client(behave))
    assert outcome.exit_code == 0
    assert [line["id"] for line in sink.lines] == list(range(30))
    ahead = sorted(i for i, released in started if not released)
    assert ahead == list(range(window))  # lines 0..7 ran; line 8 waited for line 0


def test_a_429_pauses_every_worker() -> None:
    refused: set[str] = set()

    async def behave(prompt: str) -> batch.Attempt:
        await asyncio.sleep(0.01)
        if prompt == "p3" and prompt not in refused:
            refused.add(prompt)
            error = APIError("HTTP 429: slow down", status=429)
            return batch.Attempt(error=error, retry=True, retry_after=0.5, reason="HTTP 429")
        return answer(prompt)

    client = Client(behave)
    outcome, sink, view = execute(plan(40, concurrency=4), client)
    assert outcome.exit_code == 0 and len(sink.lines) == 40
    refused_at = next(t for t, what, p in client.log if what == "end" and p == "p3")
    during = [
        t for t, what, _ in client.log if what == "start" and refused_at < t < refused_at + 0.45
    ]
    assert during == []
    assert len(view.notes) == 1 and "pausing all requests for 0.5 s (HTTP 429" in view.notes[0]


def test_retries_are_per_line_and_counted() -> None:
    async def behave(prompt: str) -> batch.Attempt:
        error = APIError("HTTP 503: busy", status=503)
        return batch.Attempt(error=error, retry=True, retry_after=0.0, reason="HTTP 503")

    client = Client(behave)
    outcome, sink, _ = execute(plan(2, concurrency=1, retries=2), client)
    assert outcome.exit_code == 9
    assert [line["error"]["code"] for line in sink.lines] == [503, 503]
    assert len([e for e in client.log if e[1] == "start"]) == 6  # 1 + 2 retries each


def test_unreachable_server_stops_the_run() -> None:
    async def behave(prompt: str) -> batch.Attempt:
        from llmost_cli.errors import NetworkError

        error = NetworkError("cannot connect to x:80: connection refused")
        return batch.Attempt(error=error, retry=True, retry_after=0.0, unreachable=True)

    outcome, sink, _ = execute(plan(10, concurrency=2, retries=1), Client(behave))
    assert outcome.exit_code == 8 and sink.lines == []
    assert outcome.stats.stopped == "fatal" and outcome.stats.not_written == 10


def test_a_403_is_a_line_failure_but_401_stops() -> None:
    async def forbidden(prompt: str) -> batch.Attempt:
        return batch.Attempt(error=AuthError("HTTP 403: no access", status=403))

    outcome, sink, _ = execute(plan(3), Client(forbidden))
    assert outcome.exit_code == 9 and len(sink.lines) == 3


def test_max_cost_counts_the_lines_in_flight() -> None:
    async def behave(prompt: str) -> batch.Attempt:
        await asyncio.sleep(0.01)
        return answer(prompt, cost=0.25)

    client = Client(behave)
    outcome, sink, _ = execute(plan(50, concurrency=8, max_cost=1.0), client)
    assert outcome.exit_code == 0
    assert len(sink.lines) == 4 and outcome.stats.cost == 1
    assert outcome.stats.stopped == "max-cost" and outcome.stats.not_written == 46
    assert client.max_in_flight <= 4


def test_max_cost_zero_starts_nothing() -> None:
    async def behave(prompt: str) -> batch.Attempt:
        return answer(prompt)

    client = Client(behave)
    outcome, sink, _ = execute(plan(3, max_cost=0.0), client)
    assert client.log == [] and sink.lines == [] and outcome.exit_code == 0
    assert outcome.stats.stopped == "max-cost" and outcome.stats.not_written == 3


# --- pure pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'"hi"', Line(5, 5, prompt="hi")),
        (b'{"id": "a", "prompt": "x", "seed": 3}', Line(5, "a", "x", overrides={"seed": 3})),
        (
            b'{"id": -2, "prompt": "x", "stop": "END"}',
            Line(5, -2, "x", overrides={"stop": ["END"]}),
        ),
        (b'{"prompt": "x", "system": "s"}', Line(5, 5, "x", system="s")),
    ],
)
def test_parse_line(raw: bytes, expected: Line) -> None:
    assert parse_line(5, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": []}',
        b'{"messages": [{"role": "system", "content": "only"}]}',
        b'{"messages": [{"role": "user", "content": 3}]}',
        b'{"messages": [{"role": "user", "content": "x", "tool_calls": []}]}',
        b'{"messages": [{"role": "user", "content": "x", "extra": 1}]}',
        b'{"id": "", "prompt": "x"}',
        b'{"prompt": "x", "model": ""}',
        b'{"prompt": "x", "model": 3}',
        b'{"prompt": "x", "system": 3}',
        b'{"prompt": "x", "max_tokens": 0}',
        b'   "unterminated',
        None,
    ],
)
def test_bad_lines(raw: bytes | None) -> None:
    item = parse_line(9, raw)
    assert isinstance(item, BadLine) and item.error.message.startswith("input line 9")


def test_bad_line_keeps_its_id_when_it_has_one() -> None:
    item = parse_line(4, b'{"id": "k", "prompt": ""}')
    assert isinstance(item, BadLine) and item.id == "k"
    line = json.loads(record(item.id, error=item.error))
    assert line == {
        "id": "k", "model": None, "content": None, "finish_reason": None, "tool_calls": [],
        "usage": None, "cost": None,
        "error": {"code": 2, "message": "input line 4: prompt must be a non-empty string"},
    }  # fmt: skip


def test_messages_with_tool_calls() -> None:
    raw = json.dumps(
        {
            "id": "t",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c1", "type": "function",
                                 "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "3 C"},
            ],
        }
    ).encode()  # fmt: skip
    item = parse_line(1, raw)
    assert isinstance(item, Line) and [m.role for m in item.messages] == [
        "user",
        "assistant",
        "tool",
    ]


def test_record_is_strict_json_on_one_line() -> None:
    content = "é\n\x85\u2028\u2029\x0b end"
    data = record("x", {"cost": float("nan"), "content": content}, UsageError("bad"))
    assert b"NaN" not in data and data.endswith(b"\n") and data.count(b"\n") == 1
    assert len(data.decode().splitlines()) == 1
    line = json.loads(data)
    assert line["cost"] is None and line["content"] == content


def test_event_clock_counts_only_complete_data_events() -> None:
    from llmost_cli.api.batch_client import _EventClock

    clock = _EventClock()
    assert not clock.feed(b": OPENROUTER PROCESSING\n\n")
    assert not clock.feed(b"da")
    assert not clock.feed(b'ta: {"x": 1}\n')
    assert clock.feed(b"\n")
    assert not clock.feed(b": keep-alive\r\n\r\n")
    assert clock.feed(b"data: [DONE]\r\n\r\n")


@pytest.mark.parametrize(
    ("n", "shown"), [(0, "0"), (950, "950"), (1234, "1.2k"), (15_300, "15k"), (1_234_567, "1.2M")]
)
def test_count(n: int, shown: str) -> None:
    assert batch.count(n) == shown


def test_summary() -> None:
    stats = batch.BatchStats(total=10, succeeded=6, failed=1, tokens=1_200_000, elapsed=7.06)
    stats.cost = batch.Decimal("0.42")
    stats.stopped = "max-cost"
    text = batch.summary(stats, 0.4, resumable=True)
    assert text == (
        "batch: 6 done, 1 failed, 1.2M tokens, $0.42, 7.1 s, "
        "3 not written (--max-cost 0.4 reached; --resume runs them)"
    )
    stats.unpriced = 2
    assert "$0.42 + 2 lines of unknown cost" in batch.summary(stats)


def test_progress_view_draws_on_a_terminal() -> None:
    from llmost_cli.ui.output import UI
    from llmost_cli.ui.progress import QuietView, batch_view

    err = io.StringIO()
    ui = UI(out=None, err=err, out_tty=False, err_tty=True)
    stats = batch.BatchStats(total=4, succeeded=2, failed=1, tokens=30)
    with batch_view(ui, 4) as view:
        view.update(stats)
        view.note("pausing all requests for 1.0 s (HTTP 429)")
        view.warn("careful")
    shown = err.getvalue()
    assert "pausing all requests" in shown and "warning: careful" in shown
    quiet = batch_view(UI(out=None, err=io.StringIO(), out_tty=False, err_tty=False), 4)
    assert isinstance(quiet, QuietView)
