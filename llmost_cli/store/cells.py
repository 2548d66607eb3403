"""JSON in SQLite cells: compact, UTF-8 where it can be, lone surrogates kept as escapes."""

from __future__ import annotations

import json
from typing import Any


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
