"""Conversations as Markdown documents, and reading an export file of either format.

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
import re
from collections.abc import Iterator, Sequence
from typing import Any

from llmost_cli.core import imagerefs as images
from llmost_cli.core.messages import Conversation, Message
from llmost_cli.core.transcript import (
    FORMAT,
    VERSION,
    Document,
    document_from,
    dumps,
    message_from,
    message_json,
    one_line,
    parse_json,
    printable,
    problem,
    timestamp,
    title_of,
)
from llmost_cli.errors import UsageError

_SURROGATE = re.compile("[\ud800-\udfff]")
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
        return problem(f"{self.source}, line {line}", text)

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
        docs[-1].messages.append(message_from(message, f"{source}, message {n}"))
        message = None

    for at, kind, value in reader.markers():
        if kind in ("message", "conversation"):
            finish_message()
        where = where if kind in ("text", "part") else at
        if kind == "conversation":
            if not isinstance(value, dict):
                raise reader.problem(at, "expected a JSON object")
            line = reader.text.count("\n", 0, at)
            doc = document_from(value, f"{source}, line {line}", markdown=True)
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
