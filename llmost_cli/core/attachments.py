"""Context attached to a message with ``-f``: text files, directories, stdin, URLs, PDFs, images.

The user message is laid out as: the prompt, a blank line, one fenced block per attached text
(headed by its path or URL), a blank line, then standard input. An image becomes an image part,
as with ``-i``.

Every limit is checked before the bytes are held (DESIGN §9, STYLE 22): local files are
classified by their first bytes and their ``stat`` size is checked first, then read with a
bounded read anyway, since ``stat`` lies for FIFOs, devices and growing files. A directory walk
skips what ``.gitignore`` files ignore, ``.git/``, binary files and anything that is not a
regular file, and says how many it skipped. URLs are fetched last, through the ``fetch``
function the caller hands in (``api/fetch.py``): nothing here talks to the network.
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from llmost_cli.core import inputs
from llmost_cli.core.filetext import (
    SNIFF_BYTES,
    Warn,
    data_url,
    decode,
    html_text,
    looks_binary,
    media_type,
    over_total,
    pdf_text,
    safe_label,
    sniff,
)
from llmost_cli.core.inputs import TooLarge, size_text
from llmost_cli.errors import UsageError

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

KIB = 1024
MIB = 1024 * 1024
MAX_GITIGNORE_BYTES = 1 * MIB


@dataclass(frozen=True)
class Limits:
    file_bytes: int = 2 * MIB  # one text file (or stdin given as -f -)
    total_bytes: int = 8 * MIB  # all attached text of one message
    dir_files: int = 200  # text files from one directory
    dir_scan: int = 5000  # files looked at in one directory walk
    url_bytes: int = 20 * MIB  # one fetched body, after decompression
    pdf_bytes: int = 50 * MIB  # one PDF file
    image_bytes: int = inputs.MAX_IMAGE_BYTES


LIMITS = Limits()
LIMITS_HELP = (
    f"Limits: {size_text(LIMITS.file_bytes)} per text file, {size_text(LIMITS.total_bytes)} "
    f"of text in all, {LIMITS.dir_files} files per directory, "
    f"{size_text(LIMITS.url_bytes)} per URL, {size_text(LIMITS.pdf_bytes)} per PDF, "
    f"{size_text(LIMITS.image_bytes)} per image."
)


@dataclass(frozen=True)
class Fetched:
    """A fetched URL: where it ended up, its Content-Type and its (decoded) body."""

    url: str
    content_type: str
    body: bytes


Fetch = Callable[[str, int], Fetched]  # (url, byte limit) -> Fetched


@dataclass(frozen=True)
class Block:
    """One attached text, shown to the model as a fenced block headed by ``label``."""

    label: str
    text: str

    def render(self) -> str:
        return fenced(self.label, self.text)


@dataclass
class Context:
    """What ``-f`` (or ``/file``) attaches to one message."""

    blocks: list[Block] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # data: URLs

    @property
    def text_bytes(self) -> int:
        return sum(len(b.text.encode("utf-8", "surrogatepass")) for b in self.blocks)

    def __bool__(self) -> bool:
        return bool(self.blocks or self.images)

    def render(self) -> str:
        return "\n\n".join(block.render() for block in self.blocks)

    def extend(self, other: Context) -> None:
        self.blocks.extend(other.blocks)
        self.images.extend(other.images)


def compose_text(prompt: str, context: Context | None, stdin_text: str | None) -> str:
    """The prompt, a blank line, the attached blocks, a blank line, then stdin (DESIGN §1)."""
    parts = [prompt, context.render() if context else "", stdin_text or ""]
    return "\n\n".join(part for part in parts if part)


def fenced(label: str, text: str) -> str:
    """``label`` on its own line, then ``text`` in a fence longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{safe_label(label)}\n{fence}\n{body}{fence}"


def is_url(spec: str) -> bool:
    return spec.lower().startswith(("http://", "https://"))


# --- the collector -------------------------------------------------------------------------


@dataclass
class _Item:
    """A planned attachment: classified and size-checked, not read yet (or read: ``data``)."""

    label: str
    kind: str  # text | pdf | image
    path: Path | None = None
    size: int | None = None  # from stat; None when unknown (FIFO, device)
    data: bytes | None = None


@dataclass
class _Slot:
    items: list[_Item] = field(default_factory=list)
    url: str | None = None


