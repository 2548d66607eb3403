"""The UI in-process, on fake terminals: nothing from the server drives the terminal.

A terminal here is a stream whose UI flag says "terminal" (rich then draws as it would on one);
what was written is replayed through the ``pyte`` terminal emulator where the screen matters.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from llmost_cli.core.events import ReasoningDelta, TextDelta, Usage
from llmost_cli.core.messages import Reply, ToolCall
from llmost_cli.core.models import Summary
from llmost_cli.errors import APIError
from llmost_cli.ui import tables
from llmost_cli.ui.output import UI, MarkdownWriter, PlainWriter, format_cost
from tests.terminal import screen_lines

WIDTH = 60
# What the server may send, and what a terminal must show for it instead.
HOSTILE = "A\x1b]52;c;cm0gLXJmIH4=\x07B\x1b]0;pwned\x07C\x1b[2J\x1b[31mD\x9b1mE\u202eF\rG\x08H"
SHOWN = "A␛]52;c;cm0gLXJmIH4=␇B␛]0;pwned␇C␛[2J␛[31mD\\x9b1mE\\u202eF␍G␈H"
MARKUP = "evil[/bold]model[link=https://x]y[/link]"
# the terminal's own sequences (rich's styles and cursor moves); anything else is a leak
OURS = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[[0-9]*[ACK]|\x1b\[2K|\r(?=\x1b\[2K)")


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setenv("LINES", "24")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


class Out(io.BytesIO):
    pass


def make_ui(*, out_tty: bool = True, err_tty: bool = True, no_color: bool = False) -> UI:
    return UI(out=Out(), err=io.StringIO(), out_tty=out_tty, err_tty=err_tty, no_color=no_color)


def stdout(ui: UI) -> str:
    assert isinstance(ui.out, io.BytesIO)
    return ui.out.getvalue().decode("utf-8")


def stderr(ui: UI) -> str:
    assert isinstance(ui.err, io.StringIO)
    return ui.err.getvalue()


def no_leak(data: str) -> None:
    """Only the terminal's own sequences: no ESC, C1 or bidi control of the server's."""
    rest = OURS.sub("", data)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", rest), rest


def screen(data: str, width: int = WIDTH) -> list[str]:
    lines, term = screen_lines(data, width, 24, newline_mode=True)
    assert term.title == ""  # no OSC 0/2 reached the emulator
    return lines


# --- stderr lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("err_tty", [True, False], ids=["terminal", "log file"])
@pytest.mark.parametrize(
    "say",
    [
        lambda ui, text: ui.error(APIError(f"HTTP 500: {text}")),
        lambda ui, text: ui.warn(f"model {text} said"),
        lambda ui, text: ui.note(f"retrying {text}"),
        lambda ui, text: ui.say(text),
        lambda ui, text: ui.detail(text),
        lambda ui, text: ui.rule(text),
    ],
    ids=["error", "warn", "note", "say", "detail", "rule"],
)
def test_stderr_lines_are_escaped_and_markup_is_text(
    say: Callable[[UI, str], None], err_tty: bool
) -> None:
    ui = make_ui(err_tty=err_tty)
    say(ui, f"{HOSTILE} {MARKUP}")
    data = stderr(ui)
    no_leak(data)
    plain = OURS.sub("", data)
    assert SHOWN in plain.replace("\n    ", "").replace("\n", "")
    assert MARKUP in plain.replace("\n    ", "").replace("\n", "")


def test_an_error_is_one_line_whatever_its_line_breaks() -> None:
    ui = make_ui(err_tty=False)
    ui.error(APIError("bad\r\nthings\nhappened\x0bhere\x85end"))
    assert stderr(ui) == "llmost: error: bad things happened␋here\\x85end\n"


def test_say_wraps_to_the_terminal_width() -> None:
    ui = make_ui()
    words = " ".join(f"word{n}" for n in range(40))
    ui.say(words + "\n  /help   list the commands")
    lines = screen(stderr(ui))
    assert all(len(line) <= WIDTH for line in lines)
    assert len(lines) > 4
    assert " ".join(lines[:-1]).split() == words.split()
    assert lines[-1] == "  /help   list the commands"
    piped = make_ui(err_tty=False)
    piped.say(words)
    assert stderr(piped) == words + "\n"  # a log file gets the text as it is


def test_detail_is_escaped_indented_and_whole() -> None:
    arguments = '{"path": "a   b", "cmd": "' + "x" * 150 + '\x1b[8m"}'
    ui = make_ui()
    ui.detail(f"stdin: {arguments}\nsecond line")
    lines = stderr(ui).splitlines()
    assert all(line.startswith("    ") and len(line) <= WIDTH for line in lines)
    assert "".join(line[4:] for line in lines[:-1]) == "stdin: " + arguments.replace("\x1b", "␛")
    assert lines[-1] == "    second line"
    piped = make_ui(err_tty=False)
    piped.detail("a\x07\nb")
    assert stderr(piped) == "    a␇\n    b\n"


# --- the answer -----------------------------------------------------------------------------


def run_writer(ui: UI, writer: Any, *events: Any, prefill: str = "") -> None:
    writer.start(prefill)
    for event in events:
        writer.event(event)
    writer.finish(Reply())


def test_plain_answer_on_a_terminal_is_escaped() -> None:
    ui = make_ui(err_tty=False)
    text = HOSTILE + " and\r\nmore\r"
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    run_writer(ui, ui.answer_writer(markdown=False), *map(TextDelta, pieces))
    assert stdout(ui) == SHOWN + " and\r\nmore␍\n"


def test_piped_answer_is_byte_exact() -> None:
    ui = make_ui(out_tty=False, err_tty=False)
    text = HOSTILE + MARKUP + "\r"
    run_writer(ui, ui.answer_writer(markdown=True), *map(TextDelta, [text[:5], text[5:]]))
    assert stdout(ui) == text + "\n"  # the user's explicit choice: exactly what came
    assert stderr(ui) == ""


def test_markdown_answer_on_a_terminal_is_escaped() -> None:
    ui = make_ui(err_tty=False)
    writer = ui.answer_writer(markdown=True)
    assert isinstance(writer, MarkdownWriter)
    text = f"# {HOSTILE}\n\n{MARKUP} &#x202e; &#27;\n\n```\n{HOSTILE}\n```\n\n- `{HOSTILE}`\n"
    run_writer(ui, writer, *(TextDelta(text[i : i + 4]) for i in range(0, len(text), 4)))
    data = stdout(ui)
    no_leak(data)
    shown = "\n".join(screen(data))
    assert shown.count("␛]52;c;cm0gLXJmIH4=␇") == 3
    assert MARKUP in shown and "\\u202e" in shown


@pytest.mark.parametrize("out_tty", [True, False], ids=["stdout terminal", "stdout piped"])
def test_reasoning_is_escaped_on_stderr_and_ends_its_line(out_tty: bool) -> None:
    ui = make_ui(out_tty=out_tty)
    writer = ui.answer_writer(markdown=False)
    run_writer(
        ui, writer, ReasoningDelta("think \x1b]0;t\x07"), ReasoningDelta("more"), TextDelta("ok")
    )
    data = stderr(ui)
    no_leak(data)
    assert screen(data) == ["think ␛]0;t␇more"]
    assert "\x1b[2m" in data  # dimmed
    assert stdout(ui) == "ok\n"


def test_reasoning_is_not_shown_when_stderr_is_not_a_terminal() -> None:
    ui = make_ui(out_tty=False, err_tty=False)
    run_writer(ui, ui.answer_writer(markdown=False), ReasoningDelta("secret"), TextDelta("ok"))
    assert stderr(ui) == ""
    assert stdout(ui) == "ok\n"


def test_reasoning_before_a_markdown_answer() -> None:
    ui = make_ui()
    writer = ui.answer_writer(markdown=True)
    run_writer(ui, writer, ReasoningDelta("hmm\x07"), TextDelta("**yes**"), ReasoningDelta("late"))
    assert screen(stderr(ui)) == ["hmm␇"]
    assert screen(stdout(ui)) == ["yes"]


def test_tool_call_lines_are_escaped_on_a_terminal_only() -> None:
    call = ToolCall(id="c1", name="run\x1b[2J", arguments='{"a": "\u202e\x9b"}')
    ui = make_ui()
    ui.tool_calls([call])
    assert (
        stdout(ui) == '{"id": "c1", "name": "run\\u001b[2J", "arguments": {"a": "\\u202e\\x9b"}}\n'
    )
    no_leak(stdout(ui))
    piped = make_ui(out_tty=False)
    piped.tool_calls([call])
    assert piped.out.getvalue() == (  # type: ignore[union-attr]
        '{"id": "c1", "name": "run\\u001b[2J", "arguments": {"a": "\u202e\x9b"}}\n'.encode()
    )


def test_json_is_escaped_on_a_terminal_and_exact_when_piped() -> None:
    obj = {"id": "m\u2066x\x85"}
    ui = make_ui()
    ui.json(obj)
    assert stdout(ui) == '{"id": "m\\u2066x\\x85"}\n'
    piped = make_ui(out_tty=False)
    piped.json(obj)
    assert stdout(piped) == '{"id": "m\u2066x\x85"}\n'


# --- spinner --------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_spinner_when_stdout_is_piped_but_stderr_is_a_terminal() -> None:
    ui = make_ui(out_tty=False)
    writer = ui.answer_writer(markdown=True)
    assert isinstance(writer, PlainWriter)
    writer.start("")
    wait_for(lambda: "waiting for the model" in stderr(ui))
    ui.note("retrying in 2 s (HTTP 503, 1/3)")  # clears the spinner's line first
    writer.event(TextDelta("answer"))
    writer.finish(Reply())
    assert stdout(ui) == "answer\n"
    assert screen(stderr(ui)) == ["llmost: retrying in 2 s (HTTP 503, 1/3)"]  # no trace
    assert stderr(ui).rfind("\x1b[?25h") > stderr(ui).rfind("\x1b[?25l")


@pytest.mark.parametrize("out_tty", [True, False])
def test_no_spinner_on_a_stderr_that_is_not_a_terminal(out_tty: bool) -> None:
    ui = make_ui(out_tty=out_tty, err_tty=False)
    writer = ui.answer_writer(markdown=False)
    writer.start("")
    time.sleep(0.3)
    writer.event(TextDelta("answer"))
    writer.finish(Reply())
    assert stderr(ui) == ""


# --- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "shown"),
    [
        (None, "tokens: 10 prompt + 0 completion = 10 total"),  # unknown: no cost at all
        (0.0, "tokens: 10 prompt + 0 completion = 10 total, cost $0"),  # genuinely free
        (0.25, "tokens: 10 prompt + 0 completion = 10 total, cost $0.25"),
        (4e-7, "tokens: 10 prompt + 0 completion = 10 total, cost $0.0000004"),
        (1.234e-9, "tokens: 10 prompt + 0 completion = 10 total, cost $0.0000000012"),
    ],
)
def test_usage_never_shows_zero_for_an_unknown_or_tiny_cost(cost: float | None, shown: str) -> None:
    ui = make_ui(err_tty=False)
    ui.usage(Usage(prompt_tokens=10, completion_tokens=0, total_tokens=10), cost)
    assert stderr(ui) == f"llmost: {shown}\n"


@pytest.mark.parametrize("cost", [1e-7, 3e-12, 1e-40, 0.0049, 12.5])
def test_format_cost_keeps_two_significant_digits(cost: float) -> None:
    text = format_cost(cost)
    assert text != "$0"
    assert abs(float(text[1:]) - cost) <= cost * 0.05


# --- tables ---------------------------------------------------------------------------------


def summary(model_id: str, **kw: Any) -> Summary:
    base: dict[str, Any] = {
        "name": None,
        "context_length": None,
        "prompt_per_m": None,
        "completion_per_m": None,
        "input_modalities": None,
    }
    return Summary(id=model_id, **(base | kw))


def test_models_table_shows_hostile_ids_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    ui = make_ui()
    free = {"prompt_per_m": Decimal(0), "completion_per_m": Decimal(0)}
    link = "vendor/\x1b]8;;https://evil\x1b\\id\x1b]8;;\x1b\\"
    rows = [
        summary(MARKUP, context_length=8192, **free),
        summary(link, input_modalities=["te\u202ext"]),
        summary("[/]"),
    ]
    tables.models_table(ui, rows)
    data = stdout(ui)
    no_leak(data)
    lines = screen(data, 120)
    assert lines[0].split() == ["ID", "CONTEXT", "PROMPT", "COMPLETION", "INPUT"]
    shown = "\n".join(lines)
    assert MARKUP in shown.replace("\n", "")
    assert "vendor/␛]8;;https://evil␛\\id␛]8;;␛\\" in shown.replace("\n", "")
    assert "te\\u202ext" in shown and "[/]" in shown
    assert "3 models; prices per million tokens" in shown
    assert not [line for line in OURS.sub("", data).split("\n") if line.endswith(" ")]


def test_models_table_folds_a_long_id_and_drops_input_first() -> None:
    ui = make_ui()
    long_id = "org/" + "x" * 100
    tables.models_table(ui, [summary(long_id, input_modalities=["text"]), summary("a/b")])
    lines = screen(stdout(ui))
    assert "INPUT" not in lines[0]
    assert all(len(line) <= WIDTH for line in lines)
    assert "".join(line.split()[0] for line in lines[2:-2]) == long_id  # folded, whole


def test_model_detail_shows_markup_and_escapes_literally() -> None:
    ui = make_ui()
    fields = [
        ("id", MARKUP),
        ("name", HOSTILE),
        ("created", "1e+20"),
        ("architecture.tokenizer", "-"),
    ]
    tables.model_detail(ui, fields, f"A [bold]description[/] {HOSTILE}\n\nSecond paragraph.")
    data = stdout(ui)
    no_leak(data)
    lines = screen(data)
    assert lines[0].split() == ["id", "evil[/bold]model[link=https://x]y[/l"]  # folded
    assert lines[1].split() == ["ink]"]
    assert "".join(lines).replace(" ", "").count(SHOWN.replace(" ", "")) == 2
    assert lines[-1] == "Second paragraph."
    assert lines[lines.index("") + 1] == "A [bold]description[/]"
    assert not [line for line in OURS.sub("", data).split("\n") if line.endswith(" ")]


def test_models_table_does_per_row_work_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts work, not time: rich's generic layout (measuring and rendering every cell, about
    2 ms a model) made 100,000 models take minutes. Rows are now written directly; rich's
    measuring and line-rendering machinery runs a fixed number of times, whatever the count."""
    from rich.console import Console
    from rich.measure import Measurement

    calls = {"measure": 0, "render_lines": 0}
    measure, render_lines = Measurement.get, Console.render_lines

    def counting_measure(*args: Any, **kwargs: Any) -> Any:
        calls["measure"] += 1
        return measure(*args, **kwargs)

    def counting_render_lines(self: Console, *args: Any, **kwargs: Any) -> Any:
        calls["render_lines"] += 1
        return render_lines(self, *args, **kwargs)

    monkeypatch.setattr(Measurement, "get", staticmethod(counting_measure))
    monkeypatch.setattr(Console, "render_lines", counting_render_lines)
    for n in (10, 2_000):
        rows = [
            summary(f"vendor{i % 50}/model-{i}", context_length=1000 + i,
                    prompt_per_m=Decimal("1.5"), completion_per_m=Decimal(0),
                    input_modalities=["text", "image"])
            for i in range(n)
        ]  # fmt: skip
        ui = make_ui()
        tables.models_table(ui, rows)
        assert stdout(ui).count("\n") == n + 3
        assert calls == {"measure": 0, "render_lines": 0}, n
