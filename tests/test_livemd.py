"""Live markdown: the streamed rendering must equal rendering the whole answer at once.

The oracle is rich itself: ``Console.print(Markdown(full_text))`` with the same console
settings.  Two comparisons:

* on a console that is not a terminal (but has colours) only committed blocks are written, so
  the bytes must equal the whole render's bytes exactly, ANSI styles included;
* on a terminal, the bytes (live frames, cursor movements, erasures) are fed to the ``pyte``
  terminal emulator, and the final screen plus scrollback must read like the whole render's.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from markdown_it.parser_block import ParserBlock
from rich.console import Console

from llmost_cli.ui import mdrender
from llmost_cli.ui.livemd import BlockSplitter, LiveMarkdown, Spinner
from llmost_cli.ui.mdrender import print_markdown
from tests.conftest import untraced
from tests.terminal import ScrollbackScreen, all_lines, screen_lines, xterm_resize

CORPUS = sorted((Path(__file__).parent / "data" / "md_corpus").glob("*.md"))

# Tests that repeat, at size or many times over, paths the example tests cover run without the
# coverage tracer (``no_cover``), which would double their time and measure nothing new.
# A few cases of each stay measured.
stress = pytest.mark.no_cover
MEASURED = {"01_python_async", "04_tables", "12_edge_cases"}


def measured_unless(path: Path, how: str) -> tuple[pytest.MarkDecorator, ...]:
    return () if path.stem in MEASURED and how != "chars" else (stress,)


WIDTH, HEIGHT = 80, 24


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def make_console(*, terminal: bool = True, width: int = WIDTH, height: int = HEIGHT) -> Console:
    return Console(
        file=io.StringIO(),
        force_terminal=terminal,
        color_system="truecolor",
        width=width,
        height=height,
        legacy_windows=False,
    )


def output(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    # rich gives every hyperlink a random id
    return re.sub(r"\x1b\]8;id=[^;]*;", "\x1b]8;id=;", file.getvalue())


def whole_render(text: str, *, terminal: bool = True) -> str:
    console = make_console(terminal=terminal)
    print_markdown(console, text)
    return output(console)


def chunked(text: str, how: str) -> list[str]:
    if how == "whole":
        return [text]
    if how == "chars":
        return list(text)
    rnd = random.Random(20240607)
    chunks, pos = [], 0
    while pos < len(text):
        size = rnd.randint(1, 40)
        chunks.append(text[pos : pos + size])
        pos += size
    return chunks


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stream(
    text: str,
    console: Console,
    how: str,
    *,
    seconds_per_chunk: float = 0.05,
    between: Callable[[int], None] | None = None,
) -> None:
    clock = FakeClock()
    with LiveMarkdown(console, clock=clock, auto_refresh=False) as live:
        for index, chunk in enumerate(chunked(text, how)):
            live.feed(chunk)
            clock.now += seconds_per_chunk
            if between is not None:
                between(index)


def screen(data: str, width: int = WIDTH, height: int = HEIGHT) -> tuple[list[str], pyte.Screen]:
    """Final scrollback + screen text of a terminal that received ``data``."""
    return screen_lines(data, width, height, newline_mode=True)  # the tty's "\n" is "\r\n"


# --- the block splitter (pure) ---


def split_all(text: str, chunks: list[str]) -> list[str]:
    splitter = BlockSplitter()
    blocks: list[str] = []
    for chunk in chunks:
        blocks += splitter.feed(chunk)
    return [*blocks, splitter.close()]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_splitter_pieces_add_up_to_the_input(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    blocks = split_all(text, [text])
    assert "".join(blocks) == text
    assert len(blocks) > 1
    # decisions are taken on complete lines, so the chunking does not matter
    assert split_all(text, chunked(text, "chars")) == blocks
    assert split_all(text, chunked(text, "random")) == blocks


def test_unclosed_fence_stays_in_the_tail() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("Intro.\n\n```python\nx = 1\n\n\ny = 2\n# not a heading\n") == [
        "Intro.\n\n"
    ]
    assert splitter.tail.startswith("```python\n")
    assert splitter.feed("```\n\nAfter.\n") == [
        "```python\nx = 1\n\n\ny = 2\n# not a heading\n```\n\n"
    ]


def test_a_list_is_committed_whole_once_it_is_finished() -> None:
    items = "".join(f"{n}. item {n}\n\n   more about {n}\n\n" for n in range(1, 16))
    splitter = BlockSplitter()
    assert splitter.feed("Steps:\n\n" + items) == ["Steps:\n\n"]
    # one chunk per top-level block ("   more about 10" is a paragraph after "10. item 10")
    assert "".join(splitter.feed("- a bullet list is another list\n")) == items


def test_tables_setext_headings_and_html_are_not_cut() -> None:
    text = (
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "Title\n=====\n\n"
        "<!-- a comment\n\nwith a blank line -->\n\n"
        "    code\n\n    more code\n\n"
        "end\n"
    )
    blocks = split_all(text, list(text))
    assert blocks == [
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
        "Title\n=====\n\n",
        "<!-- a comment\n\nwith a blank line -->\n\n",
        "    code\n\n    more code\n\n",
        "end\n",
    ]


def test_line_endings_are_normalised_across_chunks() -> None:
    assert split_all("a\r\n\r\nb\rc", ["a\r", "\n\r", "\nb\r", "c"]) == ["a\n\n", "b\nc"]


def test_preview_of_a_long_block_is_a_bounded_suffix() -> None:
    splitter = BlockSplitter()
    splitter.feed("```python\n" + "".join(f"x = {n}\n" for n in range(500)))
    preview = splitter.preview(10)
    assert preview.startswith("```python\n") and preview.endswith("x = 499\n")
    assert preview.count("\n") == 11
    splitter = BlockSplitter()
    splitter.feed("".join(f"{n}. item\n   detail\n" for n in range(1, 300)))
    preview = splitter.preview(10)
    assert preview.startswith("295. item\n") and preview.count("\n") == 10
    splitter = BlockSplitter()
    splitter.feed("| a | b |\n|---|---|\n" + "".join(f"| {n} | x |\n" for n in range(500)))
    assert splitter.preview(10).startswith("| a | b |\n|---|---|\n| 490 | x |\n")


def test_splitter_parses_only_a_bounded_window(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    original = ParserBlock.parse

    def counting(self: ParserBlock, src: str, *args: object, **kwargs: object) -> object:
        parsed.append(len(src))
        return original(self, src, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ParserBlock, "parse", counting)
    # a few kinds of blocks are enough: the ratio, not the size, tells linear from quadratic
    base = "".join(p.read_text(encoding="utf-8") + "\n\n" for p in CORPUS[:3])
    cost = {}
    for copies in (1, 4):
        parsed.clear()
        text = base * copies
        split_all(text, chunked(text, "chars"))
        cost[copies] = sum(parsed)
    assert cost[4] <= 4 * cost[1] * 1.1
    assert cost[1] <= 3 * len(base)


# Random documents built from lines that end, continue or interrupt blocks.
LINES = [
    "", "", "", "text line", "more *text* with `code`", "# Heading", "## Sub", "===", "---",
    "***", "- item", "- item two", "* star", "+ plus", "1. one", "2. two", "10) ten", "  nested",
    "   - nested item", "    indented code", "\tx", "```", "```python", "~~~", "> quote",
    "> - quoted item", ">", "| a | b |", "|---|---|", "| 1 | 2 |", "a | b", "<div>", "</div>",
    "<!-- c", "-->", "[ref]: https://example.com", "see [ref]", "![img](i.png)", "2024 was",
    "- [ ] task", "Привет, мир", "漢字 wide",
]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.sampled_from(LINES), min_size=1, max_size=25),
    seed=st.integers(0, 2**16),
    final_newline=st.booleans(),
)
def test_random_documents_render_like_the_whole(
    lines: list[str], seed: int, final_newline: bool
) -> None:
    # a reference used before its definition is a known limit: that block is already printed
    # (a definition line can be a use too: the continuation of a paragraph or list item)
    definition = "[ref]: https://example.com"
    first_use = next((line for line in lines if "[ref]" in line), None)
    assume(definition not in lines or (lines.count(definition) == 1 and first_use == definition))
    text = "\n".join(lines) + ("\n" if final_newline else "")
    rnd = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(text):
        size = rnd.choice((1, 1, 2, 3, 7, 20))
        chunks.append(text[pos : pos + size])
        pos += size
    console = make_console(terminal=False)
    with LiveMarkdown(console, auto_refresh=False) as live:
        for chunk in chunks:
            live.feed(chunk)
    assert output(console) == whole_render(text, terminal=False)


# --- rendering equals the whole render ---


@pytest.mark.parametrize(
    ("path", "how"),
    [
        pytest.param(path, how, id=f"{path.stem}-{how}", marks=measured_unless(path, how))
        for path in CORPUS
        for how in ("whole", "chars", "random")
    ],
)
def test_committed_stream_is_byte_identical(path: Path, how: str) -> None:
    text = path.read_text(encoding="utf-8")
    console = make_console(terminal=False)
    stream(text, console, how)
    assert output(console) == whole_render(text, terminal=False)


# Every file in random chunks; a character at a time (a frame every ~17 characters) the files
# whose blocks differ most when cut anywhere: code, ordered and nested lists, tables, wrapped
# long lines, wide characters, an unclosed fence. Whole (one frame) the measured files; the
# committed output of every file in every way is compared above without a terminal.
CHARS = {"01_python_async", "02_ordered_steps", "04_tables", "08_long_lines", "09_russian"}
TERMINAL_CASES = [
    pytest.param(path, how, id=f"{path.stem}-{how}", marks=measured_unless(path, how))
    for path in CORPUS
    for how in ("whole", "chars", "random")
    if how == "random"
    or (how == "chars" and path.stem in CHARS | {"11_unclosed_fence"})
    or (how == "whole" and path.stem in MEASURED)
]


@pytest.mark.parametrize(("path", "how"), TERMINAL_CASES)
def test_terminal_shows_the_whole_render(path: Path, how: str) -> None:
    text = path.read_text(encoding="utf-8")
    console = make_console()
    # Many live redraws, some taller than the screen: a frame every ~17 characters fed one at a
    # time, or every ~2 random chunks (~20 for the long file). Every frame goes through the
    # pyte emulator, which is what costs here.
    seconds = {"chars": 0.005, "random": 0.05 if len(text) < 4000 else 0.004}.get(how, 0.05)
    stream(text, console, how, seconds_per_chunk=seconds)
    data = output(console)
    lines, term = screen(data)
    expected, _ = screen(whole_render(text))
    assert lines == expected
    assert "\x1b[?25l" in data or how == "whole"
    assert not term.cursor.hidden
    assert term.cursor.x == 0
    # the ANSI-stripped text of the live run ends with the whole text (frames come before)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x1b]*\x1b\\|\r", "", data)
    tail = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x1b]*\x1b\\|\r", "", whole_render(text))
    assert plain.endswith(tail.splitlines(keepends=True)[-1])


@stress
def test_resize_during_streaming_does_not_corrupt_the_screen() -> None:
    text = (CORPUS[0].read_text(encoding="utf-8") + "\n\n") * 2
    half = len(chunked(text, "random")) // 2

    def narrower(console: Console) -> Callable[[int], None]:
        def resize(index: int) -> None:
            if index == half:
                console.size = (60, 20)

        return resize

    # a frame per chunk: blocks finished before the resize are printed before it
    live_console, plain_console = make_console(), make_console(terminal=False)
    stream(text, live_console, "random", seconds_per_chunk=1, between=narrower(live_console))
    stream(text, plain_console, "random", seconds_per_chunk=1, between=narrower(plain_console))
    lines, _ = screen(output(live_console))
    expected, _ = screen(output(plain_console))
    assert lines == expected
    assert any(len(line) > 60 for line in lines)  # early blocks kept their width


def test_abort_prints_the_tail_as_it_stands() -> None:
    text = CORPUS[0].read_text(encoding="utf-8")
    cut = text.index("    for result in results:")  # inside an unclosed code block
    console = make_console()
    with pytest.raises(KeyboardInterrupt), LiveMarkdown(console, auto_refresh=False) as live:
        for chunk in chunked(text[:cut], "random"):
            live.feed(chunk)
        raise KeyboardInterrupt
    data = output(console)
    lines, term = screen(data)
    assert lines == screen(whole_render(text[:cut]))[0]
    assert data.endswith("\x1b[?25h")
    assert not term.cursor.hidden
    with pytest.raises(RuntimeError):
        live.feed("more")
    live.abort()  # idempotent
    live.finish()
    assert output(console) == data


def test_an_empty_answer_prints_nothing() -> None:
    console = make_console()
    with LiveMarkdown(console, auto_refresh=False):
        pass
    assert output(console) == ""


def test_not_a_terminal_gets_no_control_codes() -> None:
    text = CORPUS[1].read_text(encoding="utf-8")
    console = Console(file=io.StringIO(), width=WIDTH)
    assert not console.is_terminal
    stream(text, console, "random")
    data = output(console)
    assert "\x1b" not in data
    reference = Console(file=io.StringIO(), width=WIDTH)
    print_markdown(reference, text)
    assert data == output(reference)


def test_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    text = CORPUS[4].read_text(encoding="utf-8")  # code in several languages
    console = Console(file=io.StringIO(), force_terminal=True, width=WIDTH, height=HEIGHT)
    stream(text, console, "random")
    sgr = re.findall(r"\x1b\[([0-9;]*)m", output(console))
    assert sgr  # bold etc. remain
    colours = [p for s in sgr for p in s.split(";") if p and (30 <= int(p) <= 49 or int(p) >= 90)]
    assert colours == []


# --- cost: linear in the answer, frames rate-limited ---


class MarkdownSpy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        sizes = self.sizes

        class Counting(mdrender.AnswerMarkdown):
            def __init__(self, markup: str, *args: object, **kwargs: object) -> None:
                sizes.append(len(markup))
                super().__init__(markup, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(mdrender, "AnswerMarkdown", Counting)


@stress
def test_render_cost_is_linear_even_with_a_frame_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = MarkdownSpy(monkeypatch)
    # a few kinds of blocks are enough: the ratio, not the size, tells linear from quadratic
    base = "".join(p.read_text(encoding="utf-8") + "\n\n" for p in CORPUS[:3])
    cost = {}
    for copies in (1, 2):
        spy.sizes.clear()
        text = base * copies
        # every feed is a frame: the worst case for a renderer that redraws everything
        stream(text, make_console(), "random", seconds_per_chunk=1.0)
        cost[copies] = sum(spy.sizes)
    # re-rendering the whole answer per chunk would make this ratio about 4
    assert cost[2] <= 2 * cost[1] * 1.15
    # frames render a bounded suffix: a whole re-render per chunk would be ~700 x len(base)
    assert cost[1] <= 100 * len(base)


@stress
def test_frames_of_a_long_block_render_a_bounded_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = MarkdownSpy(monkeypatch)
    items = "".join(f"- item {n}\n  more about item {n}\n" for n in range(120))
    console = make_console()
    clock = FakeClock()
    live = LiveMarkdown(console, clock=clock, auto_refresh=False)
    for chunk in chunked(items, "random"):
        live.feed(chunk)
        clock.now += 1.0
    assert len(spy.sizes) > 120
    assert max(spy.sizes) < 40 * (HEIGHT + 3)
    live.finish()
    assert spy.sizes[-1] >= len(items)


def test_a_code_block_streams_line_by_line_without_rendering_markdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = MarkdownSpy(monkeypatch)
    code = "```python\n" + "".join(f"value_{n} = compute({n})\n" for n in range(200))
    console = make_console()
    clock = FakeClock()
    live = LiveMarkdown(console, clock=clock, auto_refresh=False)
    for chunk in chunked(code, "random"):
        live.feed(chunk)
        clock.now += 1.0
        # every complete line is printed for good; the live region holds the incomplete one
        assert live._height <= 1
    assert spy.sizes == []  # no frame re-renders the block
    live.finish()
    assert spy.sizes in ([], [0])
    lines, _ = screen(output(console))
    assert lines == screen(whole_render(code + "```\n"))[0]


def test_frames_are_rate_limited_by_time_not_by_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = MarkdownSpy(monkeypatch)
    clock = FakeClock()
    live = LiveMarkdown(make_console(), clock=clock, max_fps=10, auto_refresh=False)
    for _ in range(200):
        live.feed("word ")
    assert len(spy.sizes) == 1  # the first chunk is drawn at once, then nothing is due
    clock.now += 0.05
    live.feed("word\n\nnext paragraph\n")
    assert len(spy.sizes) == 1
    clock.now += 0.06
    live.feed("more")
    assert len(spy.sizes) == 3  # the finished paragraph, and the tail
    live.finish()


def test_auto_refresh_draws_text_that_arrived_between_frames() -> None:
    console = make_console()
    live = LiveMarkdown(console, max_fps=20)
    try:
        live.feed("Hello, ")
        live.feed("world")  # within the same frame interval: not drawn by feed()
        deadline = time.monotonic() + 5
        while "world" not in output(console) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "world" in output(console)
    finally:
        live.finish()


def test_importing_the_module_does_not_import_rich() -> None:
    code = (
        "import sys, llmost_cli.ui.livemd\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('rich', 'markdown_it', 'pygments')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- spinner ---


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_spinner_leaves_no_trace() -> None:
    console = make_console()
    console.print("previous output")
    spinner = Spinner(console, "waiting…")
    spinner.start()
    spinner.start()
    wait_for(lambda: "waiting…" in output(console))
    spinner.stop()
    spinner.stop()
    lines, term = screen(output(console))
    assert lines == ["previous output"]
    assert (term.cursor.x, term.cursor.y) == (0, 1)
    assert not term.cursor.hidden


def test_spinner_is_silent_when_not_a_terminal() -> None:
    console = Console(file=io.StringIO(), width=WIDTH)
    spinner = Spinner(console)
    spinner.start()
    time.sleep(0.2)
    spinner.stop()
    assert output(console) == ""


@pytest.fixture
def _no_threads_left() -> Iterator[None]:
    yield
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("llmost-")]


@pytest.mark.usefixtures("_no_threads_left")
def test_threads_stop_with_the_renderer() -> None:
    live = LiveMarkdown(make_console())
    live.feed("x")
    spinner = Spinner(make_console())
    spinner.start()
    spinner.stop()
    live.finish()


# --- what the model sends never drives the terminal; how answers read -----------------------

HOSTILE = (
    "A\x1b]52;c;cm0gLXJmIH4=\x07B\x1b]0;pwned\x07C\x1b[2J\x1b[31mD\x9b1mE\u202eF\x0bG\x08H"
    "\x1bP+q\x1b\\I\x1b]8;;https://evil.example\x1b\\J"
)
# (a carriage return is a line ending in markdown: it breaks the line, it never returns)
SHOWN = (
    "A␛]52;c;cm0gLXJmIH4=␇B␛]0;pwned␇C␛[2J␛[31mD\\x9b1mE\\u202eF␋G␈H"
    "␛P+q␛\\I␛]8;;https://evil.example␛\\J"
)
# rich's own sequences: styles, cursor hide/show, up, erase line (and "erase to end of line")
OURS = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[[0-9]*[ACK]|\x1b\[2K|\r")


def no_leak(data: str) -> None:
    rest = OURS.sub("", data)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", rest), rest


@pytest.mark.parametrize("how", ["whole", "random"])
def test_model_text_is_escaped_everywhere_in_markdown(how: str) -> None:
    text = (
        f"# Title {HOSTILE}\n\nA paragraph {HOSTILE} with `code {HOSTILE}` and "
        f"[a link](https://example.com/{HOSTILE}) and &#x202e;&#x9b;&#27; references.\n\n"
        f"```python\nx = '{HOSTILE}'\n```\n\n    indented {HOSTILE}\n\n"
        f"| a | b |\n|---|---|\n| {HOSTILE} | 2 |\n\n- item {HOSTILE}\n\n> quote {HOSTILE}\n\n"
        f"![alt {HOSTILE}](http://x/{HOSTILE}.png)\n"
    )
    console = make_console(width=200)
    stream(text, console, how, seconds_per_chunk=1.0)
    data = output(console)
    no_leak(data)
    assert "\x1b]" not in data and "\x1bP" not in data  # no OSC (title, clipboard, link), DCS
    lines, term = screen(data, width=200, height=60)
    assert term.title == "" and term.icon_name == ""
    shown = "\n".join(lines)
    assert shown.count(SHOWN) >= 8  # heading, paragraph, code, fence, indented, cell, item, quote
    assert "and \\u202e\ufffd\ufffd references" in shown  # character references too
    whole = make_console(width=200)
    print_markdown(whole, text)
    no_leak(output(whole))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("see [the docs](https://example.com/docs)", "see the docs (https://example.com/docs)"),
        ("<https://example.com/x>", "https://example.com/x"),  # the text is the URL: once
        ("[https://example.com/y](https://example.com/y)", "https://example.com/y"),
        (
            "[https://bank.example](https://evil.example)",
            "https://bank.example (https://evil.example)",
        ),
        ("mail <a@b.example>", "mail a@b.example"),
        ("[**bold** link](http://x.example/)", "bold link (http://x.example/)"),
        ("[ref link][r]\n\n[r]: https://ref.example", "ref link (https://ref.example)"),
    ],
)
def test_links_show_where_they_go(source: str, expected: str) -> None:
    for how in ("whole", "chars"):
        console = make_console()
        stream(source + "\n", console, how)
        data = output(console)
        assert "\x1b]8;" not in data  # no OSC 8 hyperlink: what is shown is what it opens
        assert screen(data)[0][0] == expected


@pytest.mark.parametrize("how", ["whole", "chars", "random"])
def test_a_single_newline_is_a_line_break(how: str) -> None:
    text = (
        "Roses are red,\nviolets are blue.\n\n"
        "221B Baker Street\nLondon\n\n"
        "- step one\n  still step one\n- step two\n\n"
        "> quoted\n> lines\n"
    )
    expected = [
        "Roses are red,",
        "violets are blue.",
        "",
        "221B Baker Street",
        "London",
        "",
        " • step one",
        "   still step one",
        " • step two",
        "",
        "▌ quoted",
        "▌ lines",
    ]
    console = make_console()
    stream(text, console, how)
    assert screen(output(console))[0] == expected
    assert screen(whole_render(text))[0] == expected
    plain = make_console(terminal=False)
    stream(text, plain, how)
    assert output(plain) == whole_render(text, terminal=False)


def trailing_spaces(data: str) -> list[str]:
    """Lines that end in spaces once the terminal's own sequences are left out."""
    plain = OURS.sub("", data.replace("\x1b[1A", "\n"))
    return [line for line in plain.split("\n") if line.endswith(" ")]


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=measured_unless(p, "random")) for p in CORPUS[:6]],
    ids=lambda p: p.stem,
)
def test_rendered_lines_carry_no_trailing_spaces(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    console = make_console()
    stream(text, console, "random", seconds_per_chunk=1.0)  # a live frame per chunk
    assert trailing_spaces(output(console)) == []
    assert trailing_spaces(whole_render(text)) == []
    no_color = Console(file=io.StringIO(), force_terminal=True, width=WIDTH, no_color=True)
    stream(text, no_color, "random", seconds_per_chunk=1.0)
    assert trailing_spaces(output(no_color)) == []


def test_a_code_block_background_reaches_the_edge_without_spaces() -> None:
    console = make_console()
    stream("```python\nx = 1\n```\n", console, "chars")
    data = output(console)
    assert trailing_spaces(data) == []
    _, term = screen(data)
    # the theme's background is drawn to the right edge, by "erase to end of line"
    row = term.buffer[1]
    assert row[WIDTH - 1].bg == row[0].bg != "default"


@pytest.mark.parametrize(
    "size", [(60, 12), pytest.param((40, 6), marks=stress), pytest.param((80, 3), marks=stress)]
)
def test_resizing_during_a_tall_code_block_leaves_no_copies(size: tuple[int, int]) -> None:
    code = "".join(f"value_{n} = compute({n})\n" for n in range(150))
    text = "Before.\n\n```python\n" + code + "```\n\nAfter.\n"
    console = make_console()
    term = ScrollbackScreen(WIDTH, HEIGHT)
    term.set_mode(pyte.modes.LNM)
    emulator = pyte.Stream(term)
    fed = 0
    chunks = chunked(text, "random")

    def between(index: int) -> None:
        nonlocal fed
        data = output(console)
        with untraced():
            emulator.feed(data[fed:])
        fed = len(data)
        if index == len(chunks) // 2:  # the terminal shrinks in the middle of the block
            with untraced():
                xterm_resize(term, size[1], size[0])
            console.size = size

    stream(text, console, "random", seconds_per_chunk=1.0, between=between)
    data = output(console)
    with untraced():
        emulator.feed(data[fed:])
    lines = all_lines(term)
    values = [line.strip() for line in lines if "value_" in line]
    assert values == code.splitlines()  # each line once, in order
    assert lines[0] == "Before." and lines[-1] == "After."
    assert not term.cursor.hidden


@stress
def test_code_block_work_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts work: every line of a streamed code block is painted once for good, plus the
    incomplete line of each frame; no frame re-renders the block."""
    painted: list[int] = []
    rows = mdrender.CodePainter.rows

    def counting(self: mdrender.CodePainter, line: str) -> list[list[object]]:
        painted.append(len(line))
        return rows(self, line)  # type: ignore[return-value]

    monkeypatch.setattr(mdrender.CodePainter, "rows", counting)
    spy = MarkdownSpy(monkeypatch)
    cost = {}
    for lines in (200, 800):
        painted.clear()
        spy.sizes.clear()
        code = "```python\n" + "".join(f"value_{n} = compute({n})\n" for n in range(lines))
        stream(code + "```\n", make_console(), "random", seconds_per_chunk=1.0)
        cost[lines] = sum(painted) + sum(spy.sizes)
        assert sum(spy.sizes) < 100
        assert sum(painted) < 3 * len(code)
    assert cost[800] < 4 * cost[200] * 1.2


def test_highlighting_carries_state_across_lines_and_stops_at_the_limit() -> None:
    painter = mdrender.CodePainter("python", "monokai", 80)
    docstring = ["def f():", '    """first', "    def not_code(): pass", '    """', "    x = 1"]
    styles = [{seg.style for seg in painter.rows(line)[0][1:-1]} for line in docstring]
    assert len(styles[2]) == 1  # inside the docstring: one string style for the whole line
    assert len(styles[4]) > 1  # code again after it
    huge = mdrender.CodePainter("python", "monokai", 80)
    huge.budget = 20
    assert len({seg.style for seg in huge.rows("x = 1  # short")[0][1:-1]}) > 1
    assert len({seg.style for seg in huge.rows("y = 2  # over the budget")[0][1:-1]}) == 1


def test_a_wide_or_long_code_line_is_folded_whole() -> None:
    painter = mdrender.CodePainter("text", "monokai", 12)
    line = "漢字漢字漢字abcdefghij"
    rows = painter.rows(line)
    assert "".join(seg.text for row in rows for seg in row[1:-1]) == line
    assert [sum(seg.cell_length for seg in row) for row in rows] == [11, 11, 3]  # 1 + 10


def test_frames_of_a_huge_code_line_paint_only_what_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    painted: list[int] = []
    rows = mdrender.CodePainter.rows

    def counting(self: mdrender.CodePainter, line: str) -> list[list[object]]:
        painted.append(len(line))
        return rows(self, line)  # type: ignore[return-value]

    monkeypatch.setattr(mdrender.CodePainter, "rows", counting)
    line = "x" * 12_000  # minified code: one line, no newline yet
    console = make_console()
    stream("```js\n" + line, console, "random", seconds_per_chunk=1.0)  # a frame a chunk
    assert len(painted) > 400
    assert max(painted[:-1]) <= HEIGHT * WIDTH  # each frame: at most a screenful
    assert painted[-1] == len(line)  # the final render has it all
    small = make_console()
    stream("```js\n" + line[:500], small, "whole")
    lines, _ = screen(output(small))
    assert "".join(lines).replace(" ", "") == line[:500]
