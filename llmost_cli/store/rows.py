"""Messages to rows and back: JSON cells, image and text references, damaged cells."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llmost_cli.core import textrefs
from llmost_cli.core.messages import Message
from llmost_cli.store import images, texts
from llmost_cli.store.cells import dumps

if TYPE_CHECKING:
    import sqlite3

MESSAGE_COLUMNS = (
    "role, content, tool_calls, tool_call_id, name, prefill, finish_reason, usage, partial, "
    "model, created"
)
# What a message row holds: MESSAGE_COLUMNS (the columns every schema since v4 has), then the
# references to its attached texts (v5).
ROW_COLUMNS = f"{MESSAGE_COLUMNS}, texts"
_REFS = 11

__all__ = [
    "MESSAGE_COLUMNS",
    "ROW_COLUMNS",
    "Damaged",
    "dumps",
    "insert_message",
    "loads",
    "message_from_row",
    "parse_refs",
]


class Damaged(ValueError):
    """A stored cell that cannot be read back as what it should be."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _cell(row: Sequence[Any], index: int, what: str, kinds: tuple[type, ...]) -> Any:
    try:
        value = loads(row[index])
    except (ValueError, TypeError):
        raise Damaged(f"unreadable {what}") from None
    if value is not None and not isinstance(value, kinds):
        raise Damaged(f"{what} of the wrong kind ({type(value).__name__})")
    return value


def parse_content(row: Sequence[Any]) -> Any:
    """The content cell of a ``MESSAGE_COLUMNS`` row, parsed; raises ``Damaged``."""
    return _cell(row, 1, "content", (str, list))


def parse_refs(row: Sequence[Any]) -> list[textrefs.Ref]:
    """The text references of a ``ROW_COLUMNS`` row (none: an empty list); raises ``Damaged``."""
    return _cell(row, _REFS, "attachment references", (list,)) or []


def message_from_row(
    row: Sequence[Any],
    found: Mapping[str, str],
    content: Any,
    known: Mapping[str, str] | None = None,
) -> Message:
    """A message from a ``ROW_COLUMNS`` row whose content was parsed with ``parse_content``;
    ``found`` maps image digests to URLs, ``known`` text digests to texts. Raises ``Damaged``."""
    refs = parse_refs(row)
    try:
        content = images.expand(content, found)
        content = textrefs.expand(content, refs, known or {})
    except images.MissingImage as exc:
        raise Damaged(f"missing image sha256:{exc.digest[:12]}") from None
    except textrefs.MissingText as exc:
        raise Damaged(f"missing attached text sha256:{exc.digest[:12]}") from None
    except textrefs.BadRefs as exc:
        raise Damaged(f"attachment references that do not fit ({exc})") from None
    attached = tuple((known or {})[key] for key in textrefs.digests(refs))
    return Message(
        role=row[0],
        content=content,
        tool_calls=_cell(row, 2, "tool calls", (list,)),
        tool_call_id=row[3],
        name=row[4],
        prefill=bool(row[5]),
        finish_reason=row[6],
        usage=_cell(row, 7, "usage", (dict,)),
        partial=bool(row[8]),
        model=row[9],
        created=row[10],
        attached=attached,
    )


def insert_message(
    conn: sqlite3.Connection, conversation_id: str, seq: int, msg: Message, now: float
) -> None:
    found: dict[str, str] = {}
    content = images.collapse(msg.content, found)
    kept: dict[str, str] = {}
    content, refs = textrefs.collapse(content, msg.attached, kept)
    texts.store(conn, kept)  # first: the index reads them when the row is inserted
    conn.execute(
        f"INSERT INTO messages (conversation_id, seq, {ROW_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            conversation_id,
            seq,
            msg.role,
            dumps(content),
            dumps(msg.tool_calls),
            msg.tool_call_id,
            msg.name,
            int(msg.prefill),
            msg.finish_reason,
            dumps(msg.usage),
            int(msg.partial),
            msg.model,
            msg.created or now,
            dumps(refs or None),
        ),
    )
    images.link(conn, conversation_id, seq, found)
    texts.link(conn, conversation_id, seq, kept)
