"""Images stored once: ``data:`` URLs in message content become references to a content hash.

A ``data:`` image URL in a content part is replaced by ``llmost-image:sha256:<hex>`` (the
sha256 of the URL text, which is stored as given, never decoded or re-encoded). Any other URL
that happens to start with ``llmost-image:`` is escaped as ``llmost-image:raw:<url>`` so that it
cannot be taken for a reference. ``expand`` undoes both. The functions on content are pure (the
markdown export uses them too); the others keep the ``images`` and ``message_images`` tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

from llmost_cli.core.imagerefs import (
    RAW as RAW,
)
from llmost_cli.core.imagerefs import (
    REF as REF,
)
from llmost_cli.core.imagerefs import (
    SCHEME as SCHEME,
)
from llmost_cli.core.imagerefs import (
    MissingImage as MissingImage,
)
from llmost_cli.core.imagerefs import (
    collapse as collapse,
)
from llmost_cli.core.imagerefs import (
    digest as digest,
)
from llmost_cli.core.imagerefs import (
    expand as expand,
)
from llmost_cli.core.imagerefs import (
    refs as refs,
)


def load(conn: sqlite3.Connection, digests: Iterable[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    ordered = sorted(set(digests))
    for start in range(0, len(ordered), 500):  # stay under SQLite's bound-variable limit
        chunk = ordered[start : start + 500]
        marks = ",".join("?" * len(chunk))
        images.update(
            conn.execute(f"SELECT sha256, url FROM images WHERE sha256 IN ({marks})", chunk)
        )
    return images


def link(
    conn: sqlite3.Connection, conversation_id: str, seq: int, images: Mapping[str, str]
) -> None:
    """Store the images of one message, and record that the message uses them."""
    for key, url in images.items():
        conn.execute("INSERT OR IGNORE INTO images (sha256, url) VALUES (?, ?)", (key, url))
        conn.execute(
            "INSERT OR IGNORE INTO message_images (conversation_id, seq, sha256) VALUES (?, ?, ?)",
            (conversation_id, seq, key),
        )


def unlink_from(conn: sqlite3.Connection, conversation_id: str, start: int) -> None:
    """Forget which images messages with seq >= start use; delete images nobody else uses."""
    where = "WHERE conversation_id = ? AND seq >= ?"
    digests = {
        row[0]
        for row in conn.execute(
            f"SELECT sha256 FROM message_images {where}", (conversation_id, start)
        )
    }
    conn.execute(f"DELETE FROM message_images {where}", (conversation_id, start))
    for key in digests:
        conn.execute(
            "DELETE FROM images WHERE sha256 = ? AND NOT EXISTS "
            "(SELECT 1 FROM message_images WHERE sha256 = ?)",
            (key, key),
        )
