"""SQLite conversation store.

One file, opened by many llmost processes at once (several terminals, scripts in a loop), so:
WAL mode, a bounded wait for the write lock (``busy_timeout``), and every write in a single
``BEGIN IMMEDIATE`` transaction that computes what it needs (the next ``seq``, whether a name
exists) inside the transaction.

Images sent as ``data:`` URLs are stored once, keyed by their sha256 (images.py), and so are
the texts attached with ``-f`` (texts.py); loading expands the references back, so callers
always see the content they stored.

Each conversation owns its rows: a fork copies the messages it holds, so deleting one
conversation never changes another, and an image or a text is deleted only when no message
uses it.

A damaged cell (content, tool calls or usage that is not the JSON it should be) makes only its
conversation unreadable: ``messages`` raises a ``StoreError`` naming it; listing, searching,
forking and deleting still work. The tables and their versions are in schema.py.
"""

from __future__ import annotations

import builtins
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmost_cli.core import textrefs
from llmost_cli.core.messages import Conversation, Message
from llmost_cli.errors import StoreError, UsageError
from llmost_cli.store import images, rows, schema, texts
from llmost_cli.store.database import BUSY_TIMEOUT, Database, decode_cell
from llmost_cli.store.rows import ROW_COLUMNS, Damaged, dumps, loads
from llmost_cli.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    # imported where they are used: `ask` and `chat` open the store on every run
    from llmost_cli.core import transcript

__all__ = ["BUSY_TIMEOUT", "SCHEMA_VERSION", "Imported", "Store", "new_id"]

AMBIGUOUS_SHOWN = 5  # candidates named when a reference is ambiguous

