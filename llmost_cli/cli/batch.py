"""``llmost batch``: many prompts from a JSONL file, answered concurrently."""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Any

from llmost_cli.cli import services

if TYPE_CHECKING:
    from llmost_cli.api.batch_client import BatchHTTPClient
    from llmost_cli.cli.state import State
    from llmost_cli.core.batch import Recorder
    from llmost_cli.core.batch_output import Sink
    from llmost_cli.core.batch_plan import BatchOptions, Plan
    from llmost_cli.core.messages import Reply
    from llmost_cli.core.turn import Turn
    from llmost_cli.store.store import Store

BATCH_HELP = """Answer many prompts from a JSONL file, concurrently: one JSON line out per line in.

INPUT ('-' = stdin) holds one JSON value a line: {"id": ..., "prompt": ...}, {"id": ...,
"messages": [...]}, or a bare string (its id is its line number). A line may also set model,
system and sampling parameters. Every line is checked before anything is sent: a malformed
line or a duplicate id is exit 2. Standard input is first copied to a temporary file (it is
read twice).

Each output line is {"id", "model", "content", "finish_reason", "tool_calls", "usage",
"cost", "error"}, written whole as it completes (in input order with --ordered). Exit 0 when
every line succeeded, 9 when some failed (the error is in the line). 429s and 5xx pause every
request together, then each line is retried (--retries). --max-cost stops starting lines once
the spent cost, with the expected cost of the lines in flight, reaches USD: lines not started
are not written (exit 0, with a warning); --resume runs them later. Ctrl-C writes what
finished, then exits 130.

\b
Examples:
  llmost batch prompts.jsonl -o answers.jsonl
  llmost batch prompts.jsonl -o answers.jsonl --resume     # after Ctrl-C or a crash
  jq -c '{id, prompt: .text}' data.jsonl | llmost batch - --concurrency 32 > out.jsonl
  llmost batch reviews.jsonl --schema 'label, score float' --rpm 500 --max-cost 2.50
"""


def batch(state: State, values: dict[str, Any]) -> int:
    """Run ``batch`` with the values of its options (cli/flags.py)."""
    from llmost_cli.core.batch_plan import BatchOptions

    given = {k: v for k, v in values.items() if v is not None}
    given["output"] = given.pop("batch_output", None)  # -o names a file here, not a format
    given["input"] = given.pop("input_file")
    return run_batch(state, BatchOptions.build(given))


def run_batch(state: State, opts: BatchOptions) -> int:
    """Check everything, run, print the summary; the exit code by DESIGN §5."""
    from llmost_cli.core import batch as core
    from llmost_cli.core.batch_output import FileSink, StreamSink
    from llmost_cli.core.batch_plan import prepare
    from llmost_cli.ui.progress import batch_view

    ui = state.ui
    settings = services.settings_for(state, opts.overrides())
    plan = prepare(opts, settings, state.env.stdin)
    with ExitStack() as stack:
        stack.callback(plan.source.close)
        key = services.api_key(settings)
        sink: Sink = StreamSink(state.env.stdout)
        if opts.output:
            sink = FileSink(opts.output, plan.previous.truncate_to)
            stack.callback(sink.close)
            _report_torn(state, plan)
        recorder = _recorder(state, stack.enter_context(_store(state, opts.store)))
        view = stack.enter_context(batch_view(ui, plan.total))
        outcome = core.execute(plan, lambda: _client(state, plan, key), sink, view, recorder)
    ui.note(core.summary(outcome.stats, opts.max_cost, resumable=bool(opts.output)))
    if outcome.stats.stopped == "max-cost":
        ui.warn(f"--max-cost reached: {outcome.stats.not_written} lines were not started")
    if outcome.error is not None:
        raise outcome.error
    return outcome.exit_code


def _client(state: State, plan: Plan, key: str | None) -> BatchHTTPClient:
    from llmost_cli.api.batch_client import BatchHTTPClient

    s = plan.settings
    return BatchHTTPClient(
        s.base_url,
        key,
        timeout=s.timeout,
        concurrency=plan.opts.concurrency,
        log=services.debug_log(state),
    )


def _store(state: State, enabled: bool) -> AbstractContextManager[Store | None]:
    return services.store_for(state, continue_=enabled, session=None, enabled=enabled)


def _recorder(state: State, store: Store | None) -> Recorder | None:
    """--store: each answered line becomes a conversation (question and answer)."""
    if store is None:
        return None
    from llmost_cli.core.messages import Thread

    def record(turn: Turn, reply: Reply) -> str | None:
        messages = [*turn.history, *turn.new, reply.to_message()]
        recorder = services.StoreRecorder(
            store, Thread(), model=lambda: turn.settings.model, warn=state.ui.warn
        )
        return recorder.record(messages)

    return record


def _report_torn(state: State, plan: Plan) -> None:
    if plan.previous.truncate_to is not None:
        state.ui.note(
            f"--resume: removed a torn last line ({plan.previous.torn_bytes} bytes) from OUTPUT"
        )
