"""Messages to rows and back: JSON cells, image references, and cells that are damaged."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llmost_cli.core.messages import Message
from llmost_cli.store import images

if TYPE_CHECKING:
    import sqlite3

MESSAGE_COLUMNS = (
    "role, content, tool_calls, tool_call_id, name, prefill, finish_reason, usage, partial, "
    "model, created"
)

__all__ = ["MESSAGE_COLUMNS", "Damaged", "dumps", "insert_message", "loads", "message_from_row"]


class Damaged(ValueError):
    """A stored cell that cannot be read back as what it should be."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def dumps(value: Any) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates (undecodable stdin bytes) survive only as \\u escapes
        text = json.dumps(value, separators=(",", ":"))
    return text


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


def message_from_row(row: Sequence[Any], found: Mapping[str, str], content: Any) -> Message:
    """A message from a ``MESSAGE_COLUMNS`` row whose content was parsed with
    ``parse_content``; ``found`` maps image digests to URLs. Raises ``Damaged``."""
    try:
        content = images.expand(content, found)
    except images.MissingImage as exc:
        raise Damaged(f"missing image sha256:{exc.digest[:12]}") from None
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
    )


def insert_message(
    conn: sqlite3.Connection, conversation_id: str, seq: int, msg: Message, now: float
) -> None:
    found: dict[str, str] = {}
    content = images.collapse(msg.content, found)
    conn.execute(
        f"INSERT INTO messages (conversation_id, seq, {MESSAGE_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ),
    )
    images.link(conn, conversation_id, seq, found)
