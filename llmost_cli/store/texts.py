"""Attached texts stored once: the ``texts`` and ``message_texts`` tables (schema v5).

The functions on content are in core/textrefs.py. Order matters here, because the full-text
index reads ``texts`` (schema.searched): a message's texts are stored before its row is
inserted, and deleted (when nobody else uses them) only after its row is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llmost_cli.core import textrefs
from llmost_cli.store.cells import dumps

if TYPE_CHECKING:
    import sqlite3


def load(conn: sqlite3.Connection, digests: Iterable[str]) -> dict[str, str]:
    """digest -> text for the stored texts among ``digests``; a damaged cell is left out
    (its messages then read as damaged, naming the missing text)."""
    import json

    found: dict[str, str] = {}
    ordered = sorted(set(digests))
    for start in range(0, len(ordered), 500):  # stay under SQLite's bound-variable limit
        chunk = ordered[start : start + 500]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT sha256, text FROM texts WHERE sha256 IN ({marks})"
        for key, cell in conn.execute(sql, chunk):
            try:
                text = json.loads(cell)
            except (ValueError, TypeError):
                continue
            if isinstance(text, str):
                found[key] = text
    return found


def store(conn: sqlite3.Connection, texts: Mapping[str, str]) -> None:
    """Keep these texts (before the message that refers to them is inserted)."""
    for key, text in texts.items():
        conn.execute("INSERT OR IGNORE INTO texts (sha256, text) VALUES (?, ?)", (key, dumps(text)))


def link(conn: sqlite3.Connection, conversation_id: str, seq: int, digests: Iterable[str]) -> None:
    """Record that the message at ``seq`` uses these texts."""
    for key in digests:
        conn.execute(
            "INSERT OR IGNORE INTO message_texts (conversation_id, seq, sha256) VALUES (?, ?, ?)",
            (conversation_id, seq, key),
        )


def copy_links(conn: sqlite3.Connection, new: str, old: str, last: int) -> None:
    """A fork uses the texts of the messages it copies (seq <= last)."""
    conn.execute(
        "INSERT INTO message_texts (conversation_id, seq, sha256) "
        "SELECT ?, seq, sha256 FROM message_texts WHERE conversation_id = ? AND seq <= ?",
        (new, old, last),
    )


def unlink_from(conn: sqlite3.Connection, conversation_id: str, start: int) -> set[str]:
    """Forget which texts messages with seq >= start use; the digests they used, for ``drop``
    once the messages themselves are deleted."""
    where = "WHERE conversation_id = ? AND seq >= ?"
    digests = {
        row[0]
        for row in conn.execute(
            f"SELECT sha256 FROM message_texts {where}", (conversation_id, start)
        )
    }
    conn.execute(f"DELETE FROM message_texts {where}", (conversation_id, start))
    return digests


def drop_unused(conn: sqlite3.Connection, digests: Iterable[str]) -> None:
    """Delete those of these texts that no message uses any more."""
    for key in digests:
        conn.execute(
            "DELETE FROM texts WHERE sha256 = ? AND NOT EXISTS "
            "(SELECT 1 FROM message_texts WHERE sha256 = ?)",
            (key, key),
        )


def first_text(conn: sqlite3.Connection, columns: Sequence[Any], limit: int = 300) -> str:
    """The start of a first question from the two columns store.py selects: its text with
    the attached texts cut out, and its id when it has some (then they are put back)."""
    import json

    from llmost_cli.core.transcript import text_of

    cut, message_id = columns[0], columns[1]
    if message_id is not None:
        sql = "SELECT content, texts FROM messages WHERE id = ?"
        row = conn.execute(sql, (message_id,)).fetchone()
        try:
            content: Any = json.loads(row[0])
            refs = json.loads(row[1])
            known = load(conn, textrefs.digests(refs))
            return text_of(textrefs.expand(content, refs, known))[:limit]
        except (ValueError, TypeError, LookupError):
            pass  # damaged: the text as it is stored
    return cut if isinstance(cut, str) else ""
