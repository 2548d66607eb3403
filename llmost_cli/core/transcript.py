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

Markdown: what a person reads (headings per message, the text as written, images, tool
calls), with the exact data in HTML comments that renderers hide::

    # Weather in Moscow
    <!-- llmost:conversation {"format":"llmost-conversation","version":1,"id":"01J…",…} -->
    ## 2. User
    <!-- llmost:message {"role":"user","parts":2,"created":1710000002.0} -->
    <!-- llmost:text {"type":"text","text":null} -->
    What is this?
    <!-- /llmost -->
    <!-- llmost:part {"type":"image_url","image_url":{"url":"llmost-image:sha256:624f…"}} -->
    ![image][llmost-image-624fc0a006e3]
    …
    <!-- llmost:image {"sha256":"624f…"} -->
    [llmost-image-624fc0a006e3]: data:image/png;base64,iVBORw0…

A message's text follows its ``llmost:message`` (or ``llmost:text``) comment verbatim, up to
the end line ``<!-- /llmost -->``. Content is never escaped or fenced, so headings, fences and
lines that look like these comments round-trip: when a text contains the end line itself, the
conversation declares another (``"end": 1`` for ``<!-- /llmost 1 -->``). Lines outside the
texts that are not ``<!-- llmost:`` comments (headings, the rendered tool calls, notes a
person adds) are ignored by ``import``; the comments are the truth. A text holding a lone
surrogate (bytes of input that were not UTF-8) goes in its comment as JSON instead, so the file
is always valid UTF-8. A file that went through a CRLF conversion reads as it was written.

Images are written by reference, ``llmost-image:sha256:<hex>`` as in the store, and the image
data goes once per conversation at its end, as markdown reference definitions (which renderers
that show ``data:`` URLs display). So the file reads cleanly, still imports on a machine that
never saw the images, and the same picture sent ten times is written once. (A file whose
image data was cut off still imports where the store already has those images.)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
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


_SURROGATE = re.compile("[\ud800-\udfff]")
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


