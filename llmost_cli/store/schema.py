"""The store's tables, and the migrations that bring older files forward.

Schema versions (``PRAGMA user_version``):
  1  messages.content was plain text, or a JSON array of parts with images inline when
     ``multipart`` was set; no ``tool_call_id``, ``name``, ``usage``, ``partial`` columns.
  2  content is always JSON (a string or a list of parts), images are deduplicated.
  3  conversations.tools: the tool definitions last offered, resent by ``--tool-result``.
  4  full-text search. messages gets an ``id INTEGER PRIMARY KEY`` (a rowid that ``VACUUM``
     keeps), and ``messages_fts``, an FTS5 index of the text of user and assistant messages
     (partial answers included). The index stores no copy of the text: its content table is
     the view ``message_bodies``, and triggers on ``messages`` keep it in step with every
     insert, delete and update, whoever makes them.
  5  attached texts are deduplicated: ``-f`` texts are cut out of the content and kept once in
     ``texts`` (keyed by sha256, the text as a JSON string); ``messages.texts`` holds the
     references that splice them back (core/textrefs.py) and ``message_texts`` which message
     uses which text. The index covers the expanded message: its body is the content's text
     followed by the attached texts (order does not matter to matching; the text is in the
     file once, its words are indexed for each message that carries it).

Every function here runs inside the caller's transaction: no ``executescript`` (it commits).
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import suppress
from typing import Any

SCHEMA_VERSION = 5

# The roles whose text is searchable: questions and answers.
SEARCHED_ROLES = "('user', 'assistant')"


def body(column: str) -> str:
    """SQL for the searchable text of a ``content`` cell: the string, or its text parts joined
    by newlines. A cell that is not valid JSON (damaged) is taken as it is, never an error.

    The parts are walked with a recursive CTE, not ``json_each``: FTS5 reads its content
    table with virtual tables forbidden, and ``json_each`` is one."""
    part = f"json_extract({column}, '$[' || n || ']"
    return (
        f"CASE WHEN json_valid({column}) THEN CASE json_type({column}) "
        f"WHEN 'text' THEN json_extract({column}, '$') "
        "WHEN 'array' THEN (WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i "
        f"WHERE n + 1 < json_array_length({column})) "
        f"SELECT group_concat({part}.text'), char(10)) FROM i WHERE {part}.type') = 'text') "
        f"END ELSE {column} END"
    )


def searched(content: str, refs: str) -> str:
    """SQL for the indexed text of a message: ``body(content)``, then a newline and each text
    its references name. Damaged references or texts are skipped or taken as they are."""
    text = "CASE WHEN json_valid(t.text) THEN json_extract(t.text, '$') ELSE t.text END"
    attached = (
        f"(WITH RECURSIVE j(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM j "
        f"WHERE n + 1 < json_array_length({refs})) "
        f"SELECT group_concat((SELECT {text} FROM texts AS t "
        f"WHERE t.sha256 = json_extract({refs}, '$[' || n || '][2]')), char(10)) FROM j)"
    )
    return (
        f"({body(content)}) || coalesce(char(10) || CASE WHEN json_valid({refs}) "
        f"AND json_type({refs}) = 'array' THEN {attached} END, '')"
    )


TABLES = (
    """CREATE TABLE IF NOT EXISTS conversations (
        id      TEXT PRIMARY KEY,
        name    TEXT UNIQUE,
        model   TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        tools   TEXT                       -- JSON: tool definitions last offered
    )""",
    "CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated)",
    """CREATE TABLE IF NOT EXISTS messages (
        id              INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq             INTEGER NOT NULL,
        role            TEXT NOT NULL,
        content         TEXT,              -- JSON: a string or a list of content parts
        tool_calls      TEXT,              -- JSON
        tool_call_id    TEXT,
        name            TEXT,
        prefill         INTEGER NOT NULL DEFAULT 0,
        finish_reason   TEXT,
        usage           TEXT,              -- JSON
        partial         INTEGER NOT NULL DEFAULT 0,
        model           TEXT,
        created         REAL NOT NULL,
        texts           TEXT,              -- JSON: references to attached texts, or NULL
        UNIQUE (conversation_id, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS images (
        sha256  TEXT PRIMARY KEY,
        url     TEXT NOT NULL
    )""",
    # which message uses which image, so deleting messages can delete images nobody uses
    """CREATE TABLE IF NOT EXISTS message_images (
        conversation_id TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        sha256          TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq, sha256)
    )""",
    "CREATE INDEX IF NOT EXISTS message_images_sha256 ON message_images (sha256)",
    """CREATE TABLE IF NOT EXISTS texts (
        sha256  TEXT PRIMARY KEY,
        text    TEXT NOT NULL              -- JSON: a string
    )""",
    # which message uses which text, as message_images
    """CREATE TABLE IF NOT EXISTS message_texts (
        conversation_id TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        sha256          TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq, sha256)
    )""",
    "CREATE INDEX IF NOT EXISTS message_texts_sha256 ON message_texts (sha256)",
    # The index reads texts when a message is deleted: one still in use must stay.
    """CREATE TRIGGER IF NOT EXISTS texts_in_use BEFORE DELETE ON texts
        WHEN EXISTS (SELECT 1 FROM message_texts WHERE sha256 = old.sha256) BEGIN
            SELECT RAISE(ABORT, 'an attached text still in use cannot be deleted');
        END""",
)

_NEW, _OLD = searched("new.content", "new.texts"), searched("old.content", "old.texts")

SEARCH = (
    f"""CREATE VIEW IF NOT EXISTS message_bodies AS
        SELECT id, {searched("content", "texts")} AS body FROM messages
        WHERE role IN {SEARCHED_ROLES}""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5 (
        body, content = 'message_bodies', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    )""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages
        WHEN new.role IN {SEARCHED_ROLES} BEGIN
            INSERT INTO messages_fts (rowid, body) VALUES (new.id, {_NEW});
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages
        WHEN old.role IN {SEARCHED_ROLES} BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, body)
                VALUES ('delete', old.id, {_OLD});
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, body)
                SELECT 'delete', old.id, {_OLD}
                WHERE old.role IN {SEARCHED_ROLES};
            INSERT INTO messages_fts (rowid, body)
                SELECT new.id, {_NEW} WHERE new.role IN {SEARCHED_ROLES};
        END""",
)


def create(conn: sqlite3.Connection) -> None:
    """Every table, index, view and trigger that is missing."""
    for statement in (*TABLES, *SEARCH):
        conn.execute(statement)


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a store at ``version`` (0: a new, empty file) to ``SCHEMA_VERSION``."""
    if version == 0:
        create(conn)
    if version == 1:
        _migrate_v1(conn)
    if version in (1, 2):
        _migrate_v2(conn)
    if version in (1, 2, 3):
        _migrate_v3(conn)
    if version in (1, 2, 3, 4):
        _migrate_v4(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


from llmost_cli.store.rows import MESSAGE_COLUMNS  # noqa: E402  # rows never imports schema


def _migrate_v4(conn: sqlite3.Connection) -> None:
    """v4 -> v5: the texts tables, messages.texts, and the index's body that reads them.

    Rows already stored keep their texts inline (which parts were attachments is not known)
    and ``texts`` is NULL for them, so their indexed body is the same as before: the index
    needs no rebuild."""
    if "texts" not in _columns(conn, "messages"):
        conn.execute("ALTER TABLE messages ADD COLUMN texts TEXT")
    for trigger in ("messages_fts_insert", "messages_fts_delete", "messages_fts_update"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("DROP VIEW IF EXISTS message_bodies")
    create(conn)


def _migrate_v3(conn: sqlite3.Connection) -> None:
    """v3 -> v4: messages get a stable integer id; the full-text index is built."""
    if "id" not in _columns(conn, "messages"):
        conn.execute("ALTER TABLE messages RENAME TO messages_v3")
        create(conn)  # the new messages table, with its triggers: the copy fills the index
        conn.execute(
            f"INSERT INTO messages (conversation_id, seq, {MESSAGE_COLUMNS}) "
            f"SELECT conversation_id, seq, {MESSAGE_COLUMNS} FROM messages_v3 ORDER BY rowid"
        )
        conn.execute("DROP TABLE messages_v3")
    else:  # migrated from v1 just now, with the current tables: make sure, then reindex
        create(conn)
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """v2 -> v3: conversations remember the tools they were offered."""
    if "tools" not in _columns(conn, "conversations"):
        conn.execute("ALTER TABLE conversations ADD COLUMN tools TEXT")


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """v1 -> v2: content becomes JSON, inline data: images move to ``images``."""
    from llmost_cli.core.messages import Message
    from llmost_cli.store.rows import insert_message

    conn.execute("ALTER TABLE messages RENAME TO messages_v1")
    create(conn)
    rows = conn.execute(
        "SELECT conversation_id, seq, role, content, multipart, tool_calls, prefill, "
        "finish_reason, model, created FROM messages_v1 ORDER BY conversation_id, seq"
    ).fetchall()
    for conv_id, seq, role, text, multipart, tool_calls, prefill, finish, model, created in rows:
        content: Any = text
        if multipart and text is not None:
            with suppress(ValueError):  # damaged parts: keep what was there, as text
                content = json.loads(text)
        calls = None
        if tool_calls is not None:
            with suppress(ValueError):
                calls = json.loads(tool_calls)
        msg = Message(
            role=role,
            content=content,
            tool_calls=calls,
            prefill=bool(prefill),
            finish_reason=finish,
            model=model,
            created=created,
        )
        insert_message(conn, conv_id, seq, msg, created or time.time())
    conn.execute("DROP TABLE messages_v1")
