"""The one choke point for text bound to a terminal: a table of sequences, not one example."""

from __future__ import annotations

import re
import time

import pytest

from llmost_cli.ui.escape import StreamEscaper, escape, escape_lines

C1 = "".join(map(chr, range(0x80, 0xA0)))
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
UNICODE = "Привет, 漢字, emoji 🎉, a\u0301, zero\u200dwidth, LRM\u200e"
MARKUP = "[bold]x[/bold] [link=http://e]y[/link] [/]"

# (name, input, what the terminal must be shown)
SEQUENCES = [
    ("plain", "hello, world", "hello, world"),
    ("newline and tab kept", "a\tb\nc", "a\tb\nc"),
    ("crlf kept", "a\r\nb", "a\r\nb"),
    ("carriage return", "safe\rEVIL", "safe␍EVIL"),
    ("final carriage return", "x\r", "x␍"),
    ("backspace", "abc\b\b\bxyz", "abc␈␈␈xyz"),
    ("bell", "ding\x07", "ding␇"),
    ("nul", "a\x00b", "a␀b"),
    ("vertical tab and form feed", "a\x0bb\x0cc", "a␋b␌c"),
    ("shift out / in", "\x0e\x0f", "␎␏"),
    ("DEL", "a\x7fb", "a␡b"),
    ("CSI colour", "\x1b[31mred\x1b[0m", "␛[31mred␛[0m"),
    ("CSI clear screen", "\x1b[2J\x1b[H", "␛[2J␛[H"),
    ("CSI cursor up + erase", "\x1b[5A\x1b[2K", "␛[5A␛[2K"),
    ("CSI private mode (alt screen)", "\x1b[?1049h", "␛[?1049h"),
    ("CSI hide cursor", "\x1b[?25l", "␛[?25l"),
    ("CSI device status report", "\x1b[6n", "␛[6n"),
    ("OSC 0 title, BEL", "\x1b]0;pwned\x07", "␛]0;pwned␇"),
    ("OSC 2 title, ST", "\x1b]2;pwned\x1b\\", "␛]2;pwned␛\\"),
    ("OSC 8 hyperlink", "\x1b]8;;https://evil\x1b\\click\x1b]8;;\x1b\\", "␛]8;;https://evil␛\\click␛]8;;␛\\"),
    ("OSC 52 clipboard", "\x1b]52;c;cm0gLXJmIH4=\x07", "␛]52;c;cm0gLXJmIH4=␇"),
    ("OSC 4 palette", "\x1b]4;1;rgb:ff/00/00\x07", "␛]4;1;rgb:ff/00/00␇"),
    ("DCS", "\x1bP+q544e\x1b\\", "␛P+q544e␛\\"),
    ("APC", "\x1b_Gf=100;AAAA\x1b\\", "␛_Gf=100;AAAA␛\\"),
    ("PM and SOS", "\x1b^x\x1b\\\x1bXy\x1b\\", "␛^x␛\\␛Xy␛\\"),
    ("two-character ESC sequences", "\x1bc\x1b7\x1b8\x1bM", "␛c␛7␛8␛M"),
    ("charset switch", "\x1b(0lqk\x1b(B", "␛(0lqk␛(B"),
    ("bare ESC at the end", "end\x1b", "end␛"),
    ("C1 CSI", "\x9b31mred", "\\x9b31mred"),
    ("C1 OSC + ST", "\x9d0;title\x9c", "\\x9d0;title\\x9c"),
    ("C1 DCS", "\x90q\x9c", "\\x90q\\x9c"),
    ("C1 NEL", "a\x85b", "a\\x85b"),
    ("every C1", C1, "".join(rf"\x{ord(c):02x}" for c in C1)),
    ("RLO (Trojan Source)", "if admin\u202e }\u2066", "if admin\\u202e }\\u2066"),
    ("every bidi control", BIDI, "".join(rf"\u{ord(c):04x}" for c in BIDI)),
    ("unicode text untouched", UNICODE, UNICODE),
    ("control pictures and backslashes are plain", "␛ \\x1b", "␛ \\x1b"),
    ("markup is only text", MARKUP, MARKUP),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "shown"), SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_escape_table(name: str, raw: str, shown: str) -> None:
    assert escape(raw) == shown


@pytest.mark.parametrize(("name", "raw", "shown"), SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_nothing_that_drives_a_terminal_survives(name: str, raw: str, shown: str) -> None:
    out = escape(raw)
    assert not re.search("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out)
    assert "\r" not in out.replace("\r\n", "")


def test_every_code_point_below_0xa0() -> None:
    for code in range(0xA0):
        char = chr(code)
        out = escape(char)
        if char in "\n\t" or 0x20 <= code < 0x7F:
            assert out == char
        else:
            assert out != char and out.isprintable(), hex(code)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_streamed_chunks_escape_like_the_whole(size: int) -> None:
    text = "".join(raw for _, raw, _ in SEQUENCES) + "tail\r"
    escaper = StreamEscaper()
    pieces = [escaper.feed(text[i : i + size]) for i in range(0, len(text), size)]
    assert "".join(pieces) + escaper.close() == escape(text)


def test_a_crlf_split_between_chunks_is_a_line_ending() -> None:
    escaper = StreamEscaper()
    assert escaper.feed("a\r") == "a"
    assert escaper.feed("\nb") == "\r\nb"
    assert escaper.feed("\r") == ""
    assert escaper.feed("c") == "␍c"
    assert escaper.close() == ""


def test_escape_lines_makes_one_line() -> None:
    assert escape_lines("HTTP 500:\r\n\x1b[2Jboom\nagain\u2028x") == "HTTP 500: ␛[2Jboom again x"


def test_clean_text_is_returned_as_is() -> None:
    text = "a clean answer\n" * 10
    assert escape(text) == text


@pytest.mark.no_cover  # a size test: the example tests measure these lines
def test_escape_is_linear() -> None:
    # work, not wall time: a regular expression over the text, no per-character Python loop
    clean = "the quick brown fox\n" * 20_000
    dirty = "x\x1b[31my\u202e" * 20_000

    def cost(text: str) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            escape(text)
            best = min(best, time.perf_counter() - start)
        return best

    for text in (clean, dirty):
        ratio = cost(text * 4) / max(cost(text), 1e-6)
        assert ratio < 4 * 3, ratio  # generous: quadratic would be ~16
