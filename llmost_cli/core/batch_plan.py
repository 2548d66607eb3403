"""``batch``, before anything is sent: the options, and the plan that ``prepare`` makes by
reading INPUT once and checking every line and every id (core/batch.py runs it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from llmost_cli.core import inputs
from llmost_cli.core.batch_input import BadLine, InputFile, Line, id_key
from llmost_cli.core.batch_output import Previous, check_new_output, read_previous
from llmost_cli.core.messages import Message
from llmost_cli.core.request import TurnOptions, json_schema_spec, load_tools_file
from llmost_cli.core.settings import Settings
from llmost_cli.core.turn import Turn, compose
from llmost_cli.errors import UsageError

MAX_CONCURRENCY = 1024


@dataclass
class BatchOptions(TurnOptions):
    input: str = "-"
    output: str | None = None
    concurrency: int = 8
    rpm: float | None = None
    resume: bool = False
    max_cost: float | None = None
    skip_invalid: bool = False
    ordered: bool = False
    store: bool = False

    def check(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency must be in [1, {MAX_CONCURRENCY}]")
        if self.rpm is not None and not (0 < self.rpm < float("inf")):
            raise UsageError("--rpm must be a number greater than 0")
        if self.max_cost is not None and not (0 <= self.max_cost < float("inf")):
            raise UsageError("--max-cost must be a number >= 0 (US dollars)")
        if self.resume and not self.output:
            raise UsageError("--resume needs -o OUTPUT: the file whose lines are skipped")


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """A batch, checked: the options, the input (re-read when run) and what OUTPUT holds."""

    opts: BatchOptions
    settings: Settings
    system: str | None
    offered: tuple[dict[str, Any], ...]
    source: InputFile
    previous: Previous
    total: int = 0  # lines to run (not already in OUTPUT)
    resumed: int = 0  # lines skipped: already in OUTPUT

    def turn(self, line: Line) -> Turn:
        """The line's checked turn: its overrides over the run's settings."""
        settings = self.settings
        if line.overrides:
            settings = settings.with_values(source=f"input line {line.lineno}", **line.overrides)
        has_system = any(m.role == "system" for m in line.messages)
        system = line.system or (None if has_system else self.system)
        user = Message(role="user", content=line.prompt) if line.prompt is not None else None
        return compose(
            settings,
            self.opts,
            line.messages,
            system=system,
            user=user,
            prefill=self.opts.prefill or "",
            offered=self.offered,
        )

    def items(self) -> Iterator[tuple[Line | BadLine, Turn | None]]:
        """The lines to run, in input order (ids already in OUTPUT left out), with their
        turns (None for a line that cannot run)."""
        for item in self.source.lines():
            if id_key(item.id) not in self.previous.ids:
                yield self.checked(item)

    def checked(self, item: Line | BadLine) -> tuple[Line | BadLine, Turn | None]:
        if isinstance(item, BadLine):
            return item, None
        try:
            return item, self.turn(item)
        except UsageError as exc:
            return BadLine(item.lineno, item.id, exc), None


def prepare(opts: BatchOptions, settings: Settings, stdin: Any) -> Plan:
    """Check the options, OUTPUT and every line of INPUT; nothing is sent or written."""
    opts.check()
    if opts.schema:  # read the file once, not once per line
        opts = replace(opts, schema=json.dumps(json_schema_spec(opts.schema)))
    system = inputs.read_text_arg(settings.system, "--system") if settings.system else None
    offered = tuple(load_tools_file(opts.tools)) if opts.tools else ()
    probe = Message(role="user", content="?")
    compose(settings, opts, [], system=system, user=probe, prefill=opts.prefill or "")
    if opts.output and opts.input != "-" and _same_file(opts.input, opts.output):
        raise UsageError("OUTPUT is the INPUT file", hint="give another -o OUTPUT")
    previous = Previous()
    if opts.output and opts.resume:
        previous = read_previous(opts.output)
    elif opts.output:
        check_new_output(opts.output)
    source = InputFile(opts.input, stdin)
    plan = Plan(opts, settings, system, offered, source, previous)
    try:
        _scan(plan)
    except BaseException:
        source.close()
        raise
    return plan


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _scan(plan: Plan) -> None:
    """The first pass: count the lines, find malformed lines and duplicate ids."""
    seen: set[int] = set()
    clashes: list[tuple[int, str]] = []
    first_bad: BadLine | None = None
    bad = 0
    for item in plan.source.lines():
        key = id_key(item.id)
        if key in seen:
            clashes.append((item.lineno, json.dumps(item.id, ensure_ascii=False)))
        seen.add(key)
        if key in plan.previous.ids:
            plan.resumed += 1
            continue
        plan.total += 1
        item, _ = plan.checked(item)
        if isinstance(item, BadLine):
            bad += 1
            first_bad = first_bad or item
    if clashes:
        _duplicates(plan.source, clashes)
    if first_bad is not None and not plan.opts.skip_invalid:
        more = f" ({bad - 1} more malformed lines)" if bad > 1 else ""
        raise UsageError(
            f"{first_bad.error.message}{more}",
            hint="fix the line, or add --skip-invalid to record it as a failed line",
        )


def _duplicates(source: InputFile, clashes: list[tuple[int, str]]) -> None:
    """Name the first duplicate id and both its lines (a second, rare pass)."""
    for later, shown in clashes:
        for item in source.lines():
            if item.lineno >= later:
                break
            if json.dumps(item.id, ensure_ascii=False) == shown:
                raise UsageError(
                    f"input lines {item.lineno} and {later} have the same id {shown[:80]}",
                    hint="every line needs its own id (--resume finds lines by id)",
                )
    # only a 64-bit hash collision gets here: the ids differ, nothing to report
