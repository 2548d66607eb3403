"""The SQLite conversation store: roundtrips, images, undo/retry, modes, migration, concurrency."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmost_cli.core.messages import Conversation, Message
from llmost_cli.core.transcript import text_of
from llmost_cli.errors import ExitCode, LlmostError, StoreError
from llmost_cli.store import database, images
from llmost_cli.store import store as store_mod
from llmost_cli.store.store import Store
from tests.conftest import forked

DATA = Path(__file__).parent / "data"
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "llmost" / "conversations.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as s:
        yield s


def raw(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Read the file with plain sqlite3, to check what is really stored."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def texts(messages: list[Message]) -> list[tuple[str, Any]]:
    return [(m.role, m.content) for m in messages]


# -- roundtrip --------------------------------------------------------------------------------


def test_every_field_roundtrips(store: Store) -> None:
    conv = store.create(model="openai/gpt-4o")
    tool_calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Москва"}'},
        }
    ]
    sent = [
        Message("system", "Be terse.", created=1.5),
        Message(
            "user",
            [
                {"type": "text", "text": "What is this? ✓"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        ),
        Message(
            "assistant",
            None,
            tool_calls=tool_calls,
            finish_reason="tool_calls",
            model="openai/gpt-4o",
            usage={"prompt_tokens": 12, "completion_tokens": 3, "cost": 0.0001},
        ),
        Message("tool", '{"temp": -3.5}', tool_call_id="call_1", name="weather"),
        Message("assistant", "```json\n{", prefill=True, partial=True, finish_reason=None),
    ]
    store.append(conv.id, sent)
    got = store.messages(conv.id)
    assert len(got) == len(sent)
    for before, after in zip(sent, got, strict=True):
        assert after.created > 0
        if before.created:
            assert after.created == before.created
        after.created = before.created
        assert after == before
    assert got[4].prefill is True and got[4].partial is True
    assert got[0].prefill is False and got[0].partial is False


def test_lone_surrogates_roundtrip(store: Store) -> None:
    # stdin decoded with surrogateescape can carry them; sqlite3 cannot encode them as UTF-8
    conv = store.create()
    text = "bytes: \udcff\udcfe and ünïcode"
    store.append(conv.id, [Message("user", text)])
    assert store.messages(conv.id)[0].content == text


def test_to_api_has_only_wire_fields() -> None:
    msg = Message("assistant", "hi", prefill=True, partial=True, model="m", usage={"a": 1})
    assert msg.to_api() == {"role": "assistant", "content": "hi"}
    tool = Message("tool", "42", tool_call_id="c1", name="calc", finish_reason="stop")
    assert tool.to_api() == {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "calc"}
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    call = Message("assistant", None, tool_calls=calls)
    assert call.to_api() == {"role": "assistant", "content": None, "tool_calls": calls}


def test_append_is_atomic(store: Store) -> None:
    conv = store.create()
    with pytest.raises(TypeError):
        store.append(conv.id, [Message("user", "fine"), Message("user", [{"x": object()}])])
    assert store.messages(conv.id) == []
    store.append(conv.id, [Message("user", "again")])
    assert texts(store.messages(conv.id)) == [("user", "again")]


def test_append_to_unknown_conversation(store: Store) -> None:
    with pytest.raises(StoreError, match="no conversation 'nope'"):
        store.append("nope", [Message("user", "hi")])


# -- images -----------------------------------------------------------------------------------


def image_message(text: str, url: str = PNG) -> Message:
    return Message(
        "user",
        [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}],
    )


def test_images_are_stored_once(store: Store, db_path: Path) -> None:
    a, b = store.create(), store.create()
    first, second = image_message("one"), image_message("two")
    store.append(a.id, [first, Message("assistant", "a pixel")])
    store.append(a.id, [second])
    store.append(b.id, [image_message("three")])

    assert raw(db_path, "SELECT url FROM images") == [(PNG,)]
    stored = raw(db_path, "SELECT content FROM messages WHERE role = 'user'")
    assert len(stored) == 3
    assert all(
        "base64" not in content and "llmost-image:sha256:" in content for (content,) in stored
    )
    got = store.messages(a.id)
    assert got[0].content == first.content
    assert got[2].content == second.content
    assert store.messages(b.id)[0].content == image_message("three").content


def test_image_url_forms_roundtrip(store: Store, db_path: Path) -> None:
    conv = store.create()
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": PNG},  # bare string form some clients send
        {"type": "image_url", "image_url": {"url": "llmost-image:sha256:" + "0" * 64}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ]
    store.append(conv.id, [Message("user", content)])
    assert store.messages(conv.id)[0].content == content
    assert raw(db_path, "SELECT count(*) FROM images") == [(1,)]


def test_images_nobody_uses_are_deleted(store: Store, db_path: Path) -> None:
    other = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    a, b = store.create(), store.create()
    store.append(a.id, [image_message("shared"), Message("assistant", "ok")])
    store.append(b.id, [image_message("shared again")])
    store.append(a.id, [image_message("only here", other), Message("assistant", "ok")])
    assert len(raw(db_path, "SELECT sha256 FROM images")) == 2

    assert store.drop_last_exchange(a.id) == 2
    assert raw(db_path, "SELECT url FROM images") == [(PNG,)]
    store.clear(a.id)
    assert raw(db_path, "SELECT url FROM images") == [(PNG,)]  # b still uses it
    store.clear(b.id)
    assert raw(db_path, "SELECT url FROM images") == []


# -- conversations ----------------------------------------------------------------------------


def test_get_by_id_or_name(store: Store) -> None:
    conv = store.create(name="notes", model="m")
    assert len(conv.id) == 26 and conv.id.isalnum()
    assert store.get(conv.id) == conv
    assert store.get("notes") == conv
    assert store.get("missing") is None


def test_latest_and_list_follow_updates(store: Store) -> None:
    assert store.latest() is None
    assert store.list() == []
    a = store.create(name="a")
    b = store.create(name="b")
    assert store.latest() == b
    store.append(a.id, [Message("user", "bump")])
    latest = store.latest()
    assert latest is not None and latest.id == a.id and latest.updated >= b.updated
    assert [c.name for c in store.list()] == ["a", "b"]
    assert [c.name for c in store.list(limit=1)] == ["a"]


def test_get_or_create_returns_the_same_conversation(store: Store) -> None:
    first = store.get_or_create("S", model="m1")
    again = store.get_or_create("S", model="m2")
    assert again == first
    assert again.model == "m1"
    assert len(store.list()) == 1


def test_names_are_unique(store: Store) -> None:
    a = store.create(name="taken")
    b = store.create()
    with pytest.raises(StoreError, match="'taken' already exists"):
        store.create(name="taken")
    with pytest.raises(StoreError, match="'taken' already exists") as info:
        store.rename(b.id, "taken")
    assert info.value.exit_code == ExitCode.CONFIG
    store.rename(a.id, "taken")  # its own name again is fine
    store.rename(b.id, "free")
    renamed = store.get("free")
    assert renamed is not None and (renamed.id, renamed.name) == (b.id, "free")
    assert store.get("taken") is not None and store.get("taken").id == a.id  # type: ignore[union-attr]
    with pytest.raises(StoreError, match="no conversation"):
        store.rename("nope", "x")


def test_set_model(store: Store) -> None:
    conv = store.create(model="a")
    store.set_model(conv.id, "b")
    assert store.get(conv.id).model == "b"  # type: ignore[union-attr]
    store.set_model(conv.id, None)
    assert store.get(conv.id).model is None  # type: ignore[union-attr]


# -- undo / retry / clear ---------------------------------------------------------------------


def seeded(store: Store) -> Conversation:
    conv = store.create()
    store.append(
        conv.id, [Message("system", "sys"), Message("user", "q1"), Message("assistant", "a1")]
    )
    store.append(
        conv.id,
        [
            Message("user", "q2"),
            Message("assistant", None, tool_calls=[{"id": "c", "type": "function"}]),
            Message("tool", "r", tool_call_id="c"),
            Message("assistant", "a2"),
        ],
    )
    return conv


def test_drop_last_exchange(store: Store) -> None:
    conv = seeded(store)
    assert store.drop_last_exchange(conv.id) == 4
    assert texts(store.messages(conv.id)) == [
        ("system", "sys"),
        ("user", "q1"),
        ("assistant", "a1"),
    ]
    assert store.drop_last_exchange(conv.id) == 2
    assert store.drop_last_exchange(conv.id) == 0
    assert texts(store.messages(conv.id)) == [("system", "sys")]
    store.append(conv.id, [Message("user", "q3")])
    assert [m.content for m in store.messages(conv.id)] == ["sys", "q3"]


def test_drop_last_reply(store: Store) -> None:
    conv = seeded(store)
    user = store.drop_last_reply(conv.id)
    assert user is not None and user.role == "user" and user.content == "q2"
    assert [m.content for m in store.messages(conv.id)] == ["sys", "q1", "a1", "q2"]
    again = store.drop_last_reply(conv.id)  # nothing after it: still the message to answer
    assert again == user
    assert len(store.messages(conv.id)) == 4
    store.append(conv.id, [Message("assistant", "a2'")])
    assert [m.content for m in store.messages(conv.id)][-2:] == ["q2", "a2'"]
    empty = store.create()
    assert store.drop_last_reply(empty.id) is None


def test_drop_last_reply_returns_images_expanded(store: Store) -> None:
    conv = store.create()
    question = image_message("what?")
    store.append(conv.id, [question, Message("assistant", "a pixel")])
    assert store.drop_last_reply(conv.id) == store.messages(conv.id)[0]
    assert store.messages(conv.id)[0].content == question.content


def test_clear(store: Store) -> None:
    conv = seeded(store)
    store.clear(conv.id)
    assert store.messages(conv.id) == []
    assert store.get(conv.id) is not None


# -- files and errors -------------------------------------------------------------------------


def test_private_modes(db_path: Path) -> None:
    with Store(db_path) as s:
        conv = s.create()
        s.append(conv.id, [Message("user", "secret")])
        assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        wal = db_path.with_name(db_path.name + "-wal")
        assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_loose_mode_is_tightened(db_path: Path) -> None:
    Store(db_path).close()
    db_path.chmod(0o644)
    Store(db_path).close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_reopen_keeps_data(db_path: Path) -> None:
    with Store(db_path) as s:
        conv = s.create(name="n")
        s.append(conv.id, [Message("user", "kept")])
    with Store(db_path) as s:
        assert texts(s.messages(s.get("n").id)) == [("user", "kept")]  # type: ignore[union-attr]


def test_corrupt_file(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError) as info:
        Store(db_path)
    message = str(info.value)
    assert str(db_path) in message and "move the file aside" in message
    assert "\n" not in message
    assert isinstance(info.value, LlmostError) and info.value.exit_code == ExitCode.CONFIG


def test_foreign_database(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw(db_path, "CREATE TABLE other (x)")
    with pytest.raises(StoreError, match="not an llmost conversation store"):
        Store(db_path)


def test_newer_schema(db_path: Path) -> None:
    Store(db_path).close()
    raw(db_path, "PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer llmost") as info:
        Store(db_path)
    assert str(db_path) in str(info.value)


def test_path_is_a_directory(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    with pytest.raises(StoreError) as info:
        Store(db_path)
    assert str(db_path) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StoreError) as info:
            Store(tmp_path / "conversations.db")
        assert str(tmp_path / "conversations.db") in str(info.value)
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.parametrize("how", ["default", "argument"])
def test_locked_beyond_busy_timeout(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "default":
        monkeypatch.setattr(database, "BUSY_TIMEOUT", 0.2)  # the default of Store()
    with Store(db_path, **({"busy_timeout": 0.2} if how == "argument" else {})) as store:
        assert store.busy_timeout == 0.2
        conv = store.create()
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
            started = time.monotonic()
            with pytest.raises(StoreError, match="locked by another process") as info:
                store.append(conv.id, [Message("user", "hi")])
            assert time.monotonic() - started < 5
            assert str(db_path) in str(info.value) and "waited 0.2 s" in str(info.value)
            other.execute("ROLLBACK")
        finally:
            other.close()
        store.append(conv.id, [Message("user", "hi")])  # no transaction was left open
        assert len(store.messages(conv.id)) == 1


# -- migration --------------------------------------------------------------------------------


def test_migrates_v1(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.executescript((DATA / "store_v1.sql").read_text(encoding="utf-8"))
    conn.close()

    with Store(db_path) as s:
        work = s.get("work")
        assert work == Conversation(
            "01HZX0V1AAAAAAAAAAAAAAAAAA", "work", "openai/gpt-4o", 1700000000.0, 1700000100.0
        )
        assert s.latest() == s.get("01HZX0V1BBBBBBBBBBBBBBBBBB")
        msgs = s.messages(work.id)
        image = {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}
        assert [m.content for m in msgs] == [
            "You are terse.",
            [{"type": "text", "text": "What is this?"}, image],
            "A single white pixel.",
            "Weather in Москва?",
            None,
        ]
        assert [m.created for m in msgs] == [
            1700000000.5,
            1700000001.0,
            1700000002.0,
            1700000003.0,
            1700000004.0,
        ]
        assert msgs[2].finish_reason == "stop" and msgs[2].model == "openai/gpt-4o"
        assert msgs[4].tool_calls == [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Moscow"}'},
            }
        ]
        for m in msgs:  # columns v1 did not have
            assert (m.tool_call_id, m.name, m.usage, m.partial) == (None, None, None, False)

        other = s.messages("01HZX0V1BBBBBBBBBBBBBBBBBB")
        assert other[0].content == '[{"type":"text","text":"not parts, just text"}]'
        assert other[1].content == '```json\n{"answer": 42}\n```' and other[1].prefill
        assert other[1].finish_reason == "length"
        assert other[2].content == [image, {"type": "text", "text": "Same picture again"}]

        s.append(work.id, [Message("user", "after migration")])
        assert len(s.messages(work.id)) == 6

    assert raw(db_path, "PRAGMA user_version") == [(store_mod.SCHEMA_VERSION,)]
    assert raw(db_path, "SELECT url FROM images") == [(PNG,)]
    assert raw(db_path, "SELECT count(*) FROM messages") == [(9,)]
    tables = {row[0] for row in raw(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert "messages_v1" not in tables


# -- concurrency: real processes --------------------------------------------------------------


def run_together(db_path: Path, mode: str, arg: str, n: int) -> list[str]:
    """n processes, each with its own Store, released at once (forked: see conftest.forked).

    ``append``: all open the file and append a pair to conversation ``arg`` at once.
    ``session``: all open a file that may not exist yet, and the named conversation, at once."""

    def worker(i: int) -> Callable[[], str]:
        def run() -> str:
            store = Store(db_path)
            conv_id = arg if mode == "append" else store.get_or_create(arg).id
            store.append(conv_id, [Message("user", f"q{i}"), Message("assistant", f"a{i}")])
            store.close()
            return conv_id

        return run

    return forked([worker(i) for i in range(n)])


def assert_each_pair_once(messages: list[Message], n: int) -> None:
    assert len(messages) == 2 * n
    seen = []
    for user, reply in zip(messages[::2], messages[1::2], strict=True):
        assert user.role == "user" and reply.role == "assistant"
        assert isinstance(user.content, str) and reply.content == "a" + user.content[1:]
        seen.append(user.content)
    assert sorted(seen) == sorted(f"q{i}" for i in range(n))


def test_concurrent_appends_from_processes(store: Store, db_path: Path) -> None:
    conv = store.create()
    run_together(db_path, "append", conv.id, 20)
    assert_each_pair_once(store.messages(conv.id), 20)
    seqs = raw(
        db_path, "SELECT seq FROM messages WHERE conversation_id = ? ORDER BY seq", (conv.id,)
    )
    assert [s for (s,) in seqs] == list(range(1, 41))


def test_concurrent_get_or_create_on_a_new_file(db_path: Path) -> None:
    ids = run_together(db_path, "session", "S", 8)
    assert len(set(ids)) == 1
    with Store(db_path) as s:
        assert [c.name for c in s.list()] == ["S"]
        assert_each_pair_once(s.messages(ids[0]), 8)


def test_tools_roundtrip_and_v2_migration(tmp_path: Path) -> None:
    db_path = tmp_path / "v2.db"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with Store(db_path) as store:
        conv = store.create(name="t")
        assert store.tools(conv.id) is None
        store.set_tools(conv.id, tools)
        assert store.tools(conv.id) == tools
        store.append(conv.id, [Message(role="user", content="hi")])
    # turn the file back into a v2 store: no tools column, user_version 2
    conn = sqlite3.connect(db_path)
    conn.execute("ALTER TABLE conversations DROP COLUMN tools")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store(db_path) as store:
        conv2 = store.get("t")
        assert conv2 is not None and store.tools(conv2.id) is None
        assert [m.content for m in store.messages(conv2.id)] == ["hi"]
        store.set_tools(conv2.id, tools)
        assert store.tools(conv2.id) == tools
    assert raw(db_path, "PRAGMA user_version") == [(store_mod.SCHEMA_VERSION,)]


# -- schema v4: a database written by the previous release -------------------------------------

V3_A, V3_B, V3_C = (f"01J0V3{c * 20}" for c in "ABC")


def open_v3(db_path: Path) -> Store:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.executescript((DATA / "store_v3.sql").read_text(encoding="utf-8"))
    conn.close()
    return Store(db_path)


def fts_ok(path: Path) -> None:
    """FTS5's own check that the index matches its content (raises when it does not)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    finally:
        conn.close()


