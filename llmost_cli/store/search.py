"""Full-text search over questions and answers (the ``messages_fts`` index of schema.py).

The user's text is never handed to FTS5 as a query language: every word becomes a quoted
phrase (so ``-``, ``:``, ``OR`` or a stray quote are just text), all of them must appear, a
``"quoted phrase"`` must appear as such, and a trailing ``*`` matches words that start with it.
Hits come newest first: the index is walked backwards by message id, so a word found in every
message costs no more than a rare one.

Snippets are cut by FTS5 with start and end marks that carry a random nonce, so a message that
contains text looking like the marks cannot fake a highlight.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from llmost_cli.errors import UsageError

if TYPE_CHECKING:
    import sqlite3

SNIPPET_TOKENS = 24
_TERMS = re.compile(r'"([^"]*)"|(\S+)')


def match_expression(text: str) -> str:
    """The FTS5 query for what the user typed; a usage error when there is nothing to find."""
    terms = []
    for found in _TERMS.finditer(text):
        phrase, word = found.group(1), found.group(2)
        prefix = False
        if phrase is None:
            prefix = len(word) > 1 and word.endswith("*")
            phrase = word.rstrip("*") if prefix else word
        if not any(ch.isalnum() for ch in phrase):
            continue  # punctuation only: FTS5 would see no token at all
        terms.append('"' + phrase.replace('"', '""') + '"' + ("*" if prefix else ""))
    if not terms:
        raise UsageError(f"nothing to search for in {text!r}", hint="give a word or a number")
    return " AND ".join(terms)


def find(conn: sqlite3.Connection, text: str, limit: int) -> list[tuple[Any, ...]]:
    """Rows (conversation_id, seq, role, partial, created, snippet, highlights), newest first.

    ``snippet`` is plain text and ``highlights`` the (start, end) offsets of the matches in it.
    """
    import secrets

    query = match_expression(text)
    nonce = secrets.token_hex(8)
    start, end = f"\ue000{nonce}\ue001", f"\ue002{nonce}\ue003"
    rows = conn.execute(
        "SELECT m.conversation_id, m.seq, m.role, m.partial, m.created, f.snip FROM ("
        "  SELECT rowid AS id, snippet(messages_fts, 0, ?, ?, '…', ?) AS snip"
        "  FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT ?"
        ") AS f JOIN messages AS m ON m.id = f.id ORDER BY f.id DESC",
        (start, end, SNIPPET_TOKENS, query, limit),
    ).fetchall()
    return [(*row[:5], *split_snippet(row[5] or "", start, end)) for row in rows]


def split_snippet(raw: str, start: str, end: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The snippet without its marks, and where the marks were."""
    text: list[str] = []
    length = 0
    opened: int | None = None
    marks: list[tuple[int, int]] = []
    for piece in re.split(f"({re.escape(start)}|{re.escape(end)})", raw):
        if piece == start:
            opened = length
        elif piece == end:
            if opened is not None and length > opened:
                marks.append((opened, length))
            opened = None
        else:
            text.append(piece)
            length += len(piece)
    return "".join(text), tuple(marks)
