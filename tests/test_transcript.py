"""core/transcript.py: the export formats round-trip, titles, names, durations, escaping.

The round trips are properties over generated conversations (hypothesis): arbitrary unicode
with control characters, code fences, headings and the formats' own delimiters, tool calls,
multipart content with images, odd parts and fields.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from llmost_cli.core import transcript as t
from llmost_cli.core import transcript_md as tmd
from llmost_cli.core.messages import Conversation, Message
from llmost_cli.errors import ExitCode, LlmostError
from llmost_cli.store import images

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)
GIF = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
CONV = Conversation("01J0V3AAAAAAAAAAAAAAAAAAAA", "weather", "openai/gpt-4o", 1710000000.0, 1.5e9)

# -- generated conversations ------------------------------------------------------------------

NASTY = [
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x00",
    "\x1b[31m",
    "\x9b",
    "\u2028",
    "\ufeff",
    "```",
    "````python",
    "~~~",
    "# Heading",
    "## 2. User",
    "---",
    "-->",
    "<!--",
    "<!-- /llmost -->",
    "\n<!-- /llmost -->\n",
    "\n<!-- /llmost 1 -->\n",
    '\n<!-- llmost:message {"role": "user"} -->\n',
    '\n<!-- llmost:conversation {"format": "llmost-conversation"} -->\n',
    "\n<!-- llmost:text {} -->\n",
    "\n<!-- llmost:image {} -->\n",
    "[llmost-image-0]: data:x",
    "llmost-image:sha256:" + "0" * 64,
    "[bold]x[/bold]",
]
# Undecodable input bytes, as surrogateescape makes them. (A high surrogate followed by a low
# one would read back from any JSON as the pair's character: text never holds that.)
surrogates = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)
text = st.lists(
    st.one_of(st.text(max_size=20), st.sampled_from(NASTY), surrogates), max_size=8
).map("".join)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_floats | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
data_urls = st.sampled_from([PNG, GIF]) | st.binary(max_size=30).map(
    lambda b: "data:image/png;base64," + __import__("base64").b64encode(b).decode()
)
urls = (
    data_urls
    | st.just("https://example.com/cat.jpg")
    | st.just("llmost-image:sha256:" + "1" * 64)  # a URL that looks like our reference
    | st.just("data:text/odd url with spaces>\n")
    | text
)
image_part = st.one_of(
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, urls),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u, "detail": "low"}}, urls),
    st.builds(lambda u: {"type": "image_url", "image_url": u}, urls),  # the bare string form
)
text_part = st.one_of(
    st.builds(lambda s: {"type": "text", "text": s}, text),
    st.builds(lambda s: {"text": s, "type": "text", "cache_control": {"type": "x"}}, text),
)
odd_part = st.one_of(
    st.just({"type": "text"}),
    st.just({"type": "text", "text": None}),
    st.just({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
    json_values,
)
content = st.one_of(
    st.none(),
    text,
    st.lists(st.one_of(text_part, image_part, odd_part), max_size=4),
)
tool_call = st.one_of(
    st.builds(
        lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}},
        text,
        text,
        st.one_of(text, json_values.map(json.dumps)),
    ),
    json_values,
)
optional_text = st.none() | text
seconds = st.floats(min_value=0, max_value=4e9, allow_nan=False)
messages = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]) | text.filter(bool),
    content=content,
    tool_calls=st.none() | st.lists(tool_call, max_size=2),
    tool_call_id=optional_text,
    name=optional_text,
    prefill=st.booleans(),
    finish_reason=optional_text,
    usage=st.none() | st.dictionaries(text, json_values, max_size=3),
    partial=st.booleans(),
    model=optional_text,
    created=seconds,
)
conversations = st.builds(
    Conversation,
    id=st.from_regex(r"[0-9A-HJKMNP-TV-Z]{26}", fullmatch=True),
    name=optional_text,
    model=optional_text,
    created=seconds,
    updated=seconds,
)
tools = st.none() | st.lists(st.dictionaries(text, json_values, max_size=2), max_size=2)
PROPERTY = settings(
    max_examples=30,  # generating these nested values is most of the cost
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[p for p in Phase if p is not Phase.explain],
)


def same(doc: t.Document, conv: Conversation, msgs: list[Message], tl: Any) -> None:
    assert doc.conversation == conv
    assert doc.tools == tl
    assert len(doc.messages) == len(msgs)
    for got, want in zip(doc.messages, msgs, strict=True):
        assert got == want


@PROPERTY
@given(conversations, st.lists(messages, max_size=6), tools)
def test_json_round_trip(conv: Conversation, msgs: list[Message], tl: Any) -> None:
    data = t.dumps(t.to_json(conv, msgs, tl)).encode("utf-8")  # valid UTF-8, strict
    assert "\n" not in data.decode()
    (doc,) = tmd.parse(data.decode("utf-8"), "x.json")
    same(doc, conv, msgs, tl)
    assert doc.missing_images() == set()


@PROPERTY
@given(conversations, st.lists(messages, max_size=6), tools)
def test_markdown_round_trip(conv: Conversation, msgs: list[Message], tl: Any) -> None:
    data = tmd.to_markdown(conv, msgs, tl).encode("utf-8")  # valid UTF-8, strict
    (doc,) = tmd.parse(data.decode("utf-8"), "x.md")
    assert doc.missing_images() == set()
    doc.resolve({})
    same(doc, conv, msgs, tl)


@PROPERTY
@given(st.lists(st.tuples(conversations, st.lists(messages, max_size=3)), min_size=1, max_size=3))
def test_several_conversations_in_one_file(convs: list[tuple[Conversation, list[Message]]]) -> None:
    md = "\n---\n\n".join(tmd.to_markdown(c, m) for c, m in convs)
    js = "".join(t.dumps(t.to_json(c, m)) + "\n" for c, m in convs)
    for text_, fmt in ((md, "md"), (js, "json")):
        docs = tmd.parse(text_, f"x.{fmt}")
        assert len(docs) == len(convs)
        for doc, (c, m) in zip(docs, convs, strict=True):
            doc.resolve({})
            same(doc, c, m, None)


# -- markdown, by example ---------------------------------------------------------------------

CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Москва"}'},
    }
]
EXAMPLE = [
    Message("system", "You are terse.", created=1.0),
    Message(
        "user",
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        ],
        created=2.0,
    ),
    Message("assistant", None, tool_calls=CALLS, finish_reason="tool_calls", created=3.0),
    Message("tool", '{"temp_c": -3}', tool_call_id="call_1", name="get_weather", created=4.0),
    Message("assistant", "```json\n{", prefill=True, partial=True, model="m", created=5.0),
    Message("user", [{"type": "image_url", "image_url": {"url": PNG}}], created=6.0),
]


def test_markdown_reads_like_a_transcript() -> None:
    md = tmd.to_markdown(CONV, EXAMPLE)
    lines = md.split("\n")
    assert lines[0] == "# weather"
    for heading in (
        "## 1. System prompt",
        "## 2. User",
        "## 3. Assistant · tool call",
        "## 4. Tool result · get_weather",
        "## 5. Assistant · m (partial answer)",
    ):
        assert heading in lines
    assert "You are terse." in lines and "What is this?" in lines
    assert "**Tool call:** get_weather (call_1)" in lines
    assert '  "city": "Москва"' in lines  # arguments shown pretty, not escaped
    # the image data is written once, at the end, as a reference definition
    assert md.count("iVBORw0KGgo") == 1
    assert lines.count("![image][llmost-image-624fc0a006e3]") == 2
    assert lines[-3].startswith("<!-- llmost:image ")
    assert lines[-2] == f"[llmost-image-624fc0a006e3]: {PNG}" and lines[-1] == ""
    # the partial answer left a fence open: closed after its end line, for readers
    at = len(lines) - 1 - lines[::-1].index("```json")
    assert lines[at + 1 : at + 4] == ["{", "<!-- /llmost -->", "```"]


def test_markdown_survives_editing_around_the_comments() -> None:
    md = tmd.to_markdown(CONV, EXAMPLE)
    md = "My notes\n\n" + md.replace("## 2. User", "## 2. User (edited heading)\n\nA note.")
    md = md.replace("\n**Tool call:**", "\n**Tool call, seen:**")
    md = md.replace("\n", "\r\n")  # a Windows editor
    (doc,) = tmd.parse("\ufeff" + md, "x.md")
    doc.resolve({})
    assert doc.messages == EXAMPLE


def test_markdown_images_from_the_store_when_the_file_lacks_them() -> None:
    md = tmd.to_markdown(CONV, EXAMPLE)
    md = md[: md.index("<!-- llmost:image")]
    (doc,) = tmd.parse(md, "x.md")
    key = images.digest(PNG)
    assert doc.missing_images() == {key}
    with pytest.raises(images.MissingImage):
        doc.resolve({})
    doc.resolve({key: PNG})
    assert doc.messages == EXAMPLE


def test_image_data_that_is_not_one_url_goes_in_the_comment() -> None:
    odd = "data:text/plain,two words>\nand a line"
    msgs = [Message("user", [{"type": "image_url", "image_url": {"url": odd}}], created=1.0)]
    md = tmd.to_markdown(CONV, msgs)
    assert "two words" not in md.split("<!-- llmost:image")[0]
    (doc,) = tmd.parse(md, "x.md")
    doc.resolve({})
    assert doc.messages == msgs


def test_the_end_line_changes_when_a_text_contains_it() -> None:
    msgs = [Message("user", "a\n<!-- /llmost -->\nb\n<!-- /llmost 1 -->", created=1.0)]
    md = tmd.to_markdown(CONV, msgs)
    assert '"end": 2' in md and "\n<!-- /llmost 2 -->\n" in md
    (doc,) = tmd.parse(md, "x.md")
    assert doc.messages == msgs


def test_comments_never_close_early_and_stay_on_one_line() -> None:
    conv = Conversation(CONV.id, "a --> b\u2028c\x85d", "m>", 1.0, 2.0)
    md = tmd.to_markdown(conv, [Message("user", "x", name="<!-- -->", created=1.0)])
    comments = [line for line in md.split("\n") if line.startswith("<!-- llmost:")]
    assert len(comments) == 2
    for line in comments:
        assert line.count("-->") == 1 and line.endswith(" -->")
        assert "\u2028" not in line and "\x85" not in line
    (doc,) = tmd.parse(md, "x.md")
    assert doc.conversation == conv


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda md: md.replace("<!-- /llmost -->", "<!-- /llm -->"),
            "line 8: this text has no end",
        ),
        (lambda md: md.replace('"role": "user"', '"role": 5'), "message 1: a message needs a role"),
        (lambda md: md.replace('{"role"', '{"role'), "line 8: the JSON of this comment is damaged"),
        (
            lambda md: md.replace(" -->\nhi", " --\nhi"),
            "line 8: a damaged <!-- llmost: --> comment",
        ),
        (lambda md: md.replace("llmost:message", "llmost:gadget"), "unknown comment llmost:gadget"),
        (lambda md: md.replace('"version": 1', '"version": 9'), "newer llmost (format version 9)"),
        (lambda md: md.replace('"format": "llmost-conversation"', '"format": "x"'), "format 'x'"),
        (
            lambda md: "# notes\n\n" + md.split("\n", 3)[3],
            "line 7: a message before any conversation",
        ),
        (lambda md: md.replace('"created": 1.0}', '"created": -1}'), "created must be a number"),
    ],
)
def test_markdown_problems_name_the_line(edit: Any, problem: str) -> None:
    md = tmd.to_markdown(CONV, [Message("user", "hi", created=1.0)])
    with pytest.raises(LlmostError) as info:
        tmd.parse(edit(md), "notes.md")
    assert info.value.exit_code == ExitCode.USAGE
    assert problem in str(info.value) and "notes.md" in str(info.value)


def test_markdown_parts_must_be_complete() -> None:
    msgs = [Message("user", [{"type": "text", "text": "a"}, {"type": "x"}], created=1.0)]
    md = tmd.to_markdown(CONV, msgs)
    cut = md.replace('<!-- llmost:part {"type": "x"} -->', "")
    with pytest.raises(LlmostError, match="lacks 1 of its parts"):
        tmd.parse(cut, "x.md")
    stray = md + '<!-- llmost:part {"type": "x"} -->\n'
    with pytest.raises(LlmostError, match="a part part outside a message"):
        tmd.parse(stray, "x.md")


# -- JSON, by example -------------------------------------------------------------------------


def test_json_object_is_documented_and_strict() -> None:
    msgs = [Message("assistant", "hi", usage={"cost": math.nan, "x": [math.inf]}, created=1.0)]
    obj = json.loads(t.dumps(t.to_json(CONV, msgs, [{"type": "function"}])))
    assert list(obj) == [
        "format",
        "version",
        "id",
        "name",
        "model",
        "created",
        "updated",
        "tools",
        "messages",
    ]
    assert (obj["format"], obj["version"]) == ("llmost-conversation", 1)
    assert obj["messages"][0]["usage"] == {"cost": None, "x": [None]}
    assert list(obj["messages"][0]) == [
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "name",
        "prefill",
        "finish_reason",
        "usage",
        "partial",
        "model",
        "created",
    ]
    assert t.dumps("\udcff\ud800") == '"\\udcff\\ud800"'
    assert t.dumps("\x1b\x7f\x9b\u2028é") == '"\\u001b\\u007f\\u009b\u2028é"'
    assert t.dumps({"a": [1]}, pretty=True) == '{\n  "a": [\n    1\n  ]\n}'


def test_json_import_takes_arrays_lines_and_hand_written_objects() -> None:
    one = t.dumps(t.to_json(CONV, EXAMPLE))
    docs = tmd.parse(f"[{one}, {one}]\n{one}\n", "x.json")
    assert len(docs) == 3 and all(d.messages == EXAMPLE for d in docs)
    (doc,) = tmd.parse('{"messages": [{"role": "user", "content": "hi"}]}', "x.json")
    assert doc.messages == [Message("user", "hi")]
    assert (doc.conversation.id, doc.conversation.name, doc.conversation.created) == ("", None, 0)
    with pytest.raises(LlmostError, match="holds no conversation"):
        tmd.parse("  \n", "empty.md")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("{", "x.json is not valid JSON"),
        ("[1]", "conversation 1: expected a conversation object"),
        ('{"messages": 3}', "messages must be a list"),
        ('{"messages": [{"role": "user", "content": 3}]}', "message 1: content must be"),
        ('{"messages": [{"role": "user", "partial": 1}]}', "partial must be true or false"),
        ('{"messages": [{"role": "user", "usage": []}]}', "usage has the wrong kind"),
        ('{"messages": [], "tools": {}}', "tools must be a list"),
        ('{"messages": [], "name": 3}', "name must be a string"),
        ('{"messages": [], "updated": "now"}', "updated must be a number"),
        ('{"messages": [{"role": "user", "created": NaN}]}', "created must be a number"),
    ],
)
def test_json_problems(data: str, problem: str) -> None:
    with pytest.raises(LlmostError) as info:
        tmd.parse(data, "x.json")
    assert info.value.exit_code == ExitCode.USAGE and problem in str(info.value)


# -- people's text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain ✓ текст", "plain ✓ текст"),
        ("keep\nnew\tlines", "keep\nnew\tlines"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52: write the clipboard
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("\r\x00\x08\x7f", "\\x0d\\x00\\x08\\x7f"),
        ("\x85", "\\x85"),
        ("bad byte \udcff", "bad byte \\xff"),
        ("lone \ud800", "lone \\ud800"),
        ("[bold]markup[/bold]", "[bold]markup[/bold]"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert t.printable(raw) == shown


def test_titles_and_first_words() -> None:
    conv = Conversation("01J0V3AAAAAAAAAAAAAAAAAAAA", None, None, 0.0, 0.0)
    assert t.title(conv, None) == "untitled conversation"
    assert t.title(conv, "  \n ") == "untitled conversation"
    assert t.title(conv, "Why\n\tnot?") == "Why not?"
    long = "word " * 30
    assert t.title(conv, long) == "word " * 9 + "word…"
    assert len(t.title(conv, long)) <= 50
    assert t.first_words("x" * 60, 10) == "x" * 9 + "…"
    assert t.first_words("exactly ten", 11) == "exactly ten"
    assert t.first_words("hello there general", 13) == "hello there…"
    named = Conversation(conv.id, "  my\nnotes ", None, 0.0, 0.0)
    assert t.title(named, "ignored") == "my notes"
    assert t.title_of(conv, EXAMPLE) == "What is this?"


@pytest.mark.parametrize(
    "name", ["", "  ", "two\nlines", "tab\there", "esc\x1b", "last", "01J0V3AAAAAAAAAAAAAAAAAAAA"]
)
def test_names_that_are_refused(name: str) -> None:
    with pytest.raises(LlmostError) as info:
        t.check_name(name)
    assert info.value.exit_code == ExitCode.USAGE


def test_names_that_are_fine() -> None:
    for name in ("refactor", "Проект X", "last week", "01J0V3"):
        assert t.check_name(name) == name


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("15min", 900), ("12h", 43200), ("30d", 2592000), ("2w", 1209600),
     ("1.5d", 129600), (" 7 d ", 604800)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert t.duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "30 days", "-1d", "1y", "nan d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(LlmostError, match="not a duration"):
        t.duration(text)


def test_entries_as_json() -> None:
    s = t.Summary(CONV, 2, 5, "What is\nthis?")
    assert s.to_json() == {
        "id": CONV.id,
        "name": "weather",
        "title": "weather",
        "model": "openai/gpt-4o",
        "created": CONV.created,
        "updated": CONV.updated,
        "turns": 2,
        "messages": 5,
        "first_words": "What is this?",
    }
    h = t.Hit(CONV, "weather", 3, "assistant", True, 7.0, "a hit here", ((2, 5),))
    assert h.to_json()["highlights"] == [[2, 5]] and h.to_json()["message"] == 3
    assert t.timestamp(1710000000.0) == "2024-03-09 16:00 UTC"
    assert t.timestamp(1e20) == "?"
