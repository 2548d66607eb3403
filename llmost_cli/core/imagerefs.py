"""Image references: ``data:`` URLs in message content replaced by a reference to a content
hash, and back. Pure functions on content (the store and the markdown export use them).

A ``data:`` image URL in a content part is replaced by ``llmost-image:sha256:<hex>`` (the
sha256 of the URL text, which is stored as given, never decoded or re-encoded). Any other URL
that happens to start with ``llmost-image:`` is escaped as ``llmost-image:raw:<url>`` so that it
cannot be taken for a reference. ``expand`` undoes both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REF = "llmost-image:sha256:"
RAW = "llmost-image:raw:"
SCHEME = "llmost-image:"


class MissingImage(LookupError):
    """A reference whose image is not known."""

    def __init__(self, digest: str) -> None:
        super().__init__(digest)
        self.digest = digest


def digest(url: str) -> str:
    import hashlib  # only when there are images: importing OpenSSL costs milliseconds

    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def _collapse_url(url: Any, images: dict[str, str]) -> Any:
    if not isinstance(url, str):
        return url
    if url.startswith("data:"):
        key = digest(url)
        images[key] = url
        return REF + key
    if url.startswith(SCHEME):
        return RAW + url
    return url


def _expand_url(url: Any, images: Mapping[str, str]) -> Any:
    if isinstance(url, str):
        if url.startswith(REF):
            key = url[len(REF) :]
            if key not in images:
                raise MissingImage(key)
            return images[key]
        if url.startswith(RAW):
            return url[len(RAW) :]
    return url


def _map_urls(content: Any, change: Any) -> Any:
    """Content with ``change`` applied to the URL of every image part (a new list)."""
    if not isinstance(content, list):
        return content
    out: list[Any] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url" and "image_url" in part:
            inner = part["image_url"]
            part = dict(part)
            if isinstance(inner, dict):
                if "url" in inner:
                    part["image_url"] = {**inner, "url": change(inner["url"])}
            else:
                part["image_url"] = change(inner)
        out.append(part)
    return out


def collapse(content: Any, images: dict[str, str]) -> Any:
    """Content with data: image URLs replaced by references; ``images`` collects digest -> URL."""
    return _map_urls(content, lambda url: _collapse_url(url, images))


def expand(content: Any, images: Mapping[str, str]) -> Any:
    """Content with references replaced by their URLs; raises ``MissingImage``."""
    return _map_urls(content, lambda url: _expand_url(url, images))


def refs(content: Any) -> set[str]:
    """The digests that ``content`` (collapsed) refers to."""
    found: set[str] = set()
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                inner = part.get("image_url")
                url = inner.get("url") if isinstance(inner, dict) else inner
                if isinstance(url, str) and url.startswith(REF):
                    found.add(url[len(REF) :])
    return found


# -- the tables -------------------------------------------------------------------------------
