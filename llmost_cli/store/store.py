"""SQLite conversation store.

One file, opened by many llmost processes at once (several terminals, scripts in a loop), so:
WAL mode, a busy timeout, and every write in a single ``BEGIN IMMEDIATE`` transaction that
computes what it needs (the next ``seq``, whether a name exists) inside the transaction.

Images sent as ``data:`` URLs are stored once, in ``images`` keyed by the sha256 of the URL,
and the message content keeps a reference (``llmost-image:sha256:<hex>``) in place of the URL.
Loading expands the references back, so callers always see the content they stored. The URL
text is stored as given, never decoded or re-encoded.

Schema versions (``PRAGMA user_version``):
  1  messages.content was plain text, or a JSON array of parts with images inline when
     ``multipart`` was set; no ``tool_call_id``, ``name``, ``usage``, ``partial`` columns.
  2  content is always JSON (a string or a list of parts), images are deduplicated.
  3  conversations.tools: the tool definitions last offered, resent by ``--tool-result``.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from llmost_cli.core.messages import Conversation, Message
from llmost_cli.errors import StoreError
from llmost_cli.paths import ensure_private_dir

SCHEMA_VERSION = 3
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction

_REF = "llmost-image:sha256:"
# A non-data URL that happens to start with our scheme is escaped so it cannot be taken for a ref.
_RAW = "llmost-image:raw:"
_SCHEME = "llmost-image:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id      TEXT PRIMARY KEY,
    name    TEXT UNIQUE,
    model   TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    tools   TEXT                       -- JSON: tool definitions last offered
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated);
CREATE TABLE IF NOT EXISTS messages (
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
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS images (
    sha256  TEXT PRIMARY KEY,
    url     TEXT NOT NULL
);
-- which message uses which image, so deleting messages can delete images nobody uses
CREATE TABLE IF NOT EXISTS message_images (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq, sha256)
);
CREATE INDEX IF NOT EXISTS message_images_sha256 ON message_images (sha256);
"""

_SELECT_CONVERSATION = "SELECT id, name, model, created, updated FROM conversations"
_MESSAGE_COLUMNS = (
    "role, content, tool_calls, tool_call_id, name, prefill, finish_reason, usage, partial, "
    "model, created"
)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A ULID: 26 characters, sortable by creation time, 80 random bits."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates (undecodable stdin bytes) survive only as \\u escapes
        text = json.dumps(value, separators=(",", ":"))
    return text


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _collapse_url(url: Any, images: dict[str, str]) -> Any:
    if not isinstance(url, str):
        return url
    if url.startswith("data:"):
        import hashlib  # only when there are images: importing OpenSSL costs milliseconds

        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
        images[digest] = url
        return _REF + digest
    if url.startswith(_SCHEME):
        return _RAW + url
    return url


def _collapse(content: Any, images: dict[str, str]) -> Any:
    """Content with data: image URLs replaced by references; ``images`` collects digest -> URL."""
    if not isinstance(content, list):
        return content
    out: list[Any] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url" and "image_url" in part:
            inner = part["image_url"]
            part = dict(part)
            if isinstance(inner, dict):
                if "url" in inner:
                    part["image_url"] = {**inner, "url": _collapse_url(inner["url"], images)}
            else:
                part["image_url"] = _collapse_url(inner, images)
        out.append(part)
    return out


