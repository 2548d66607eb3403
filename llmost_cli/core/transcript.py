"""Conversations as documents: titles, list and search entries, and the two export formats
that ``llmost conversations import`` reads back to the same messages. Pure: no SQLite, no
terminal, no files.

JSON: one object per conversation, one per line (JSON Lines; a single conversation is thus
one JSON document, and ``jq`` reads either)::

    {"format": "llmost-conversation", "version": 1,
     "id": "01J...", "name": null, "model": "openai/gpt-4o",
     "created": 1710000000.0, "updated": 1710000100.0,    # seconds since the epoch
     "tools": null,                                       # tool definitions last offered
     "messages": [{"role": "user", "content": "...",      # a string, a list of parts, null
                   "tool_calls": null, "tool_call_id": null, "name": null,
                   "prefill": false, "finish_reason": null, "usage": null,
                   "partial": false, "model": null, "created": 1710000001.0}, ...]}

Images are inline, as the ``data:`` URLs that were sent. The output is strict JSON: a number
that is not finite becomes null; DEL, C1 controls and lone surrogates are ``\\u`` escapes.
``import`` also takes a JSON array of such objects, and fills in missing fields (a
hand-written ``{"messages": [{"role": "user", "content": "hi"}]}`` imports).

Markdown, the other format, is in core/transcript_md.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmost_cli.core import imagerefs as images
from llmost_cli.core.messages import Conversation, Message
from llmost_cli.errors import UsageError

FORMAT = "llmost-conversation"
VERSION = 1

TITLE_LENGTH = 50
_SPACE = re.compile(r"\s+")
# What a name may not look like: an id (26 characters of Crockford's base 32) or `last`.
_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
RESERVED_NAMES = ("last",)

# -- text for people --------------------------------------------------------------------------

# C0 and C1 controls but newline and tab, DEL, and lone surrogates (undecodable bytes).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible_char(found: re.Match[str]) -> str:
    code = ord(found.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control characters made visible (``\\x1b``); newline and tab kept.

    An escape sequence is thereby inert: its ESC shows as ``\\x1b`` and the rest is text."""
    return _CONTROL.sub(_visible_char, text)


def one_line(text: str) -> str:
    """Every run of white space (newlines and tabs included) as one space, ends trimmed."""
    return _SPACE.sub(" ", text).strip()


def first_words(text: str, limit: int = TITLE_LENGTH) -> str:
    """The start of ``text`` on one line, at most ``limit`` characters, cut between words."""
    line = one_line(text)
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if line[limit - 1] != " " and space > limit // 2:  # the cut is inside a word
        cut = cut[:space]
    return cut.rstrip() + "…"


def title(conversation: Conversation, first_text: str | None) -> str:
    """A short human title, one line: the name, else the first words of the first question."""
    if conversation.name and one_line(conversation.name):
        return first_words(conversation.name)
    words = first_words(first_text or "")
    return words or "untitled conversation"


def text_of(content: Any) -> str:
    """The text of message content: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def title_of(conversation: Conversation, messages: Sequence[Message]) -> str:
    first = next((m for m in messages if m.role == "user"), None)
    return title(conversation, text_of(first.content) if first else None)


def check_name(name: str) -> str:
    """A name a conversation may take; a usage error saying why not."""
    if not one_line(name):
        raise UsageError("a conversation name cannot be empty")
    if not name.isprintable():
        raise UsageError(f"a conversation name must be one line of printable text: {name!r}")
    if name in RESERVED_NAMES or _ID.fullmatch(name.upper()):
        raise UsageError(
            f"{name!r} cannot be a name: it would read as a conversation reference",
            hint="choose a name that is not 'last' and does not look like an id",
        )
    return name


def looks_like_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``12h``, ``30d`` or ``2w``; a usage error otherwise."""
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise UsageError(
            f"{text!r} is not a duration", hint="write a number and a unit: 12h, 30d, 2w"
        )
    return float(found.group(1)) * _UNITS[found.group(2)]


def timestamp(seconds: float) -> str:
    """``2024-03-09 16:00 UTC``."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "?"


# -- list and search entries ------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One line of ``conversations list``."""

    conversation: Conversation
    turns: int  # questions asked: user messages
    messages: int
    first_text: str  # the start of the first question's text ("" when there is none)

    @property
    def title(self) -> str:
        return title(self.conversation, self.first_text)

    def to_json(self) -> dict[str, Any]:
        c = self.conversation
        return {
            "id": c.id,
            "name": c.name,
            "title": self.title,
            "model": c.model,
            "created": c.created,
            "updated": c.updated,
            "turns": self.turns,
            "messages": self.messages,
            "first_words": first_words(self.first_text, 200),
        }


@dataclass(frozen=True)
class Hit:
    """One message found by ``conversations search``."""

    conversation: Conversation
    title: str
    message: int  # its position in the conversation, from 1 (as `show` numbers them)
    role: str
    partial: bool
    created: float
    snippet: str  # plain text around the matches; "…" where it was cut
    highlights: tuple[tuple[int, int], ...]  # (start, end) of each match in ``snippet``

    def to_json(self) -> dict[str, Any]:
        c = self.conversation
        return {
            "conversation": c.id,
            "name": c.name,
            "title": self.title,
            "message": self.message,
            "role": self.role,
            "partial": self.partial,
            "created": self.created,
            "snippet": self.snippet,
            "highlights": [list(span) for span in self.highlights],
        }


# -- strict JSON ------------------------------------------------------------------------------


