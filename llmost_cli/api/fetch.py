"""Fetching a URL given with ``-f``: a plain GET, never with the API key.

The URL's host is untrusted (DESIGN §9): no ``Authorization`` header and no key go there.
It is fetched with the main client's timeout and proxy rules (the environment's), redirects
are followed by hand, only to http(s) and at most ``MAX_REDIRECTS`` times, and the body is read
after decompression up to a limit. Network failures are ``NetworkError`` (exit 8), HTTP error
statuses ``APIError`` (exit 7), a body over the limit a ``UsageError`` (exit 2).

httpx is imported on the first fetch, so a command without URLs does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from llmost_cli import __version__
from llmost_cli.core.attachments import Fetch, Fetched
from llmost_cli.core.inputs import size_text
from llmost_cli.errors import APIError, NetworkError, RequestTimeout, UsageError

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 5
ACCEPT = (
    "text/html, application/xhtml+xml, text/plain;q=0.9, text/markdown;q=0.9, "
    "application/json;q=0.9, application/pdf;q=0.8, */*;q=0.5"
)
Log = Callable[[str], None]


def make_fetch(
    timeout: float,
    *,
    log: Log | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Fetch:
    """The ``fetch`` function the core is handed: ``fetch(url, limit) -> Fetched``."""

    def fetch(url: str, limit: int) -> Fetched:
        return fetch_url(url, limit, timeout=timeout, log=log, transport=transport)

    return fetch


def fetch_url(
    url: str,
    limit: int,
    *,
    timeout: float,
    log: Log | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Fetched:
    # isort: off
    from llmost_cli.api import client  # noqa: F401  # marks httpx's CLI and trio absent first
    import httpx

    # isort: on

    headers = {"User-Agent": f"llmost/{__version__}", "Accept": ACCEPT}
    with httpx.Client(
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        follow_redirects=False,  # by hand below: only to http(s), at most MAX_REDIRECTS
        trust_env=True,  # the same proxy rules as the API client
        transport=transport,
    ) as http:
        current = _url(url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with http.stream("GET", current) as response:
                    if log:
                        log(f"> GET {current}")
                        log(f"< {response.status_code} {response.reason_phrase}")
                    if response.is_redirect:
                        current = _next_url(url, response)
                        continue
                    if response.status_code >= 300:
                        raise APIError(
                            f"-f {url}: HTTP {response.status_code} "
                            f"{response.reason_phrase or 'error'}",
                            status=response.status_code,
                        )
                    body = _read_body(url, response, limit)
                    content_type = response.headers.get("content-type", "")
                    return Fetched(str(response.url), content_type, body)
            except httpx.DecodingError as exc:
                raise APIError(f"-f {url}: the body cannot be decoded ({_reason(exc)})") from None
            except httpx.TimeoutException:
                raise RequestTimeout(
                    f"-f {url}: timed out fetching it from {current.host}",
                    hint="raise --timeout or check the address",
                ) from None
            except httpx.HTTPError as exc:
                raise NetworkError(
                    f"-f {url}: cannot fetch it from {current.host}: {_reason(exc)}"
                ) from None
    raise APIError(f"-f {url}: more than {MAX_REDIRECTS} redirects")


def _url(url: str) -> httpx.URL:
    import httpx

    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"-f {url}: not a valid URL ({_reason(exc)})") from None


def _next_url(url: str, response: httpx.Response) -> httpx.URL:
    import httpx

    try:
        target = response.url.join(response.headers["location"])
    except httpx.InvalidURL as exc:
        raise APIError(f"-f {url}: redirected to an invalid URL ({_reason(exc)})") from None
    if target.scheme not in ("http", "https"):
        raise APIError(f"-f {url}: redirected to a {target.scheme}: URL; only http(s) is followed")
    return target


def _read_body(url: str, response: httpx.Response, limit: int) -> bytes:
    """The decoded body, never holding more than ``limit`` bytes of it (plus one chunk)."""
    declared = response.headers.get("content-length", "")
    encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
    if declared.isdigit() and not encoded and int(declared) > limit:
        raise _too_large(url, limit)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(url, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(url: str, limit: int) -> UsageError:
    return UsageError(
        f"-f {url}: the page is larger than {size_text(limit)}, the limit for one URL",
        hint="save an excerpt to a file and attach that",
    )


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