def test_migrates_v3(db_path: Path) -> None:
    with open_v3(db_path) as s:
        assert [c.id for c in s.list()] == [V3_C, V3_B, V3_A]
        weather = s.resolve("weather")
        assert weather == Conversation(V3_A, "weather", "openai/gpt-4o", 1710000000.0, 1710000010.0)
        msgs = s.messages(V3_A)
        assert [m.role for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
        assert msgs[1].content == [
            {"type": "text", "text": "What is this? And the weather in Moscow?"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        ]
        assert msgs[2].tool_calls is not None and msgs[2].usage == {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
        }
        assert (msgs[3].tool_call_id, msgs[3].name) == ("call_1", "get_weather")
        assert s.tools(V3_A) == [
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ]
        partial = s.messages(V3_B)[1]
        assert partial.partial and partial.prefill and partial.content == '```json\n{"colour": "wh'
        # the old rows are searchable, the partial answer too; the tool result is not
        assert [(h.conversation.id, h.message) for h in s.search("moscow")] == [
            (V3_A, 5),
            (V3_A, 2),
        ]
        assert [(h.conversation.id, h.role, h.partial) for h in s.search("colour")] == [
            (V3_B, "assistant", True)
        ]
        assert s.search("temp_c") == []
        s.append(V3_C, [Message("user", "new after migration")])
        assert [h.conversation.id for h in s.search("migration")] == [V3_C]
    assert raw(db_path, "PRAGMA user_version") == [(store_mod.SCHEMA_VERSION,)]
    columns = [row[1] for row in raw(db_path, "PRAGMA table_info(messages)")]
    assert columns[0] == "id"
    tables = {row[0] for row in raw(db_path, "SELECT name FROM sqlite_master")}
    assert "messages_v3" not in tables and {"messages_fts", "message_bodies"} <= tables
    fts_ok(db_path)


def test_migrated_v1_is_searchable(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.executescript((DATA / "store_v1.sql").read_text(encoding="utf-8"))
    conn.close()
    with Store(db_path) as s:
        assert {h.message for h in s.search("pixel")} == {3}
        assert len(s.search("what")) == 1
    fts_ok(db_path)


def test_new_store_is_current(store: Store, db_path: Path) -> None:
    assert raw(db_path, "PRAGMA user_version") == [(store_mod.SCHEMA_VERSION,)]
    fts_ok(db_path)


# -- damaged rows (issue 14) ------------------------------------------------------------------


def damage(path: Path, conversation_id: str, seq: int, column: str, value: Any) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        f"UPDATE messages SET {column} = ? WHERE conversation_id = ? AND seq = ?",
        (value, conversation_id, seq),
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("content", '{"broken', "unreadable content"),
        ("content", "42", "content of the wrong kind"),
        ("content", b"\xff\xfe not utf-8", "unreadable content"),
        ("tool_calls", "[1, 2", "unreadable tool calls"),
        ("tool_calls", '{"a": 1}', "tool calls of the wrong kind"),
        ("usage", "not json", "unreadable usage"),
        ("usage", "[]", "usage of the wrong kind"),
    ],
)
def test_a_damaged_cell_spoils_only_its_conversation(
    store: Store, db_path: Path, column: str, value: Any, what: str
) -> None:
    good, bad = seeded(store), seeded(store)
    damage(db_path, bad.id, 3, column, value)
    with pytest.raises(StoreError) as info:
        store.messages(bad.id)
    message = str(info.value)
    assert f"conversation {bad.id} is damaged: message 3 has {what}" in message
    assert "\n" not in message and info.value.exit_code == ExitCode.CONFIG
    assert len(store.messages(good.id)) == 7
    assert {s.conversation.id for s in store.summaries()} == {good.id, bad.id}
    assert {h.conversation.id for h in store.search("q1")} == {good.id, bad.id}
    assert store.title(bad) == "q1"
    fork = store.fork(bad.id, 2)  # rows are copied, not read
    assert len(store.messages(fork.id)) == 2
    store.delete(bad.id)
    assert store.get(bad.id) is None
    fts_ok(db_path)


def test_a_missing_image_is_damage(store: Store, db_path: Path) -> None:
    conv = store.create()
    store.append(conv.id, [image_message("look")])
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM images")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="message 1 has missing image sha256:624fc0a006e3"):
        store.messages(conv.id)
    with pytest.raises(StoreError, match="damaged"):
        store.drop_last_reply(conv.id)


def test_damaged_tools_read_as_none(store: Store, db_path: Path) -> None:
    conv = store.create()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE conversations SET tools = '[broken' WHERE id = ?", (conv.id,))
    conn.commit()
    conn.close()
    assert store.tools(conv.id) is None


# -- references and titles --------------------------------------------------------------------


def test_resolve_every_form(store: Store) -> None:
    a = store.create(name="notes")
    b = store.create()
    assert store.resolve(a.id) == a
    assert store.resolve(a.id.lower()) == a
    assert store.resolve("notes") == a
    assert store.resolve("last") == b
    common = a.id[: next(i for i, (x, y) in enumerate(zip(a.id, b.id, strict=True)) if x != y)]
    assert store.resolve(a.id[: len(common) + 1]) == a
    assert store.resolve(b.id[: len(common) + 1].lower()) == b
    with pytest.raises(LlmostError) as info:
        store.resolve(common)
    assert info.value.exit_code == ExitCode.USAGE
    assert (
        f"{common!r} matches 2 conversations: {b.id} (untitled conversation), {a.id} (notes)"
        in str(info.value)
    )
    for ref in ("nope", "", "notes ", a.id + "X", "la st"):
        with pytest.raises(LlmostError, match="no conversation") as info:
            store.resolve(ref)
        assert info.value.exit_code == ExitCode.USAGE


def test_resolve_last_in_an_empty_store_and_names_first(store: Store) -> None:
    with pytest.raises(LlmostError, match="no last conversation") as info:
        store.resolve("last")
    assert info.value.exit_code == ExitCode.USAGE
    named = store.create(name="last")  # from before names were checked: the name wins
    store.create()
    assert store.resolve("last") == named


def test_ambiguous_lists_at_most_five(store: Store) -> None:
    for _ in range(8):
        store.create()
    with pytest.raises(LlmostError, match=r"matches 8 conversations: .* and 3 more"):
        store.resolve("0")


def test_title(store: Store) -> None:
    conv = store.create()
    assert store.title(conv) == "untitled conversation"
    store.append(
        conv.id,
        [
            Message("system", "be terse"),
            Message("user", [{"type": "image_url", "image_url": {"url": PNG}}]),
            Message("user", "second"),
        ],
    )
    assert store.title(conv) == "untitled conversation"  # the first question has no text
    other = store.create()
    words = "Why does\tthe cache\nmiss " + "very " * 20
    store.append(other.id, [Message("user", [{"type": "text", "text": words}])])
    title = store.title(other)
    assert title.startswith("Why does the cache miss very") and title.endswith("…")
    assert len(title) <= 50 and "\n" not in title
    store.rename(other.id, "cache")
    assert store.title(store.resolve("cache")) == "cache"


# -- fork and delete --------------------------------------------------------------------------


def test_fork_copies_and_stays_independent(store: Store, db_path: Path) -> None:
    other = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    conv = store.create(model="m")
    store.set_tools(conv.id, [{"type": "function"}])
    store.append(
        conv.id,
        [
            Message("system", "sys"),
            image_message("first", PNG),
            Message("assistant", "a1"),
            image_message("second", other),
            Message("assistant", "a2"),
        ],
    )
    fork = store.fork(conv.id, 3, name="early")
    assert (fork.name, fork.model) == ("early", "m")
    assert store.tools(fork.id) == [{"type": "function"}]
    assert store.messages(fork.id) == store.messages(conv.id)[:3]
    whole = store.fork(conv.id)
    assert store.messages(whole.id) == store.messages(conv.id)
    empty = store.fork(conv.id, 0)
    assert store.messages(empty.id) == []
    with pytest.raises(LlmostError, match="has 5 messages") as info:
        store.fork(conv.id, 6)
    assert info.value.exit_code == ExitCode.USAGE
    with pytest.raises(StoreError, match="already exists"):
        store.fork(conv.id, 1, name="early")
    with pytest.raises(StoreError, match="no conversation"):
        store.fork("nope", 1)

    store.append(fork.id, [Message("user", "only in the fork")])
    store.delete(conv.id)
    assert store.get(conv.id) is None
    assert [m.content for m in store.messages(fork.id)][1:] == [
        image_message("first").content,
        "a1",
        "only in the fork",
    ]
    assert sorted(u for (u,) in raw(db_path, "SELECT url FROM images")) == sorted([PNG, other])
    store.delete(whole.id)  # the last user of the gif
    assert raw(db_path, "SELECT url FROM images") == [(PNG,)]
    store.delete(fork.id)
    assert raw(db_path, "SELECT url FROM images") == []
    assert [h.conversation.id for h in store.search("fork")] == []
    fts_ok(db_path)


def test_delete_many_and_older_than(store: Store, db_path: Path) -> None:
    convs = [seeded(store) for _ in range(3)]
    conn = sqlite3.connect(db_path)
    for age, conv in zip((100, 50, 1), convs, strict=True):
        conn.execute("UPDATE conversations SET updated = ? WHERE id = ?", (1000 - age, conv.id))
    conn.commit()
    conn.close()
    assert [c.id for c in store.older_than(990)] == [convs[0].id, convs[1].id]
    assert store.delete_many([convs[0].id, convs[1].id, "nope"]) == 2
    assert [c.id for c in store.list()] == [convs[2].id]
    assert raw(db_path, "SELECT count(*) FROM messages") == [(7,)]
    store.delete("nope")  # nothing there: nothing to do
    fts_ok(db_path)


# -- summaries --------------------------------------------------------------------------------


def test_summaries(store: Store) -> None:
    a = seeded(store)
    b = store.create(name="empty", model="m")
    got = store.summaries()
    assert [(s.conversation.id, s.turns, s.messages, s.first_text) for s in got] == [
        (b.id, 0, 0, ""),
        (a.id, 2, 7, "q1"),
    ]
    assert [s.title for s in got] == ["empty", "q1"]
    assert len(store.summaries(1)) == 1 and len(store.summaries(None)) == 2


# -- search -----------------------------------------------------------------------------------


def test_search_words_phrases_prefixes(store: Store) -> None:
    conv = store.create()
    store.append(
        conv.id,
        [
            Message("system", "postgres expert"),  # not searched
            Message("user", "Why is the Postgres connection pool exhausted?"),
            Message("assistant", "The pool is too small; raise max_connections.", partial=True),
            Message("tool", "postgres log", tool_call_id="c"),  # not searched
            Message(
                "user", [{"type": "text", "text": "Café résumé"}, image_message("x").content[1]]
            ),
        ],
    )
    assert [h.message for h in store.search("postgres")] == [2]
    assert [h.message for h in store.search("POOL")] == [3, 2]
    assert [h.message for h in store.search("pool postgres")] == [2]
    assert [h.message for h in store.search('"connection pool"')] == [2]
    assert store.search('"pool connection"') == []
    assert [h.message for h in store.search("exhaust*")] == [2]
    assert [h.message for h in store.search("max_connections")] == [3]
    assert [h.message for h in store.search("cafe resume")] == [5]
    assert [h.message for h in store.search("pool", limit=1)] == [3]
    hit = store.search("pool")[0]
    assert hit.role == "assistant" and hit.partial
    marked = [hit.snippet[a:b] for a, b in hit.highlights]
    assert marked == ["pool"]
    for text in ("", "   ", "-- * ::"):
        with pytest.raises(LlmostError, match="nothing to search for") as info:
            store.search(text)
        assert info.value.exit_code == ExitCode.USAGE
    for odd in ('"pool', "a OR", "NOT pool", "col:umn", "pool)", "NEAR(pool"):
        store.search(odd)  # never an FTS5 syntax error


def test_search_marks_cannot_be_faked(store: Store) -> None:
    conv = store.create()
    store.append(conv.id, [Message("user", "\ue000fake\ue001 [bold]needle[/bold] \x1b[31m")])
    (hit,) = store.search("needle")
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["needle"]
    assert "\ue000fake\ue001" in hit.snippet


def test_search_index_follows_every_change(store: Store, db_path: Path) -> None:
    conv = seeded(store)
    store.append(conv.id, [Message("user", "zebra"), Message("assistant", "zebra answer")])
    assert len(store.search("zebra")) == 2
    store.drop_last_reply(conv.id)
    assert [h.role for h in store.search("zebra")] == ["user"]
    store.drop_last_exchange(conv.id)
    assert store.search("zebra") == []
    store.clear(conv.id)
    assert store.search("q1") == []
    # a write by another program: the triggers keep the index in step
    store.append(conv.id, [Message("user", "before")])
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE messages SET content = '\"after\"' WHERE conversation_id = ?", (conv.id,))
    conn.commit()
    conn.close()
    assert store.search("before") == [] and len(store.search("after")) == 1
    fts_ok(db_path)


# -- import -----------------------------------------------------------------------------------


def test_add_keeps_ids_names_and_times(store: Store) -> None:
    conv = Conversation("01J0V3AAAAAAAAAAAAAAAAAAAA", "notes", "m", 1000.0, 2000.0)
    msgs = [Message("user", "q", created=1500.0), Message("assistant", "a", created=1600.0)]
    first = store.add(conv, msgs, [{"type": "function"}])
    assert (first.conversation, first.status, first.renamed_from) == (conv, "added", None)
    assert store.messages(conv.id) == msgs and store.tools(conv.id) == [{"type": "function"}]
    again = store.add(conv, msgs)
    assert (again.conversation, again.status) == (conv, "present")
    changed = store.add(conv, [*msgs, Message("user", "more", created=1700.0)])
    assert changed.status == "copied" and changed.conversation.id != conv.id
    assert (changed.conversation.name, changed.renamed_from) == ("notes (2)", "notes")
    odd = store.add(Conversation("not-an-id", None, None, 0.0, 0.0), [Message("user", "x")])
    assert odd.status == "copied" and len(odd.conversation.id) == 26
    assert odd.conversation.created > 1e9  # no times in the file: now
    timed = store.add(Conversation("", None, None, 0.0, 0.0), [Message("user", "y", created=5.0)])
    assert (timed.conversation.created, timed.conversation.updated) == (5.0, 5.0)
    assert len(store.list()) == 4


# -- the index stays in step, whatever the sequence of changes ---------------------------------

VOCAB = ["alpha", "beta", "gamma", "delta", "omega"]
_words = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4).map(" ".join)
_content = st.one_of(
    _words,
    st.tuples(_words, st.booleans()).map(
        lambda x: (
            [{"type": "text", "text": x[0]}]
            + ([{"type": "image_url", "image_url": {"url": PNG}}] if x[1] else [])
        )
    ),
)
_message = st.builds(
    Message, role=st.sampled_from(["system", "user", "assistant", "tool"]), content=_content
)
_op = st.one_of(
    st.tuples(st.just("create")),
    st.tuples(st.just("append"), st.integers(0, 5), st.lists(_message, min_size=1, max_size=3)),
    st.tuples(st.just("undo"), st.integers(0, 5)),
    st.tuples(st.just("retry"), st.integers(0, 5)),
    st.tuples(st.just("clear"), st.integers(0, 5)),
    st.tuples(st.just("fork"), st.integers(0, 5), st.integers(0, 8)),
    st.tuples(st.just("delete"), st.integers(0, 5)),
)