def _refs(content: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                inner = part.get("image_url")
                url = inner.get("url") if isinstance(inner, dict) else inner
                if isinstance(url, str) and url.startswith(_REF):
                    found.add(url[len(_REF) :])
    return found


def _expand_url(url: Any, images: dict[str, str]) -> Any:
    if isinstance(url, str):
        if url.startswith(_REF):
            return images[url[len(_REF) :]]
        if url.startswith(_RAW):
            return url[len(_RAW) :]
    return url


def _expand(content: Any, images: dict[str, str]) -> Any:
    if not isinstance(content, list):
        return content
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url" and "image_url" in part:
            inner = part["image_url"]
            if isinstance(inner, dict):
                if "url" in inner:
                    inner["url"] = _expand_url(inner["url"], images)
            else:
                part["image_url"] = _expand_url(inner, images)
    return content


class Store:
    """The conversation store in one SQLite file. Not shared between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.busy_timeout = BUSY_TIMEOUT
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    # -- opening, errors, transactions -------------------------------------------------------

    def _error(self, exc: BaseException) -> StoreError:
        where = f"conversation store {self.path}"
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            return StoreError(
                f"cannot open {where}: {reason}",
                hint=f"check the permissions of {self.path} and {self.path.parent}",
            )
        if isinstance(exc, UnicodeEncodeError):
            return StoreError(f"cannot save text that is not valid UTF-8 in {where}")
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreError(
                f"{where} is locked by another process (waited {self.busy_timeout:g} s)",
                hint="try again when the other llmost has finished",
            )
        if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return StoreError(
                f"{where} is damaged: {exc}",
                hint="move the file aside and llmost will start a new one",
            )
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            return StoreError(
                f"cannot write {where}: {exc}",
                hint=f"check the permissions of {self.path} and {self.path.parent}",
            )
        if code == sqlite3.SQLITE_FULL:
            return StoreError(f"cannot write {where}: disk full", hint="free some disk space")
        return StoreError(f"{where}: {exc}")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # misuse of the API (closed store, wrong bindings): a bug, not a user problem
        except (sqlite3.DatabaseError, OSError, UnicodeEncodeError) as exc:
            raise self._error(exc) from exc

    def _open(self) -> sqlite3.Connection:
        with self._errors():
            ensure_private_dir(self.path.parent)
            # create the file ourselves so that it is 0600 from the start; SQLite gives the
            # -wal and -shm files the same mode
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_mode & 0o077:
                    os.fchmod(fd, 0o600)
            except OSError:
                pass  # not our file to change
            finally:
                os.close(fd)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                self._setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys = ON")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._set_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses no committed row
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        self._check_version(version)
        with self._transaction(conn):
            # re-read: another process may have created or migrated the file meanwhile
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if version == 0:
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                if tables:
                    raise StoreError(
                        f"{self.path} is a SQLite database but not an llmost conversation store",
                        hint="move it aside or point llmost at another data directory",
                    )
                _create_schema(conn)
            if version == 1:
                _migrate_v1(conn)
            if version in (1, 2):
                _migrate_v2(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"conversation store {self.path} was written by a newer llmost "
                f"(schema {version}, this version knows {SCHEMA_VERSION})",
                hint="upgrade llmost",
            )

    @staticmethod
    def _set_wal(conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock; retry while other processes
        # open the same new file rather than fail on the first "database is locked".
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._errors(), self._transaction(self._db()) as conn:
            yield conn

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the conversation store is closed")
        return self._conn

    def set_busy_timeout(self, seconds: float) -> None:
        """How long a write waits for another process's transaction before giving up."""
        with self._errors():
            self._db().execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        self.busy_timeout = seconds

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conversations ------------------------------------------------------------------------

    def create(self, name: str | None = None, model: str | None = None) -> Conversation:
        now = time.time()
        conv = Conversation(id=new_id(), name=name, model=model, created=now, updated=now)
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO conversations (id, name, model, created, updated) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (conv.id, name, model, now, now),
                )
            except sqlite3.IntegrityError:
                raise self._name_taken(name) from None
        return conv

    def get(self, id_or_name: str) -> Conversation | None:
        """The conversation with this id, else the one with this name."""
        with self._errors():
            conn = self._db()
            for column in ("id", "name"):
                sql = f"{_SELECT_CONVERSATION} WHERE {column} = ?"
                row = conn.execute(sql, (id_or_name,)).fetchone()
                if row:
                    return Conversation(*row)
        return None

    def get_or_create(self, name: str, model: str | None = None) -> Conversation:
        """The conversation named ``name``, created if missing (safe when processes race)."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO conversations (id, name, model, created, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                (new_id(), name, model, now, now),
            )
            row = conn.execute(f"{_SELECT_CONVERSATION} WHERE name = ?", (name,)).fetchone()
        return Conversation(*row)

    def set_tools(self, conversation_id: str, tools: builtins.list[dict[str, Any]] | None) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE conversations SET tools = ? WHERE id = ?", (_dumps(tools), conversation_id)
            )
            self._require(cur.rowcount, conversation_id)

    def tools(self, conversation_id: str) -> builtins.list[dict[str, Any]] | None:
        """The tool definitions last offered in this conversation, if any."""
        with self._errors():
            row = (
                self._db()
                .execute("SELECT tools FROM conversations WHERE id = ?", (conversation_id,))
                .fetchone()
            )
        value = _loads(row[0]) if row else None
        return value if isinstance(value, builtins.list) else None

    def latest(self) -> Conversation | None:
        """The most recently updated conversation."""
        found = self.list(limit=1)
        return found[0] if found else None

    def rename(self, conversation_id: str, name: str) -> None:
        with self._write() as conn:
            try:
                cur = conn.execute(
                    "UPDATE conversations SET name = ?, updated = ? WHERE id = ?",
                    (name, time.time(), conversation_id),
                )
            except sqlite3.IntegrityError:
                raise self._name_taken(name) from None
            self._require(cur.rowcount, conversation_id)

    def set_model(self, conversation_id: str, model: str | None) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE conversations SET model = ? WHERE id = ?", (model, conversation_id)
            )
            self._require(cur.rowcount, conversation_id)

    def _name_taken(self, name: str | None) -> StoreError:
        return StoreError(
            f"a conversation named {name!r} already exists",
            hint="choose another name, or /load it",
        )

    def _touch(self, conn: sqlite3.Connection, conversation_id: str, now: float) -> None:
        sql = "UPDATE conversations SET updated = ? WHERE id = ?"
        self._require(conn.execute(sql, (now, conversation_id)).rowcount, conversation_id)

    def _require(self, rowcount: int, conversation_id: str) -> None:
        if rowcount == 0:
            raise StoreError(f"no conversation {conversation_id!r} in {self.path}")

    # -- messages -----------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> builtins.list[Message]:
        with self._errors():
            conn = self._db()
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
            contents = [_loads(row[1]) for row in rows]
            wanted: set[str] = set()
            for content in contents:
                wanted |= _refs(content)
            images = self._load_images(conn, wanted)
        return [
            _row_to_message(row, images, content)
            for row, content in zip(rows, contents, strict=True)
        ]

    @staticmethod
    def _load_images(conn: sqlite3.Connection, digests: set[str]) -> dict[str, str]:
        images: dict[str, str] = {}
        ordered = sorted(digests)
        for start in range(0, len(ordered), 500):  # stay under SQLite's bound-variable limit
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            images.update(
                conn.execute(f"SELECT sha256, url FROM images WHERE sha256 IN ({marks})", chunk)
            )
        return images

    def append(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Add messages at the end, in one transaction, and bump the conversation's ``updated``."""
        if not messages:
            return
        now = time.time()
        with self._write() as conn:
            self._touch(conn, conversation_id, now)
            (last,) = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            for seq, msg in enumerate(messages, start=last + 1):
                _insert_message(conn, conversation_id, seq, msg, now)

    def drop_last_exchange(self, conversation_id: str) -> int:
        """/undo: delete the last user message and everything after it; return how many."""
        with self._write() as conn:
            start = _last_user_seq(conn, conversation_id)
            if start is None:
                return 0
            return _delete_from(conn, conversation_id, start)

    def drop_last_reply(self, conversation_id: str) -> Message | None:
        """/retry: delete the assistant and tool messages after the last user message.

        Returns that user message (the one to answer again), or None when there is none.
        """
        with self._write() as conn:
            start = _last_user_seq(conn, conversation_id)
            if start is None:
                return None
            last_user = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq = ?",
                (conversation_id, start),
            ).fetchone()
            content = _loads(last_user[1])
            images = self._load_images(conn, _refs(content))
            _delete_from(conn, conversation_id, start + 1)
        return _row_to_message(last_user, images, content)

    def clear(self, conversation_id: str) -> None:
        """Delete every message, the system prompt included."""
        with self._write() as conn:
            self._touch(conn, conversation_id, time.time())
            _delete_from(conn, conversation_id, 0)

    def list(self, limit: int = 50) -> builtins.list[Conversation]:
        """Conversations, most recently updated first."""
        sql = f"{_SELECT_CONVERSATION} ORDER BY updated DESC, rowid DESC LIMIT ?"
        with self._errors():
            rows = self._db().execute(sql, (limit,)).fetchall()
        return [Conversation(*row) for row in rows]