class _Loader:
    def __init__(self, limits: Limits, warn: Warn, note: Warn, used: int) -> None:
        self.limits = limits
        self.warn = warn
        self.note = note
        self.used = used  # text bytes already attached to this message
        self.seen: set[tuple[int, int]] = set()

    # -- planning: stat, first bytes, limits; no contents read ---------------------------------

    def plan_stdin(self, stdin: IO[bytes] | None) -> _Item:
        if stdin is None:
            raise UsageError(
                "-f - reads standard input, but there is none to read here",
                hint="pipe the text in (and leave out --no-stdin); chat reads messages from it",
            )
        return self._stream_item(stdin, "standard input")

    def _stream_item(self, stream: IO[bytes], label: str) -> _Item:
        """Read once, within the limit of what the first bytes say it is."""
        head = _read_head(stream, label)
        kind = sniff(head)
        if kind == "binary":
            raise _binary(label)
        return _Item(label, kind, data=head + self._bounded(stream, label, kind, len(head)))

    def plan_path(self, spec: str) -> list[_Item]:
        path = Path(spec).expanduser()
        label = spec
        try:
            st = path.stat()
        except FileNotFoundError:
            raise UsageError(f"-f {label}: no such file or directory") from None
        except OSError as exc:
            raise UsageError(f"-f {label}: cannot read it ({exc.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            return self.walk(path, spec.rstrip("/") or "/")
        if not self._new(st):
            return []
        if not stat.S_ISREG(st.st_mode):  # a pipe (`-f <(cmd)`) or a device: one bounded read
            try:
                with path.open("rb") as fh:
                    return [self._stream_item(fh, label)]
            except OSError as exc:
                raise UsageError(f"-f {label}: cannot read it ({exc.strerror})") from None
        head = _read_head_path(path, label)
        kind = sniff(head)
        if kind == "binary":
            raise _binary(label)
        self._check_size(label, kind, st.st_size)
        return [_Item(label, kind, path=path, size=st.st_size)]

    def walk(self, root: Path, label_root: str) -> list[_Item]:
        """Text files under ``root`` (sorted), with what was skipped counted and said."""
        real_root = root.resolve()
        skipped: Counter[str] = Counter()
        found: list[_Item] = []
        scanned = 0
        stack: list[tuple[Path, list[tuple[Path, GitIgnoreSpec]]]] = [
            (real_root, _enclosing_ignores(real_root))
        ]
        while stack:
            directory, chain = stack.pop()
            spec = _load_gitignore(directory / ".gitignore")
            if spec is not None:
                chain = [*chain, (directory, spec)]
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                skipped["unreadable"] += 1
                continue
            subdirs: list[Path] = []
            for entry in entries:
                if entry.name == ".git":
                    continue
                path = Path(entry.path)
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if _ignored(chain, path, is_dir):
                    skipped["git-ignored"] += 1
                    continue
                if is_dir:
                    subdirs.append(path)
                    continue
                if entry.is_symlink() and not _inside(path, real_root):
                    skipped["links out of the directory"] += 1  # a cloned repo's link to ~/.ssh
                    continue
                scanned += 1
                if scanned > self.limits.dir_scan:
                    raise UsageError(
                        f"-f {label_root}: more than {self.limits.dir_scan} files to look at",
                        hint="attach a smaller directory, or list what to skip in .gitignore",
                    )
                label = f"{label_root.rstrip('/')}/{path.relative_to(real_root).as_posix()}"
                item = self._dir_file(path, label, skipped)
                if item is not None:
                    found.append(item)
                    if len(found) > self.limits.dir_files:
                        raise UsageError(
                            f"-f {label_root}: more than {self.limits.dir_files} text files, "
                            "the limit for one directory",
                            hint="attach a subdirectory, or list what to skip in .gitignore",
                        )
            stack.extend((d, chain) for d in reversed(subdirs))
        self._say_skipped(label_root, len(found), skipped)
        return found

    def _dir_file(self, path: Path, label: str, skipped: Counter[str]) -> _Item | None:
        try:
            st = path.stat()
        except OSError:
            skipped["unreadable"] += 1
            return None
        if not stat.S_ISREG(st.st_mode):
            skipped["not regular"] += 1  # FIFOs, devices, sockets, links to directories
            return None
        if st.st_size > self.limits.file_bytes:
            skipped[f"over {size_text(self.limits.file_bytes)}"] += 1
            return None
        if not self._new(st):
            return None
        try:
            head = _read_head_path(path, label)
        except UsageError:
            skipped["unreadable"] += 1
            return None
        if sniff(head) != "text":
            skipped["binary"] += 1
            return None
        return _Item(label, "text", path=path, size=st.st_size)

    def _say_skipped(self, label: str, count: int, skipped: Counter[str]) -> None:
        files = f"{count} file{'s' if count != 1 else ''}"
        if skipped:
            details = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
            self.note(f"{safe_label(label)}: attached {files}; skipped {details}")
        elif count == 0:
            self.note(f"{safe_label(label)}: no text files to attach")

    def _new(self, st: os.stat_result) -> bool:
        """The same file named twice (or inside a named directory) is attached once."""
        key = (st.st_dev, st.st_ino)
        if st.st_ino and key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _check_size(self, label: str, kind: str, size: int) -> None:
        limit = self._limit(kind)
        if size > limit:
            raise _too_large(label, kind, limit)

    def _limit(self, kind: str) -> int:
        return {
            "pdf": self.limits.pdf_bytes,
            "image": self.limits.image_bytes,
        }.get(kind, self.limits.file_bytes)

    def check_total(self, items: Sequence[_Item]) -> None:
        """Before any content is read: the stat sizes of the text files against the total."""
        planned = self.used + sum(
            len(i.data) if i.data is not None else (i.size or 0) for i in items if i.kind == "text"
        )
        if planned > self.limits.total_bytes:
            raise over_total("the attached files", self.limits.total_bytes)

    # -- reading ----------------------------------------------------------------------------

    def read(self, item: _Item) -> Context:
        data = item.data
        if data is None:
            assert item.path is not None
            data = self._read_path(item)
        return self.convert(item.label, item.kind, data)

    def convert(self, label: str, kind: str, data: bytes) -> Context:
        if kind == "image":
            return Context(images=[data_url(data, label)])
        if kind == "pdf":
            text = pdf_text(data, label, self._remaining())
            return self._text(Block(f"{label} (text of the PDF)", text))
        return self._text(Block(label, decode(data, label, self.warn)))

    def _text(self, block: Block) -> Context:
        self.used += len(block.text.encode("utf-8", "surrogatepass"))
        if self.used > self.limits.total_bytes:
            raise over_total(block.label, self.limits.total_bytes)
        return Context(blocks=[block])

    def _remaining(self) -> int:
        return max(0, self.limits.total_bytes - self.used)

    def _read_path(self, item: _Item) -> bytes:
        assert item.path is not None
        try:
            with item.path.open("rb") as fh:
                return self._bounded(fh, item.label, item.kind, 0)
        except OSError as exc:
            raise UsageError(f"-f {item.label}: cannot read it ({exc.strerror})") from None

    def _bounded(self, stream: IO[bytes], label: str, kind: str, already: int) -> bytes:
        limit = self._limit(kind)
        if already > limit:
            raise _too_large(label, kind, limit)
        try:
            return inputs.read_limited(stream, limit - already)
        except TooLarge:
            raise _too_large(label, kind, limit) from None

    # -- URLs -------------------------------------------------------------------------------

    def fetch(self, url: str, fetch: Fetch | None) -> Context:
        if fetch is None:
            raise UsageError(f"-f {url}: URLs cannot be fetched here")
        fetched = fetch(url, self.limits.url_bytes)
        media, charset = media_type(fetched.content_type)
        body, head = fetched.body, fetched.body[:SNIFF_BYTES]
        if media == "application/pdf" or head.startswith(b"%PDF-"):
            return self.convert(url, "pdf", body)
        if inputs.sniff_image_type(head[:16]):
            self._check_size(url, "image", len(body))
            return self.convert(url, "image", body)
        lowered = head.lstrip()[:200].lower()
        if media in ("text/html", "application/xhtml+xml") or (
            media in ("", "text/plain", "application/octet-stream")
            and lowered.startswith((b"<!doctype html", b"<html"))
        ):
            return self._text(Block(url, html_text(body, charset)))
        if not media.startswith(("image/", "audio/", "video/", "font/")) and not looks_binary(head):
            return self._text(Block(url, decode(body, url, self.warn, charset)))
        raise UsageError(
            f"-f {url}: cannot attach content of type {media or 'unknown'}",
            hint="-f takes HTML, text, JSON, PDF and PNG/JPEG/GIF/WebP",
        )


def _binary(label: str) -> UsageError:
    return UsageError(
        f"-f {label} looks like a binary file (it has NUL bytes)",
        hint="-f takes text, PDF and PNG/JPEG/GIF/WebP files",
    )


def _too_large(label: str, kind: str, limit: int) -> UsageError:
    what = {"pdf": "PDF", "image": "image"}.get(kind, "text file")
    return UsageError(
        f"-f {label} is larger than {size_text(limit)}, the limit for one {what}",
        hint="attach a smaller file or an excerpt",
    )


def _read_head(stream: IO[bytes], label: str) -> bytes:
    try:
        return stream.read(SNIFF_BYTES)  # a buffered read: up to the size, or to the end
    except OSError as exc:
        raise UsageError(f"-f {label}: cannot read it ({exc.strerror})") from None


def _read_head_path(path: Path, label: str) -> bytes:
    """The first bytes of a regular file; never blocks on a FIFO swapped in after ``stat``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"-f {label}: cannot read it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"-f {label}: not a regular file")
        try:
            return fh.read(SNIFF_BYTES)
        except OSError as exc:
            raise UsageError(f"-f {label}: cannot read it ({exc.strerror})") from None


# --- .gitignore ----------------------------------------------------------------------------


def _load_gitignore(path: Path) -> GitIgnoreSpec | None:
    try:
        if not path.is_file():
            return None
        with path.open("rb") as fh:
            raw = fh.read(MAX_GITIGNORE_BYTES)
    except OSError:
        return None
    from pathspec import GitIgnoreSpec

    return GitIgnoreSpec.from_lines(raw.decode("utf-8", "replace").splitlines())


def _enclosing_ignores(root: Path) -> list[tuple[Path, GitIgnoreSpec]]:
    """The .gitignore files above ``root`` up to its git work tree's top, outermost first."""
    if (root / ".git").exists():
        return []  # the top of a work tree: the walk reads its .gitignore itself
    ancestors = []
    for directory in root.parents:
        ancestors.append(directory)
        if (directory / ".git").exists():
            break
    else:
        return []  # not inside a git work tree
    chain = []
    for directory in reversed(ancestors):
        spec = _load_gitignore(directory / ".gitignore")
        if spec is not None:
            chain.append((directory, spec))
    return chain


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a loop of links
        return False


def _ignored(chain: Sequence[tuple[Path, GitIgnoreSpec]], path: Path, is_dir: bool) -> bool:
    """gitignore semantics: the deepest file with a matching pattern decides (``!`` included)."""
    decision: bool | None = None
    for base, spec in chain:
        relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        result = spec.check_file(relative)
        if result.include is not None:
            decision = result.include
    return bool(decision)


# --- the one entry point -------------------------------------------------------------------


def load(
    specs: Sequence[str],
    *,
    stdin: IO[bytes] | None,
    fetch: Fetch | None,
    warn: Warn,
    note: Warn | None = None,
    used: int = 0,
    limits: Limits = LIMITS,
) -> Context:
    """Attach ``specs`` (paths, directories, ``-``, URLs) in order; ``used``: text already
    attached to the same message. Local limits are checked before any content is read and
    before any URL is fetched."""
    if not specs:
        return Context()
    loader = _Loader(limits, warn, note or warn, used)
    slots: list[_Slot] = []
    stdin_used = False
    for spec in specs:
        if spec == "-":
            if stdin_used:
                raise UsageError("-f - is given twice; standard input can be read once")
            stdin_used = True
            slots.append(_Slot([loader.plan_stdin(stdin)]))
        elif is_url(spec):
            slots.append(_Slot(url=spec))
        elif not spec:
            raise UsageError("-f needs a path, a directory, - or an http(s) URL")
        else:
            slots.append(_Slot(loader.plan_path(spec)))
    loader.check_total([item for slot in slots for item in slot.items])
    context = Context()
    for slot in slots:
        for item in slot.items:
            context.extend(loader.read(item))
        if slot.url is not None:
            context.extend(loader.fetch(slot.url, fetch))
    return context