_SELECT_CONVERSATION = "SELECT id, name, model, created, updated FROM conversations"
# The first words of the first question; with attached texts cut out of it, also that
# message's id, so that ``texts.first_text`` can put them back.
_FIRST_TEXT = (
    f"(SELECT substr({schema.body('m.content')}, 1, 300) FROM messages AS m "
    "WHERE m.conversation_id = c.id AND m.role = 'user' ORDER BY m.seq LIMIT 1), "
    "(SELECT CASE WHEN m.texts IS NULL THEN NULL ELSE m.id END FROM messages AS m "
    "WHERE m.conversation_id = c.id AND m.role = 'user' ORDER BY m.seq LIMIT 1)"
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A ULID: 26 characters, sortable by creation time, 80 random bits."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclass(frozen=True)
class Imported:
    """What ``Store.add`` did with one conversation."""

    conversation: Conversation
    status: str  # "added", "present" (the same conversation was there), "copied" (new id)
    renamed_from: str | None = None  # the name it had, when that name was taken


class Store(Database):
    """The conversation store in one SQLite file. Not shared between threads.

    ``busy_timeout``: how long a write waits for another process's transaction (seconds)
    before failing with a ``StoreError``; storing an answer that is already on the screen
    may want a short wait.
    """

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

    def resolve(self, ref: str) -> Conversation:
        """The conversation ``ref`` names: an id, a name, ``last``, or a unique id prefix
        (any case). Unknown or ambiguous: a ``UsageError`` (listing the candidates)."""
        found = self.get(ref)
        if found is None and ref == "last":
            found = self.latest()
            if found is None:
                raise UsageError("there is no last conversation: the store is empty")
        if found is None and ref.isalnum() and ref.isascii():
            found = self._by_prefix(ref.upper())
        if found is None:
            raise UsageError(
                f"no conversation {ref!r}",
                hint="'llmost conversations list' shows ids and names",
            )
        return found

    def _by_prefix(self, prefix: str) -> Conversation | None:
        # ids are ASCII: every id that starts with the prefix sorts between it and prefix + "~"
        sql = (
            f"{_SELECT_CONVERSATION} WHERE id >= ? AND id < ? "
            "ORDER BY updated DESC, rowid DESC LIMIT ?"
        )
        with self._errors():
            found = self._db().execute(sql, (prefix, prefix + "~", 1000)).fetchall()
        if len(found) <= 1:
            return Conversation(*found[0]) if found else None
        shown = [Conversation(*row) for row in found[:AMBIGUOUS_SHOWN]]
        from llmost_cli.core.transcript import printable

        names = ", ".join(f"{c.id} ({printable(self.title(c))})" for c in shown)
        more = len(found) - len(shown)
        if more:
            names += f" and {more}{'+' if len(found) == 1000 else ''} more"
        raise UsageError(
            f"{prefix!r} matches {len(found)}{'+' if len(found) == 1000 else ''} "
            f"conversations: {names}",
            hint="give more characters of the id",
        )

    def title(self, conversation: Conversation) -> str:
        """A short human title: its name, else the first words of its first question."""
        from llmost_cli.core import transcript

        sql = f"SELECT {_FIRST_TEXT} FROM conversations AS c WHERE c.id = ?"
        with self._errors():
            conn = self._db()
            row = conn.execute(sql, (conversation.id,)).fetchone()
            first = texts.first_text(conn, row) if row else None
        return transcript.title(conversation, first)

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
                "UPDATE conversations SET tools = ? WHERE id = ?", (dumps(tools), conversation_id)
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
        try:
            value = loads(row[0]) if row else None
        except ValueError:
            return None  # damaged: as if none had been offered
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

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation, its messages, and the images nobody else uses."""
        self.delete_many([conversation_id])

    def delete_many(self, conversation_ids: Sequence[str]) -> int:
        """Delete these conversations in one transaction; return how many there were."""
        deleted = 0
        with self._write() as conn:
            for conversation_id in conversation_ids:
                _delete_from(conn, conversation_id, 0)
                cur = conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
                deleted += cur.rowcount
        return deleted

    def older_than(self, cutoff: float) -> builtins.list[Conversation]:
        """Conversations last updated before ``cutoff`` (seconds since the epoch), oldest first."""
        sql = f"{_SELECT_CONVERSATION} WHERE updated < ? ORDER BY updated, rowid"
        with self._errors():
            found = self._db().execute(sql, (cutoff,)).fetchall()
        return [Conversation(*row) for row in found]

    def fork(
        self, conversation_id: str, at: int | None = None, name: str | None = None
    ) -> Conversation:
        """A new conversation holding copies of the first ``at`` messages (None: all), with
        the model and the tools offered. A ``UsageError`` when there are fewer than ``at``."""
        now = time.time()
        new = new_id()
        with self._write() as conn:
            row = conn.execute(
                "SELECT model, tools, (SELECT count(*) FROM messages WHERE conversation_id = ?) "
                "FROM conversations WHERE id = ?",
                (conversation_id, conversation_id),
            ).fetchone()
            if row is None:
                raise StoreError(f"no conversation {conversation_id!r} in {self.path}")
            model, tools, count = row
            at = count if at is None else at
            if not 0 <= at <= count:
                raise UsageError(
                    f"cannot fork at message {at}: the conversation has {count} "
                    f"message{'s' * (count != 1)}"
                )
            try:
                conn.execute(
                    "INSERT INTO conversations (id, name, model, created, updated, tools) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (new, name, model, now, now, tools),
                )
            except sqlite3.IntegrityError:
                raise self._name_taken(name) from None
            last = conn.execute(
                "SELECT seq FROM messages WHERE conversation_id = ? ORDER BY seq LIMIT 1 OFFSET ?",
                (conversation_id, at - 1),
            ).fetchone()
            if at and last:
                copied = (new, conversation_id, last[0])
                conn.execute(
                    f"INSERT INTO messages (conversation_id, seq, {ROW_COLUMNS}) "
                    f"SELECT ?, seq, {ROW_COLUMNS} FROM messages "
                    "WHERE conversation_id = ? AND seq <= ? ORDER BY seq",
                    copied,
                )
                texts.copy_links(conn, *copied)
                conn.execute(
                    "INSERT INTO message_images (conversation_id, seq, sha256) "
                    "SELECT ?, seq, sha256 FROM message_images "
                    "WHERE conversation_id = ? AND seq <= ?",
                    copied,
                )
        return Conversation(id=new, name=name, model=model, created=now, updated=now)

    def _name_taken(self, name: str | None) -> StoreError:
        return StoreError(
            f"a conversation named {name!r} already exists",
            hint="choose another name, or /load it",
        )

    def name_taken(self, name: str) -> bool:
        with self._errors():
            sql = "SELECT 1 FROM conversations WHERE name = ?"
            return self._db().execute(sql, (name,)).fetchone() is not None

    def _touch(self, conn: sqlite3.Connection, conversation_id: str, now: float) -> None:
        sql = "UPDATE conversations SET updated = ? WHERE id = ?"
        self._require(conn.execute(sql, (now, conversation_id)).rowcount, conversation_id)

    def _require(self, rowcount: int, conversation_id: str) -> None:
        if rowcount == 0:
            raise StoreError(f"no conversation {conversation_id!r} in {self.path}")

    # -- listing and searching ----------------------------------------------------------------

    def list(self, limit: int = 50) -> builtins.list[Conversation]:
        """Conversations, most recently updated first."""
        sql = f"{_SELECT_CONVERSATION} ORDER BY updated DESC, rowid DESC LIMIT ?"
        with self._errors():
            found = self._db().execute(sql, (limit,)).fetchall()
        return [Conversation(*row) for row in found]

    def summaries(self, limit: int | None = 20) -> builtins.list[transcript.Summary]:
        """Conversations with their counts and first words, most recently updated first;
        ``limit`` None: all of them. Damaged cells do not stop it."""
        from llmost_cli.core import transcript

        sql = (
            "SELECT c.id, c.name, c.model, c.created, c.updated, "
            "(SELECT count(*) FROM messages AS m WHERE m.conversation_id = c.id "
            "AND m.role = 'user'), "
            "(SELECT count(*) FROM messages AS m WHERE m.conversation_id = c.id), "
            f"{_FIRST_TEXT} FROM conversations AS c "
            "ORDER BY c.updated DESC, c.rowid DESC LIMIT ?"
        )
        with self._errors():
            conn = self._db()
            found = conn.execute(sql, (-1 if limit is None else limit,)).fetchall()
            return [
                transcript.Summary(
                    Conversation(*row[:5]), row[5], row[6], texts.first_text(conn, row[7:])
                )
                for row in found
            ]

    def search(self, text: str, limit: int = 20) -> builtins.list[transcript.Hit]:
        """Questions and answers (partial ones too) that contain every word of ``text``,
        newest first. An empty query is a ``UsageError``."""
        from llmost_cli.core import transcript
        from llmost_cli.store import search

        with self._errors():
            conn = self._db()
            found = search.find(conn, text, limit)
            convs: dict[str, tuple[Conversation, str]] = {}
            hits = []
            for conversation_id, seq, role, partial, created, snippet, marks in found:
                if conversation_id not in convs:
                    row = conn.execute(
                        f"SELECT c.id, c.name, c.model, c.created, c.updated, {_FIRST_TEXT} "
                        "FROM conversations AS c WHERE c.id = ?",
                        (conversation_id,),
                    ).fetchone()
                    conv = Conversation(*row[:5])
                    first = texts.first_text(conn, row[5:])
                    convs[conversation_id] = (conv, transcript.title(conv, first))
                conv, title = convs[conversation_id]
                (position,) = conn.execute(
                    "SELECT count(*) FROM messages WHERE conversation_id = ? AND seq <= ?",
                    (conversation_id, seq),
                ).fetchone()
                hits.append(
                    transcript.Hit(
                        conv, title, position, role, bool(partial), created, snippet, marks
                    )
                )
        return hits

    def ids(self) -> builtins.list[str]:
        """Every conversation id, oldest first (by creation)."""
        with self._errors():
            sql = "SELECT id FROM conversations ORDER BY created, rowid"
            return [row[0] for row in self._db().execute(sql)]

    # -- messages -----------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> builtins.list[Message]:
        """The messages, in order; a ``StoreError`` saying the conversation is damaged when
        one of its cells cannot be read."""
        with self._errors():
            conn = self._db()
            found = conn.execute(
                f"SELECT {ROW_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
            contents: builtins.list[Any] = []
            wanted: set[str] = set()
            wanted_texts: set[str] = set()
            for row in found:
                try:
                    contents.append(rows.parse_content(row))
                    wanted_texts.update(textrefs.digests(rows.parse_refs(row)))
                except Damaged as exc:
                    raise self._damaged(conversation_id, len(contents) + 1, exc) from None
                wanted |= images.refs(contents[-1])
            known = images.load(conn, wanted)
            known_texts = texts.load(conn, wanted_texts)
        out: builtins.list[Message] = []
        for row, content in zip(found, contents, strict=True):
            try:
                out.append(rows.message_from_row(row, known, content, known_texts))
            except Damaged as exc:
                raise self._damaged(conversation_id, len(out) + 1, exc) from None
        return out

    def _damaged(self, conversation_id: str, index: int, exc: Damaged) -> StoreError:
        return StoreError(
            f"conversation {conversation_id} is damaged: message {index} has {exc.what}",
            hint="other conversations are not affected; "
            f"'llmost conversations rm {conversation_id}' deletes this one",
        )

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
                rows.insert_message(conn, conversation_id, seq, msg, now)

    def add(
        self,
        conversation: Conversation,
        messages: Sequence[Message],
        tools: builtins.list[dict[str, Any]] | None = None,
    ) -> Imported:
        """Store a whole conversation as it was (``import``): its id, name and times are kept
        when they are free. The same id with the same messages: nothing is written
        ("present"). The id taken by another conversation, or not an id: a new id ("copied").
        A name taken by another: " (2)", " (3)"... is added (``renamed_from``)."""
        from llmost_cli.core import transcript

        with self._write() as conn:
            present = conn.execute(
                f"{_SELECT_CONVERSATION} WHERE id = ?", (conversation.id,)
            ).fetchone()
            if present is not None:
                try:
                    if self.messages(conversation.id) == list(messages):
                        return Imported(Conversation(*present), "present")
                except StoreError:
                    pass  # damaged: certainly not the same
            conv_id = conversation.id
            status = "added"
            if present is not None or not transcript.looks_like_id(conv_id):
                conv_id, status = new_id(), "copied"
            name, renamed = _free_name(conn, conversation.name), None
            if name != conversation.name:
                renamed = conversation.name
            # a hand-written file may have no times: the messages', else now
            now = time.time()
            created = conversation.created or min((m.created for m in messages), default=0) or now
            updated = conversation.updated or max((m.created for m in messages), default=0)
            updated = max(updated, created)
            conn.execute(
                "INSERT INTO conversations (id, name, model, created, updated, tools) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (conv_id, name, conversation.model, created, updated, dumps(tools)),
            )
            for seq, msg in enumerate(messages, start=1):
                rows.insert_message(conn, conv_id, seq, msg, now)
        stored = Conversation(conv_id, name, conversation.model, created, updated)
        return Imported(stored, status, renamed)

    def image_urls(self, digests: Sequence[str]) -> dict[str, str]:
        """The URLs of the stored images among ``digests``."""
        with self._errors():
            return images.load(self._db(), digests)

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
        try:
            with self._write() as conn:
                start = _last_user_seq(conn, conversation_id)
                if start is None:
                    return None
                last_user = conn.execute(
                    f"SELECT {ROW_COLUMNS} FROM messages WHERE conversation_id = ? AND seq = ?",
                    (conversation_id, start),
                ).fetchone()
                content = rows.parse_content(last_user)
                known = images.load(conn, images.refs(content))
                known_texts = texts.load(conn, textrefs.digests(rows.parse_refs(last_user)))
                message = rows.message_from_row(last_user, known, content, known_texts)
                _delete_from(conn, conversation_id, start + 1)
        except Damaged as exc:
            (position,) = (
                self._db()
                .execute(
                    "SELECT count(*) FROM messages WHERE conversation_id = ? AND seq <= ?",
                    (conversation_id, start),
                )
                .fetchone()
            )
            raise self._damaged(conversation_id, position, exc) from None
        return message

    def clear(self, conversation_id: str) -> None:
        """Delete every message, the system prompt included."""
        with self._write() as conn:
            self._touch(conn, conversation_id, time.time())
            _delete_from(conn, conversation_id, 0)


def recent_refs(path: Path, limit: int = 50) -> builtins.list[str]:
    """Words for completing a REF: ``last``, then for each of the ``limit`` most recently
    updated conversations its name, or its id when it has no name that a shell could take as
    one word. Never creates, migrates or waits long for the file; raises on a broken one."""
    if not path.is_file():
        return []
    conn = sqlite3.connect(path, timeout=0.5)
    try:
        conn.text_factory = decode_cell
        conn.execute("PRAGMA query_only = ON")
        found = conn.execute(
            "SELECT id, name FROM conversations ORDER BY updated DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
    finally:
        conn.close()
    words = ["last"] if found else []
    for conversation_id, name in found:
        ok = isinstance(name, str) and name != "last" and re.fullmatch(r"[\w.@%+=:,/-]+", name)
        words.append(name if ok else conversation_id)
    return words


def _free_name(conn: sqlite3.Connection, name: str | None) -> str | None:
    if name is None:
        return None
    candidate, n = name, 1
    while conn.execute("SELECT 1 FROM conversations WHERE name = ?", (candidate,)).fetchone():
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def _last_user_seq(conn: sqlite3.Connection, conversation_id: str) -> int | None:
    sql = "SELECT max(seq) FROM messages WHERE conversation_id = ? AND role = 'user'"
    seq: int | None = conn.execute(sql, (conversation_id,)).fetchone()[0]
    return seq


def _delete_from(conn: sqlite3.Connection, conversation_id: str, start: int) -> int:
    """Delete messages with seq >= start, and the images and texts no other message uses."""
    images.unlink_from(conn, conversation_id, start)
    used = texts.unlink_from(conn, conversation_id, start)
    sql = "DELETE FROM messages WHERE conversation_id = ? AND seq >= ?"
    deleted = conn.execute(sql, (conversation_id, start)).rowcount
    texts.drop_unused(conn, used)  # after the rows: deleting them reads the texts (the index)
    return deleted