def finite(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\ud800-\udfff]")


def dumps(value: Any, *, pretty: bool = False) -> str:
    """Strict JSON text: no NaN or Infinity, valid UTF-8 once encoded, and no control
    character left raw, so it is safe on a terminal too (``json`` escapes C0 controls; DEL, C1
    controls and lone surrogates, which can only stand inside strings, get ``\\u`` escapes)."""
    text = json.dumps(
        finite(value), ensure_ascii=False, allow_nan=False, indent=2 if pretty else None
    )
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# -- documents: a conversation with its messages ----------------------------------------------


@dataclass
class Document:
    """A conversation as exported: what ``Store.add`` stores."""

    conversation: Conversation
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    # markdown: the messages hold image references until ``resolve``, with the file's images
    refs: bool = False
    images: dict[str, str] = field(default_factory=dict)

    def missing_images(self) -> set[str]:
        if not self.refs:
            return set()
        wanted: set[str] = set()
        for m in self.messages:
            wanted |= images.refs(m.content)
        return wanted - set(self.images)

    def resolve(self, known: Mapping[str, str]) -> None:
        """Replace image references by the data (``known`` adds to the file's own images);
        raises ``images.MissingImage``."""
        if not self.refs:
            return
        found = {**known, **self.images}
        for m in self.messages:
            m.content = images.expand(m.content, found)
        self.images, self.refs = {}, False


_MESSAGE_FIELDS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    # name: (kinds allowed besides None, default)
    "tool_calls": (list, None),
    "tool_call_id": (str, None),
    "name": (str, None),
    "finish_reason": (str, None),
    "usage": (dict, None),
    "model": (str, None),
}


def message_json(m: Message) -> dict[str, Any]:
    return {
        "role": m.role,
        "content": m.content,
        "tool_calls": m.tool_calls,
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        "prefill": m.prefill,
        "finish_reason": m.finish_reason,
        "usage": m.usage,
        "partial": m.partial,
        "model": m.model,
        "created": m.created,
    }


def to_json(
    conversation: Conversation,
    messages: Sequence[Message],
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON export object of one conversation (see the module docstring)."""
    c = conversation
    return {
        "format": FORMAT,
        "version": VERSION,
        "id": c.id,
        "name": c.name,
        "model": c.model,
        "created": c.created,
        "updated": c.updated,
        "tools": tools,
        "messages": [message_json(m) for m in messages],
    }


def problem(where: str, text: str) -> UsageError:
    return UsageError(
        f"{where}: {text}", hint="import reads what 'llmost conversations export' writes"
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def message_from(obj: Any, where: str) -> Message:
    if not isinstance(obj, dict):
        raise problem(where, "a message must be a JSON object")
    role = obj.get("role")
    if not isinstance(role, str) or not role:
        raise problem(where, "a message needs a role (system, user, assistant or tool)")
    content = obj.get("content")
    if content is not None and not isinstance(content, str | list):
        raise problem(where, "content must be a string, a list of parts or null")
    values: dict[str, Any] = {}
    for name, (kinds, default) in _MESSAGE_FIELDS.items():
        value = obj.get(name, default)
        if value is not None and not isinstance(value, kinds):
            raise problem(where, f"{name} has the wrong kind of value")
        values[name] = value
    for flag in ("prefill", "partial"):
        if not isinstance(obj.get(flag, False), bool):
            raise problem(where, f"{flag} must be true or false")
    created = obj.get("created", 0.0)
    if not _number(created) or created < 0:
        raise problem(where, "created must be a number of seconds")
    return Message(
        role=role,
        content=content,
        prefill=obj.get("prefill", False),
        partial=obj.get("partial", False),
        created=float(created),
        **values,
    )


def document_from(obj: Any, where: str, *, markdown: bool = False) -> Document:
    """A document from an export object (markdown: its messages come separately)."""
    if not isinstance(obj, dict):
        raise problem(where, "expected a conversation object")
    if obj.get("format", FORMAT) != FORMAT:
        raise problem(where, f"format {obj.get('format')!r} is not {FORMAT!r}")
    version = obj.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION:
        raise problem(where, f"written by a newer llmost (format version {version})")
    fields: dict[str, Any] = {}
    for name in ("id", "name", "model"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise problem(where, f"{name} must be a string or null")
        fields[name] = value
    for name in ("created", "updated"):
        value = obj.get(name, 0.0)
        if not _number(value) or value < 0:
            raise problem(where, f"{name} must be a number of seconds")
        fields[name] = float(value)
    tools = obj.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise problem(where, "tools must be a list or null")
    raw = [] if markdown else obj.get("messages")
    if not isinstance(raw, list):
        raise problem(where, "messages must be a list")
    messages = [message_from(m, f"{where}, message {i}") for i, m in enumerate(raw, 1)]
    conv = Conversation(
        fields["id"] or "", fields["name"], fields["model"], fields["created"], fields["updated"]
    )
    return Document(conv, messages, tools, refs=markdown)


def parse_json(text: str, source: str) -> list[Document]:
    """Documents from JSON export text: objects one after another (JSON Lines), or arrays."""
    decoder = json.JSONDecoder(parse_constant=lambda _: None)
    found: list[Any] = []
    pos = 0
    ws = re.compile(r"\s*")
    while True:
        pos = ws.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= len(text):
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source} is not valid JSON: {exc}") from None
        found.extend(value if isinstance(value, list) else [value])
    return [document_from(obj, f"{source}, conversation {i}") for i, obj in enumerate(found, 1)]