def _row_to_message(row: Sequence[Any], images: dict[str, str], content: Any) -> Message:
    """A message from a ``_MESSAGE_COLUMNS`` row whose content was already parsed."""
    return Message(
        role=row[0],
        content=_expand(content, images),
        tool_calls=_loads(row[2]),
        tool_call_id=row[3],
        name=row[4],
        prefill=bool(row[5]),
        finish_reason=row[6],
        usage=_loads(row[7]),
        partial=bool(row[8]),
        model=row[9],
        created=row[10],
    )


def _insert_message(
    conn: sqlite3.Connection, conversation_id: str, seq: int, msg: Message, now: float
) -> None:
    images: dict[str, str] = {}
    content = _collapse(msg.content, images)
    conn.execute(
        f"INSERT INTO messages (conversation_id, seq, {_MESSAGE_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            conversation_id,
            seq,
            msg.role,
            _dumps(content),
            _dumps(msg.tool_calls),
            msg.tool_call_id,
            msg.name,
            int(msg.prefill),
            msg.finish_reason,
            _dumps(msg.usage),
            int(msg.partial),
            msg.model,
            msg.created or now,
        ),
    )
    _store_images(conn, conversation_id, seq, images)


def _last_user_seq(conn: sqlite3.Connection, conversation_id: str) -> int | None:
    sql = "SELECT max(seq) FROM messages WHERE conversation_id = ? AND role = 'user'"
    seq: int | None = conn.execute(sql, (conversation_id,)).fetchone()[0]
    return seq


