"""The short schema form of ``--schema``: ``'name, age int, tags list'``.

Fields are separated by commas or newlines. Each is ``NAME [TYPE][: description]``; TYPE is
one of str (default), int, float, bool, list (a list of strings). Every field is required.
"""

from __future__ import annotations

import re
from typing import Any

from llmost_cli.errors import UsageError

_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
    "array": {"type": "array", "items": {"type": "string"}},
}
_FIELD = re.compile(r"^([A-Za-z_][\w-]*)(?:\s+([A-Za-z]+))?\s*(?::\s*(.*))?$")


def parse_short_schema(text: str) -> dict[str, Any]:
    separator = "\n" if "\n" in text.strip() else ","
    properties: dict[str, Any] = {}
    for raw in text.split(separator):
        item = raw.strip()
        if not item:
            continue
        match = _FIELD.match(item)
        if not match:
            raise UsageError(
                f"--schema: cannot read field {item!r}; "
                "use 'name, age int, tags list' or a JSON schema (inline or a file)"
            )
        name, type_name, description = match.groups()
        type_key = (type_name or "str").lower()
        if type_key not in _TYPES:
            allowed = "str, int, float, bool, list"
            raise UsageError(f"--schema: unknown type {type_name!r} for {name!r} ({allowed})")
        prop = dict(_TYPES[type_key])
        if description:
            prop["description"] = description.strip()
        properties[name] = prop
    if not properties:
        raise UsageError("--schema is empty")
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