def _problem(where: str, text: str) -> UsageError:
    return UsageError(
        f"{where}: {text}", hint="import reads what 'llmost conversations export' writes"
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _message_from(obj: Any, where: str) -> Message:
    if not isinstance(obj, dict):
        raise _problem(where, "a message must be a JSON object")
    role = obj.get("role")
    if not isinstance(role, str) or not role:
        raise _problem(where, "a message needs a role (system, user, assistant or tool)")
    content = obj.get("content")
    if content is not None and not isinstance(content, str | list):
        raise _problem(where, "content must be a string, a list of parts or null")
    values: dict[str, Any] = {}
    for name, (kinds, default) in _MESSAGE_FIELDS.items():
        value = obj.get(name, default)
        if value is not None and not isinstance(value, kinds):
            raise _problem(where, f"{name} has the wrong kind of value")
        values[name] = value
    for flag in ("prefill", "partial"):
        if not isinstance(obj.get(flag, False), bool):
            raise _problem(where, f"{flag} must be true or false")
    created = obj.get("created", 0.0)
    if not _number(created) or created < 0:
        raise _problem(where, "created must be a number of seconds")
    return Message(
        role=role,
        content=content,
        prefill=obj.get("prefill", False),
        partial=obj.get("partial", False),
        created=float(created),
        **values,
    )


def _document_from(obj: Any, where: str, *, markdown: bool = False) -> Document:
    """A document from an export object (markdown: its messages come separately)."""
    if not isinstance(obj, dict):
        raise _problem(where, "expected a conversation object")
    if obj.get("format", FORMAT) != FORMAT:
        raise _problem(where, f"format {obj.get('format')!r} is not {FORMAT!r}")
    version = obj.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION:
        raise _problem(where, f"written by a newer llmost (format version {version})")
    fields: dict[str, Any] = {}
    for name in ("id", "name", "model"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise _problem(where, f"{name} must be a string or null")
        fields[name] = value
    for name in ("created", "updated"):
        value = obj.get(name, 0.0)
        if not _number(value) or value < 0:
            raise _problem(where, f"{name} must be a number of seconds")
        fields[name] = float(value)
    tools = obj.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _problem(where, "tools must be a list or null")
    raw = [] if markdown else obj.get("messages")
    if not isinstance(raw, list):
        raise _problem(where, "messages must be a list")
    messages = [_message_from(m, f"{where}, message {i}") for i, m in enumerate(raw, 1)]
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
    return [_document_from(obj, f"{source}, conversation {i}") for i, obj in enumerate(found, 1)]


# -- markdown ---------------------------------------------------------------------------------

_MARKER = re.compile(r"<!-- llmost:([a-z]+) (.*) -->")
_LINE_UNSAFE = re.compile(
    r"[^\x20-\x7e\u00a0-\ud7ff\ue000-\uffff\U00010000-\U0010ffff]|[>\u2028\u2029]"
)
_SAFE_URL = re.compile(r"[A-Za-z0-9+/=;:,._%-]+")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_ROLES = {"system": "System prompt", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def end_line(k: int) -> str:
    return "<!-- /llmost -->" if k == 0 else f"<!-- /llmost {k} -->"


def _comment(kind: str, value: Any) -> str:
    """``<!-- llmost:KIND JSON -->`` on one line; the JSON has no ``>`` (so no ``-->``) and
    nothing that an editor could take for a line break or that is not printable."""
    text = _LINE_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumps(value))
    return f"<!-- llmost:{kind} {text} -->"


def _heading_text(text: str) -> str:
    return printable(one_line(text))


def _open_fence(text: str) -> str | None:
    """The code fence ``text`` leaves open, if any (so the export can close it for readers)."""
    fence: str | None = None
    for line in text.split("\n"):
        found = _FENCE.match(line)
        if not found:
            continue
        mark, rest = found.group(1), found.group(2)
        if fence is None:
            if not (mark[0] == "`" and "`" in rest):
                fence = mark
        elif mark[0] == fence[0] and len(mark) >= len(fence) and not rest.strip():
            fence = None
    return fence


def _bodies(messages: Sequence[Message]) -> Iterator[str]:
    for m in messages:
        if isinstance(m.content, str) and _as_body(m.content):
            yield m.content
        elif isinstance(m.content, list):
            for p in m.content:
                if _is_text_part(p):
                    yield p["text"]


def _as_body(text: Any) -> bool:
    """Whether ``text`` is written as it is; else it goes in its comment, as JSON. A lone
    surrogate (undecodable input) has no UTF-8 form: the file stays valid UTF-8 text."""
    return isinstance(text, str) and not _SURROGATE.search(text)


def _is_text_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "text" and _as_body(part.get("text"))


def _end_for(messages: Sequence[Message]) -> int:
    """The first end line that no text contains as a line of its own."""
    texts = ["\n" + b + "\n" for b in _bodies(messages)]
    k = 0
    while any("\n" + end_line(k) + "\n" in t for t in texts):
        k += 1
    return k


def _role_heading(n: int, m: Message) -> str:
    label = _ROLES.get(m.role, m.role.capitalize() or "?")
    extra = ""
    if m.role == "tool":
        label = "Tool result"
        if m.name:
            extra += f" · {m.name}"
    if m.role == "assistant":
        if m.tool_calls:
            extra += " · tool call" + "s" * (len(m.tool_calls) > 1)
        if m.model:
            extra += f" · {m.model}"
        if m.partial:
            extra += " (partial answer)"
    return f"## {n}. {_heading_text(label + extra)}"


def _fenced(text: str, info: str = "") -> list[str]:
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def _tool_call_lines(calls: list[Any]) -> list[str]:
    out: list[str] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        call_id = call.get("id") if isinstance(call, dict) else None
        out.append(
            f"**Tool call:** {_heading_text(str(name or '?'))}"
            + (f" ({_heading_text(str(call_id))})" if call_id else "")
        )
        arguments: Any = function.get("arguments")
        try:
            shown = json.dumps(json.loads(str(arguments)), ensure_ascii=False, indent=2)
        except (ValueError, RecursionError):
            shown = json.dumps(arguments, ensure_ascii=False)  # one line: never a marker
        out += ["", *_fenced(printable(shown), "json")]
    return out


def _image_line(part: dict[str, Any], labels: dict[str, str]) -> str | None:
    inner = part.get("image_url")
    url = inner.get("url") if isinstance(inner, dict) else inner
    if not isinstance(url, str):
        return None
    if url.startswith(images.REF):
        key = url[len(images.REF) :]
        return f"![image][{labels.setdefault(key, 'llmost-image-' + key[:12])}]"
    if _SAFE_URL.fullmatch(url):
        return f"![image]({url})"
    return None


def to_markdown(
    conversation: Conversation,
    messages: Sequence[Message],
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """The markdown export of one conversation (see the module docstring)."""
    found: dict[str, str] = {}
    collapsed = [
        Message(**{**message_json(m), "content": images.collapse(m.content, found)})
        for m in messages
    ]
    k = _end_for(collapsed)
    c = conversation
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "id": c.id, "name": c.name}
    meta |= {"model": c.model, "created": c.created, "updated": c.updated}
    if tools is not None:
        meta["tools"] = tools
    if k:
        meta["end"] = k
    about = [c.model or "default model", f"{len(messages)} message{'s' * (len(messages) != 1)}"]
    about += [f"started {timestamp(c.created)}", f"last {timestamp(c.updated)}"]
    out = [f"# {_heading_text(title_of(c, messages))}", "", _comment("conversation", meta)]
    out += [f"*{_heading_text(' · '.join(about))}*", ""]
    labels: dict[str, str] = {}
    for n, m in enumerate(collapsed, 1):
        out += [_role_heading(n, m), ""]
        out += _message_lines(m, k, labels)
        out.append("")
    for key, label in labels.items():
        url = found.get(key)
        if url is None:
            continue  # a reference whose image the store did not have: nothing to add
        if _SAFE_URL.fullmatch(url):
            out += [_comment("image", {"sha256": key}), f"[{label}]: {url}"]
        else:
            out.append(_comment("image", {"sha256": key, "url": url}))
    return "\n".join(out).rstrip("\n") + "\n"


def _message_lines(m: Message, k: int, labels: dict[str, str]) -> list[str]:
    meta = {key: value for key, value in message_json(m).items() if value not in (None, False)}
    meta.pop("content", None)
    if m.created == 0:
        meta.pop("created", None)
    if isinstance(m.content, list):
        meta = {"role": m.role, "parts": len(m.content), **meta}
    elif not _as_body(m.content):
        meta = {"role": m.role, "content": m.content, **meta}
    out = [_comment("message", meta)]
    if isinstance(m.content, str) and _as_body(m.content):
        out += _body(m.content, k)
    elif isinstance(m.content, list):
        for part in m.content:
            if _is_text_part(part):
                out.append(_comment("text", {**part, "text": None}))
                out += _body(part["text"], k)
                continue
            out.append(_comment("part", part))
            line = _image_line(part, labels) if isinstance(part, dict) else None
            kind = part.get("type") if isinstance(part, dict) else None
            out.append(line or f"*[{_heading_text(str(kind or 'part'))}]*")
    if m.tool_calls:
        out += ["", *_tool_call_lines(m.tool_calls)]
    return out


def _body(text: str, k: int) -> list[str]:
    lines = [text, end_line(k)]
    fence = _open_fence(text)
    if fence:
        lines.append(fence)  # for readers only: the text left a code block open
    return lines


class _Reader:
    """The markdown parser: marker comments found line by line, texts taken verbatim."""

    def __init__(self, text: str, source: str) -> None:
        text = text.removeprefix("\ufeff")
        first = _MARKER.search(text)
        if first and text[first.end() : first.end() + 1] == "\r":
            text = text.replace("\r\n", "\n")  # the file went through a CRLF conversion
        self.text = "\n" + text + "\n"
        self.source = source
        self.pos = 1  # always at the start of a line

    def problem(self, at: int, text: str) -> UsageError:
        line = self.text.count("\n", 0, at)
        return _problem(f"{self.source}, line {line}", text)

    def markers(self) -> Iterator[tuple[int, str, Any]]:
        """(offset, kind, JSON value) of each marker line, the reader just past it."""
        while True:
            start = self.text.find("\n<!-- llmost:", self.pos - 1)
            if start < 0:
                return
            start += 1
            stop = self.text.index("\n", start)
            self.pos = stop + 1
            found = _MARKER.fullmatch(self.text, start, stop)
            if not found:
                raise self.problem(start, "a damaged <!-- llmost: --> comment")
            try:
                value = json.loads(found.group(2), parse_constant=lambda _: None)
            except ValueError:
                raise self.problem(start, "the JSON of this comment is damaged") from None
            yield start, found.group(1), value

    def body(self, end: str, at: int) -> str:
        """The text from here to the end line."""
        stop = self.text.find("\n" + end + "\n", self.pos - 1)
        if stop < 0:
            raise self.problem(at, f"this text has no end line {end}")
        body = self.text[self.pos : max(stop, self.pos)]
        self.pos = stop + len(end) + 2
        return body


def parse_markdown(text: str, source: str) -> list[Document]:
    """Documents from markdown export text; a usage error names the line of a problem."""
    reader = _Reader(text, source)
    docs: list[Document] = []
    metas: list[dict[str, Any]] = []
    found_images: dict[str, str] = {}
    end = end_line(0)
    message: dict[str, Any] | None = None
    parts_left = 0
    where = 0

    def finish_message() -> None:
        nonlocal message
        if message is None:
            return
        if parts_left:
            raise reader.problem(where, f"this message lacks {parts_left} of its parts")
        n = len(docs[-1].messages) + 1
        docs[-1].messages.append(_message_from(message, f"{source}, message {n}"))
        message = None

    for at, kind, value in reader.markers():
        if kind in ("message", "conversation"):
            finish_message()
        where = where if kind in ("text", "part") else at
        if kind == "conversation":
            if not isinstance(value, dict):
                raise reader.problem(at, "expected a JSON object")
            line = reader.text.count("\n", 0, at)
            doc = _document_from(value, f"{source}, line {line}", markdown=True)
            end = end_line(value.get("end", 0) if isinstance(value.get("end"), int) else 0)
            docs.append(doc)
            metas.append(value)
        elif kind == "message":
            if not docs:
                raise reader.problem(at, "a message before any conversation")
            if not isinstance(value, dict):
                raise reader.problem(at, "expected a JSON object")
            message = dict(value)
            parts = message.pop("parts", None)
            if parts is not None:
                if not isinstance(parts, int) or parts < 0 or "content" in message:
                    raise reader.problem(at, "parts must be a count")
                message["content"], parts_left = [], parts
            elif "content" not in message:
                message["content"] = reader.body(end, at)
        elif kind in ("text", "part"):
            if message is None or not parts_left:
                raise reader.problem(at, f"a {kind} part outside a message")
            if kind == "text":
                if not isinstance(value, dict):
                    raise reader.problem(at, "expected a JSON object")
                value = {**value, "text": reader.body(end, at)}
            message["content"].append(value)
            parts_left -= 1
        elif kind == "image":
            if not isinstance(value, dict) or not isinstance(value.get("sha256"), str):
                raise reader.problem(at, "an image needs its sha256")
            url = value.get("url")
            if not isinstance(url, str):
                url = _definition(reader)
                if url is None:
                    raise reader.problem(at, "the image's data line is missing")
            found_images[value["sha256"]] = url
        else:
            raise reader.problem(at, f"unknown comment llmost:{kind} (from a newer llmost?)")
    finish_message()
    if not docs:
        raise UsageError(
            f"{source} holds no conversation written by 'llmost conversations export'",
            hint="it needs the <!-- llmost:conversation ... --> comments of the export",
        )
    for doc in docs:
        doc.images = dict(found_images)
    return docs


def _definition(reader: _Reader) -> str | None:
    """The URL of the ``[label]: URL`` line at the reader, which moves past it."""
    stop = reader.text.find("\n", reader.pos)
    line = reader.text[reader.pos : stop]
    found = re.fullmatch(r"\[[^\]]*\]: (\S+)", line)
    if not found:
        return None
    reader.pos = stop + 1
    return found.group(1)


def parse(text: str, source: str) -> list[Document]:
    """Documents from an export file of either format (JSON when it starts like JSON)."""
    if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
        return parse_json(text.lstrip("\ufeff"), source)
    return parse_markdown(text, source)