def _store_images(
    conn: sqlite3.Connection, conversation_id: str, seq: int, images: dict[str, str]
) -> None:
    for digest, url in images.items():
        conn.execute("INSERT OR IGNORE INTO images (sha256, url) VALUES (?, ?)", (digest, url))
        conn.execute(
            "INSERT OR IGNORE INTO message_images (conversation_id, seq, sha256) VALUES (?, ?, ?)",
            (conversation_id, seq, digest),
        )


def _delete_from(conn: sqlite3.Connection, conversation_id: str, start: int) -> int:
    """Delete messages with seq >= start, and the images no other message uses."""
    where = "WHERE conversation_id = ? AND seq >= ?"
    digests = {
        row[0]
        for row in conn.execute(
            f"SELECT sha256 FROM message_images {where}", (conversation_id, start)
        )
    }
    conn.execute(f"DELETE FROM message_images {where}", (conversation_id, start))
    for digest in digests:
        conn.execute(
            "DELETE FROM images WHERE sha256 = ? AND NOT EXISTS "
            "(SELECT 1 FROM message_images WHERE sha256 = ?)",
            (digest, digest),
        )
    return conn.execute(f"DELETE FROM messages {where}", (conversation_id, start)).rowcount


def _create_schema(conn: sqlite3.Connection) -> None:
    # executescript would COMMIT the open transaction, so run the statements one by one
    for statement in _SCHEMA.split(";"):
        lines = [ln for ln in statement.splitlines() if not ln.strip().startswith("--")]
        if "".join(lines).strip():
            conn.execute("\n".join(lines))


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """v2 -> v3: conversations remember the tools they were offered."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(conversations)")}
    if "tools" not in columns:
        conn.execute("ALTER TABLE conversations ADD COLUMN tools TEXT")


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """v1 -> v2: content becomes JSON, inline data: images move to ``images``."""
    conn.execute("ALTER TABLE messages RENAME TO messages_v1")
    _create_schema(conn)
    rows = conn.execute(
        "SELECT conversation_id, seq, role, content, multipart, tool_calls, prefill, "
        "finish_reason, model, created FROM messages_v1 ORDER BY conversation_id, seq"
    ).fetchall()
    for conv_id, seq, role, text, multipart, tool_calls, prefill, finish, model, created in rows:
        content: Any = text
        if multipart and text is not None:
            with suppress(ValueError):  # damaged parts: keep what was there, as text
                content = json.loads(text)
        msg = Message(
            role=role,
            content=content,
            tool_calls=_loads(tool_calls),
            prefill=bool(prefill),
            finish_reason=finish,
            model=model,
            created=created,
        )
        _insert_message(conn, conv_id, seq, msg, created or time.time())
    conn.execute("DROP TABLE messages_v1")