@pytest.mark.no_cover  # a property over paths the example tests measure
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, max_size=12))
def test_search_matches_a_plain_scan_after_any_changes(tmp_path_factory: Any, ops: Any) -> None:
    path = tmp_path_factory.mktemp("ops") / "c.db"
    with Store(path) as store:
        ids: list[str] = []
        for op in ops:
            if op[0] == "create":
                ids.append(store.create().id)
                continue
            if not ids:
                continue
            conv = ids[op[1] % len(ids)]
            if op[0] == "append":
                store.append(conv, op[2])
            elif op[0] == "undo":
                store.drop_last_exchange(conv)
            elif op[0] == "retry":
                store.drop_last_reply(conv)
            elif op[0] == "clear":
                store.clear(conv)
            elif op[0] == "fork":
                count = len(store.messages(conv))
                ids.append(store.fork(conv, min(op[2], count)).id)
            elif op[0] == "delete":
                store.delete(conv)
                ids.remove(conv)
        for word in VOCAB:
            want = {
                (conv, n)
                for conv in ids
                for n, m in enumerate(store.messages(conv), 1)
                if m.role in ("user", "assistant") and word in text_of(m.content).split()
            }
            got = {(h.conversation.id, h.message) for h in store.search(word, limit=10_000)}
            assert got == want, word
        used = {
            d
            for conv in ids
            for m in store.messages(conv)
            for d in images.refs(images.collapse(m.content, {}))
        }
    assert {row[0] for row in raw(path, "SELECT sha256 FROM images")} == used
    fts_ok(path)
