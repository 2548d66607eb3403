"""Attached texts stored once (schema v5): dedup, byte-exact round trips, search, deletion,
the v4 -> v5 migration, and ``ask -f`` against the fake server."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmost_cli import paths
from llmost_cli.core import attachments as att
from llmost_cli.core.messages import Message
from llmost_cli.errors import StoreError
from llmost_cli.store import store as store_mod
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import Runner
from tests.test_store import fts_ok, raw

DATA = Path(__file__).parent / "data"
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)
# ~200 KB of text, one rare word in the middle
BIG = "".join(f"row {i}: ordinary words about the inventory\n" for i in range(4000))
BIG = BIG[: len(BIG) // 2] + "a zanzibarian marmoset appears once\n" + BIG[len(BIG) // 2 :]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "llmost" / "conversations.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as s:
        yield s


def question(prompt: str, *blocks: tuple[str, str], images: tuple[str, ...] = ()) -> Message:
    """A user message laid out as ``ask -f`` lays it out, knowing its attached texts."""
    context = att.Context(blocks=[att.Block(label, text) for label, text in blocks])
    text = att.compose_text(prompt, context, None)
    content: Any = text
    if images:
        content = [{"type": "text", "text": text}]
        content += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return Message("user", content, attached=tuple(t for _, t in blocks))


def counts(path: Path) -> tuple[int, int]:
    """(rows in texts, rows in message_texts)."""
    (texts,) = raw(path, "SELECT count(*) FROM texts")[0]
    (links,) = raw(path, "SELECT count(*) FROM message_texts")[0]
    return texts, links


def inline_bytes(path: Path) -> int:
    """What the message rows themselves hold."""
    (n,) = raw(path, "SELECT coalesce(sum(length(content)), 0) FROM messages")[0]
    return int(n)


def file_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return os.path.getsize(path)


# -- stored once ------------------------------------------------------------------------------


def fill(path: Path, *, hint: bool) -> None:
    """The same file attached in 2 conversations and 3 turns (``hint``: as ask -f does)."""
    with Store(path) as s:
        a, b = s.create(), s.create()
        for conv, prompt, label in (
            (a, "first", "notes.txt"),
            (a, "again", "./notes.txt"),
            (b, "x", "n"),
        ):
            m = question(prompt, (label, BIG))
            s.append(
                conv.id, [m if hint else Message("user", m.content), Message("assistant", "ok")]
            )


def test_same_file_in_two_conversations_and_three_turns_is_stored_once(
    db_path: Path, tmp_path: Path
) -> None:
    fill(db_path, hint=True)
    assert counts(db_path) == (1, 3)
    assert inline_bytes(db_path) < 1000  # the rows hold prompts, labels and fences only
    (stored,) = raw(db_path, "SELECT text FROM texts")[0]
    assert json.loads(stored) == BIG
    fts_ok(db_path)
    # the measure: without the hint each turn holds the text
    inline = tmp_path / "inline.db"
    fill(inline, hint=False)
    assert counts(inline) == (0, 0) and inline_bytes(inline) > 3 * len(BIG)
    # two copies saved; the index still holds the words of each message (not the text)
    assert file_size(inline) - file_size(db_path) > 1.5 * len(BIG)


def test_short_texts_stay_inline(store: Store, db_path: Path) -> None:
    a = store.create()
    store.append(a.id, [question("q", ("tiny.txt", "short\n"))])
    assert counts(db_path) == (0, 0)
    assert store.messages(a.id)[0].content == "q\n\ntiny.txt\n```\nshort\n```"


# -- round trips ------------------------------------------------------------------------------

TRICKY = [
    "plain text, " * 10,
    "fences inside\n```\ncode\n```\n" * 5,
    "no final newline " * 8,
    "unicode: é ß 漢字 🐍 \u200d and a lone surrogate \udcff " * 4,
    "\x00\x1b[31m control characters \r\n" * 6,
]


@pytest.mark.parametrize("text", TRICKY)
def test_roundtrip_is_byte_exact(store: Store, text: str) -> None:
    a = store.create()
    sent = [
        question("compare", ("a.txt", text), ("b.txt", BIG)),
        question("", ("only.txt", text)),
        question("with a picture", ("a.txt", text), images=(PNG,)),
    ]
    store.append(a.id, sent)
    back = store.messages(a.id)
    assert [m.to_api() for m in back] == [m.to_api() for m in sent]
    assert [m.content for m in back] == [m.content for m in sent]
    assert back[0].attached == (text, BIG)  # a message read back can be stored again, deduped
    again = store.create()
    store.append(again.id, back)
    assert [m.content for m in store.messages(again.id)] == [m.content for m in sent]
    assert int(raw(store.path, "SELECT count(*) FROM texts")[0][0]) == 2


def test_a_text_twice_in_a_message_and_texts_inside_texts(store: Store, db_path: Path) -> None:
    """A template may hold the input twice, and one file may hold another: whatever is cut
    out, the message comes back exactly."""
    inner = "the inner text, long enough to be kept on its own " * 3
    outer = "before " + inner + " after, and more words to make it longer " * 3
    template_twice = f"{att.fenced('x', outer)}\n\nonce more:\n{outer}\nand {inner}"
    a = store.create()
    store.append(a.id, [Message("user", template_twice, attached=(inner, outer))])
    assert store.messages(a.id)[0].content == template_twice
    assert counts(db_path) == (2, 2)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=5), max_size=6),
)
def test_collapse_then_expand_gives_the_content_back(pieces: list[str], picks: list[int]) -> None:
    from llmost_cli.core import textrefs  # here: the other tests also tell what main lacks

    attached = [p * (1 + textrefs.MIN_CHARS // max(1, len(p))) for p in pieces if p]
    chosen = [attached[i % len(attached)] for i in picks] if attached else []
    content = "|".join([*pieces, *chosen, *pieces])
    for value in (content, [{"type": "text", "text": content}, {"type": "image_url"}]):
        found: dict[str, str] = {}
        collapsed, refs = textrefs.collapse(value, attached, found)
        assert json.loads(json.dumps(refs)) == refs
        assert textrefs.expand(collapsed, refs, found) == value


# -- search -----------------------------------------------------------------------------------


def test_search_finds_words_inside_attached_texts(store: Store, db_path: Path) -> None:
    a, b = store.create(), store.create()
    store.append(a.id, [question("summarize please", ("notes.txt", BIG))])
    store.append(b.id, [question("and here", ("notes.txt", BIG))])
    found = store.search("zanzibarian")
    assert {(h.conversation.id, h.message) for h in found} == {(a.id, 1), (b.id, 1)}
    assert all("zanzibarian" in h.snippet for h in found)
    # every word must appear: one in the prompt, one in the attached text
    assert [h.conversation.id for h in store.search("summarize marmoset")] == [a.id]
    assert store.search("notes.txt")  # the label stays in the message
    fts_ok(db_path)


def test_title_is_made_of_the_expanded_question(store: Store) -> None:
    a = store.create()
    store.append(a.id, [question("", ("notes.txt", BIG))])
    assert "row 0: ordinary words" in store.title(a)
    (summary,) = store.summaries()
    assert summary.first_text.startswith("notes.txt\n```\nrow 0: ordinary words")


# -- deleting ---------------------------------------------------------------------------------


def test_deleting_keeps_texts_others_use_and_drops_the_rest(store: Store, db_path: Path) -> None:
    a, b = store.create(), store.create()
    other = "another attached file, used by one conversation only " * 4
    store.append(a.id, [question("q", ("n", BIG), ("o", other)), Message("assistant", "ok")])
    store.append(b.id, [question("q", ("n", BIG)), Message("assistant", "ok")])
    fork = store.fork(a.id)
    assert counts(db_path) == (2, 5)
    store.delete(a.id)
    assert counts(db_path) == (2, 3)  # the fork still uses both
    assert store.messages(fork.id)[0].content == question("q", ("n", BIG), ("o", other)).content
    store.delete(fork.id)
    assert counts(db_path) == (1, 1)
    assert store.drop_last_exchange(b.id) == 2  # /undo
    assert counts(db_path) == (0, 0)
    assert store.search("zanzibarian") == []
    fts_ok(db_path)


def test_retry_and_clear_clean_up(store: Store, db_path: Path) -> None:
    a = store.create()
    store.append(a.id, [question("q", ("n", BIG)), Message("assistant", "ok")])
    again = store.drop_last_reply(a.id)  # /retry: the question stays, expanded
    assert again is not None and again.attached == (BIG,)
    assert again.content == question("q", ("n", BIG)).content
    assert counts(db_path) == (1, 1)
    store.clear(a.id)
    assert counts(db_path) == (0, 0)
    fts_ok(db_path)


def test_a_text_in_use_cannot_be_deleted_behind_the_store(store: Store, db_path: Path) -> None:
    a = store.create()
    store.append(a.id, [question("q", ("n", BIG))])
    conn = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="still in use"):
            conn.execute("DELETE FROM texts")
    finally:
        conn.close()


def test_damaged_references_make_only_their_conversation_unreadable(
    store: Store, db_path: Path
) -> None:
    a, b = store.create(), store.create()
    store.append(a.id, [question("q", ("n", BIG))])
    store.append(b.id, [question("q", ("n", BIG))])
    conn = sqlite3.connect(db_path)
    conn.execute(
        "UPDATE messages SET texts = '[[null, 999999, \"x\"]]' WHERE conversation_id = ?", (a.id,)
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="damaged: message 1 has attachment references"):
        store.messages(a.id)
    assert store.messages(b.id)[0].attached == (BIG,)
    store.delete(a.id)  # a damaged conversation can still be deleted
    assert counts(db_path) == (1, 1)


# -- migration from schema 4 ------------------------------------------------------------------

V4 = "01J0V4AAAAAAAAAAAAAAAAAAAA"


def test_migrates_v4(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.executescript((DATA / "store_v4.sql").read_text(encoding="utf-8"))
    inline = [json.loads(c) for (c,) in conn.execute("SELECT content FROM messages ORDER BY seq")]
    conn.close()
    with Store(db_path) as s:
        msgs = s.messages(V4)
        inline[2][1]["image_url"]["url"] = PNG
        assert [m.content for m in msgs] == inline  # rows stored inline read as they were
        assert [h.message for h in s.search("quokka")] == [3, 1]
        assert "the quokka inventory" in s.summaries()[0].first_text
        notes = msgs[0].content.split("```\n")[1]
        s.append(V4, [question("one more", ("notes.txt", notes))])
        assert [m.content for m in s.messages(V4)][:4] == inline
        assert [h.message for h in s.search("quokka")] == [5, 3, 1]
        s.delete(V4)
    assert raw(db_path, "PRAGMA user_version") == [(store_mod.SCHEMA_VERSION,)]
    assert "texts" in [row[1] for row in raw(db_path, "PRAGMA table_info(messages)")]
    assert counts(db_path) == (0, 0)
    fts_ok(db_path)


# -- ask -f end to end ------------------------------------------------------------------------


def test_ask_f_stores_the_file_once_and_gives_back_what_was_sent(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(BIG, encoding="utf-8")
    assert llmost("ask", "-f", str(notes), "summarize").rc == 0
    assert llmost("ask", "-c", "-f", str(notes), "and again").rc == 0
    assert llmost("ask", "-f", str(notes), "a new conversation").rc == 0
    sent = [r.json["messages"][-1]["content"] for r in server.chat_requests()]
    assert len(sent) == 3 and all(BIG in content for content in sent)
    db = paths.database_file()
    assert counts(db) == (1, 3)
    assert inline_bytes(db) < 2000
    with Store(db) as s:
        questions = [m.content for c in reversed(s.list()) for m in s.messages(c.id)]
    assert [q for q in questions if isinstance(q, str) and BIG in q] == sent
    exported = llmost("conversations", "export", "--all", "--format", "json")
    assert exported.rc == 0 and exported.stdout.count("zanzibarian marmoset") == 3
    found = llmost("conversations", "search", "zanzibarian", "--json")
    assert found.rc == 0 and len(found.json) == 3  # one hit per question
    fts_ok(db)


def test_chat_file_and_retry_store_the_file_once(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(BIG, encoding="utf-8")
    r = llmost("chat", "-f", str(notes), input=f"first\n/retry\n/file {notes}\nsecond\n")
    assert r.rc == 0, r
    sent = [req.json["messages"] for req in server.chat_requests()]
    assert len(sent) == 3 and sent[0][-1] == sent[1][-1]  # /retry asked the same again
    db = paths.database_file()
    assert counts(db) == (1, 2)
    with Store(db) as s:
        (conv,) = s.list()
        stored = [m.content for m in s.messages(conv.id) if m.role == "user"]
    assert stored == [sent[2][0]["content"], sent[2][-1]["content"]]
