"""What the bytes of an attached file are, and their text: binary or text (git's rule), the
encoding (BOMs, UTF-16 without one, UTF-8, else Latin-1 with a warning), PDF text (pypdf) and
HTML reduced to readable text (markdownify). Used by core/attachments.py; no files, no network.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from llmost_cli.core import inputs
from llmost_cli.core.inputs import size_text
from llmost_cli.errors import UsageError

KIB = 1024
SNIFF_BYTES = 8 * KIB  # a NUL byte in these makes a file binary (git's own rule)

Warn = Callable[[str], None]


def safe_label(label: str) -> str:
    """A file name may hold newlines or escapes: shown escaped, so it stays one header line."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", label)


def over_total(label: str, limit: int) -> UsageError:
    return UsageError(
        f"{label}: the attached text would exceed {size_text(limit)}, the limit for one message",
        hint="attach fewer or smaller files",
    )


# --- what a file is ------------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _bom_encoding(head: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """Mostly-ASCII UTF-16: NULs at every other byte, on one side only."""
    sample = head[: SNIFF_BYTES - SNIFF_BYTES % 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    nul_even, nul_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if nul_odd > 0.7 and nul_even < 0.05:
        return "utf-16-le"
    if nul_even > 0.7 and nul_odd < 0.05:
        return "utf-16-be"
    return None


def looks_binary(head: bytes) -> bool:
    """git's rule (a NUL byte in the first 8 KiB), except for UTF-16/32 text."""
    if _bom_encoding(head) or _utf16_without_bom(head):
        return False
    return b"\0" in head[:SNIFF_BYTES]


def sniff(head: bytes) -> str:
    """``pdf``, ``image``, ``binary`` or ``text``, from a file's first bytes."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if inputs.sniff_image_type(head[:16]):
        return "image"
    return "binary" if looks_binary(head) else "text"


def decode(raw: bytes, label: str, warn: Warn, charset: str | None = None) -> str:
    """UTF-8, else what the BOM says, else UTF-16 by its NULs, else cp1252, else latin-1.

    Anything but UTF-8 is said in a warning that names ``label``.
    """
    bom = _bom_encoding(raw)
    if bom == "utf-8-sig":
        return raw.decode(bom, "replace")
    guessed = bom or _utf16_without_bom(raw)  # NULs are valid UTF-8: look for UTF-16 first
    if guessed is None:
        for encoding in (charset, "utf-8"):
            if encoding:
                try:
                    return raw.decode(encoding)
                except (UnicodeDecodeError, LookupError):
                    pass
    candidates = (guessed,) if guessed else ("cp1252", "latin-1")
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        warn(f"{safe_label(label)} is not UTF-8; read it as {encoding}")
        return text
    warn(f"{safe_label(label)} is not valid {guessed}; invalid bytes were replaced with U+FFFD")
    return raw.decode(guessed or "latin-1", "replace")


def data_url(data: bytes, label: str) -> str:
    mime = inputs.sniff_image_type(data[:16])
    if mime is None:
        raise UsageError(f"{label} is not a PNG, JPEG, GIF or WebP image")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# --- PDF and HTML --------------------------------------------------------------------------


def pdf_text(data: bytes, label: str, budget: int) -> str:
    """The text of a PDF, page by page; a PDF without text (scanned images) is a usage error."""
    import io
    import logging
    import warnings

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)  # pypdf logs every repaired glitch of a damaged file
    pages: list[str] = []
    used = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise UsageError(f"{label} is an encrypted PDF; decrypt it first")
            for number, page in enumerate(reader.pages, start=1):
                text = (page.extract_text() or "").strip()
                used += len(text.encode("utf-8", "surrogatepass"))
                if used > budget:
                    raise over_total(label, budget)
                if text:
                    pages.append(f"[page {number}]\n{text}")
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise UsageError(f"{label} is not a readable PDF ({detail})") from None
    finally:
        logger.setLevel(level)
    if not pages:
        raise UsageError(
            f"{label} has no text to extract (a scanned PDF holds only images)",
            hint="run OCR on it first, e.g. with ocrmypdf, or attach page images with -i",
        )
    return "\n\n".join(pages)


# Elements that are never the readable part of a page.
_NOISE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "aside",
    "iframe",
    "svg",
    "canvas",
    "button",
    "select",
    "textarea",
    "input",
    "dialog",
    "link",
    "meta",
    "head",
    "title",
)
_NOISE_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary", "menu")


def html_text(raw: bytes, charset: str | None = None) -> str:
    """Readable text of an HTML page, as markdown: no scripts, styles, menus or footers."""
    import warnings

    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bs4's guesses about odd input are not the user's concern
        soup = BeautifulSoup(raw, "html.parser", from_encoding=charset)
        title = soup.title.get_text(" ", strip=True) if soup.title else ""
        for tag in soup(_NOISE_TAGS):
            tag.decompose()
        for tag in soup.find_all(["header", "footer"]):
            if not tag.find_parent(["main", "article"]):
                tag.decompose()
        for tag in soup.find_all(True, attrs={"role": list(_NOISE_ROLES)}):
            tag.decompose()
        for tag in soup.find_all(True, attrs={"aria-hidden": "true"}):
            tag.decompose()
        for tag in soup.find_all(hidden=True):
            tag.decompose()
        root: Any = soup.find("main") or soup.find("article") or soup.body or soup
        converter = MarkdownConverter(heading_style="ATX", bullets="-", strip=["img"])
        text = converter.convert_soup(root)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if title and title not in text.split("\n", 1)[0]:
        text = f"# {title}\n\n{text}"
    return text


def media_type(content_type: str) -> tuple[str, str | None]:
    media, _, rest = content_type.partition(";")
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", rest, re.I)
    return media.strip().lower(), (match.group(1) if match else None)
