"""Attachment references: the text of ``-f`` attachments cut out of message content, and
spliced back. Pure functions on content (the store uses them, as imagerefs for images).

A message knows which texts were attached to it (``Message.attached``); each such text is found
in the content's text (the string, or the ``text`` of a text part), cut out and replaced by
nothing, and a reference ``[part, position, sha256]`` records where it was: ``part``
is None for string content, else the index of the text part; ``position`` is where the text
goes back in the collapsed string, in code points. Nothing is written into the text itself, so
no user text can ever be taken for a reference and nothing needs escaping; the label and the
fences around an attached text stay in the content. ``expand`` splices the texts back, giving
exactly the content that was collapsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Below this many characters a reference (a row of links and ~80 bytes of JSON) costs about
# what the text itself does: short texts stay inline.
MIN_CHARS = 64

Ref = list[Any]  # [part: int | None, position: int, sha256: str]


class MissingText(LookupError):
    """A reference whose text is not known."""

    def __init__(self, digest: str) -> None:
        super().__init__(digest)
        self.digest = digest


class BadRefs(ValueError):
    """References that do not fit the content they belong to (a damaged cell)."""


def digest(text: str) -> str:
    import hashlib  # only when there are attachments: importing OpenSSL costs milliseconds

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def collapse(content: Any, attached: Iterable[str], texts: dict[str, str]) -> tuple[Any, list[Ref]]:
    """Content with the ``attached`` texts cut out, and the references that put them back;
    ``texts`` collects digest -> text. Content without any of them is returned as it is."""
    wanted = list(dict.fromkeys(t for t in attached if len(t) >= MIN_CHARS))
    if not wanted:
        return content, []
    refs: list[Ref] = []
    if isinstance(content, str):
        text, cuts = _cut(content, wanted, texts)
        return text, [[None, pos, key] for pos, key in cuts]
    if not isinstance(content, list):
        return content, []
    out: list[Any] = []
    for index, part in enumerate(content):
        if _is_text_part(part):
            text, cuts = _cut(part["text"], wanted, texts)
            if cuts:
                part = {**part, "text": text}
                refs.extend([index, pos, key] for pos, key in cuts)
        out.append(part)
    return (out, refs) if refs else (content, [])


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )


def _cut(text: str, wanted: list[str], texts: dict[str, str]) -> tuple[str, list[tuple[int, str]]]:
    """``text`` without the ``wanted`` texts, and (position in the result, digest) of each cut.

    Each text is cut once: where it first appears after the previous one (attachments are laid
    out in order, so every search is short), else where it first appears at all; a text that
    would overlap one already cut stays inline. Searching for further copies would cost a
    scan of the whole message per attachment (seconds for a directory of 200 files)."""
    spans: list[tuple[int, int, str]] = []
    cursor = 0
    for piece in wanted:
        start = text.find(piece, cursor)
        if start == -1:
            start = text.find(piece)
        end = start + len(piece)
        if start == -1 or any(s < end and start < e for s, e, _ in spans):
            continue
        spans.append((start, end, piece))
        cursor = end
    if not spans:
        return text, []
    spans.sort()
    kept: list[str] = []
    cuts: list[tuple[int, str]] = []
    done = removed = 0
    for start, end, piece in spans:
        key = digest(piece)
        texts[key] = piece
        kept.append(text[done:start])
        cuts.append((start - removed, key))
        removed += end - start
        done = end
    kept.append(text[done:])
    return "".join(kept), cuts


def expand(content: Any, refs: list[Ref], texts: Mapping[str, str]) -> Any:
    """Content with the texts spliced back; ``MissingText`` or ``BadRefs`` when they cannot be."""
    if not refs:
        return content
    by_part: dict[int | None, list[tuple[int, str]]] = {}
    for ref in refs:
        if not (isinstance(ref, list) and len(ref) == 3):
            raise BadRefs("a reference is not [part, position, sha256]")
        part, pos, key = ref
        if not (part is None or type(part) is int) or type(pos) is not int:
            raise BadRefs("a reference has no integer position")
        if not isinstance(key, str):
            raise BadRefs("a reference has no digest")
        by_part.setdefault(part, []).append((pos, key))
    if isinstance(content, str):
        if set(by_part) != {None}:
            raise BadRefs("references to parts of content that has none")
        return _splice(content, by_part[None], texts)
    if not isinstance(content, list) or None in by_part:
        raise BadRefs("references that do not fit the content")
    out = list(content)
    for index, cuts in by_part.items():
        assert index is not None
        if not (0 <= index < len(out) and _is_text_part(out[index])):
            raise BadRefs("a reference to a part that is not text")
        out[index] = {**out[index], "text": _splice(out[index]["text"], cuts, texts)}
    return out


def _splice(text: str, cuts: list[tuple[int, str]], texts: Mapping[str, str]) -> str:
    pieces: list[str] = []
    done = 0
    for pos, key in cuts:
        if not done <= pos <= len(text):
            raise BadRefs("a reference outside its text, or out of order")
        if key not in texts:
            raise MissingText(key)
        pieces.append(text[done:pos])
        pieces.append(texts[key])
        done = pos
    pieces.append(text[done:])
    return "".join(pieces)


def digests(refs: list[Ref]) -> list[str]:
    """The digests ``refs`` name, each once, in order (unreadable refs name none)."""
    found: dict[str, None] = {}
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, list) and len(ref) == 3 and isinstance(ref[2], str):
            found[ref[2]] = None
    return list(found)
