"""What the server may send: size limits, bounded decompression, and the clock of ``--timeout``.

Every body byte the client reads passes through :func:`decoded`, which decompresses in bounded
steps and counts decoded bytes *before* handing them on, so no body can hold more memory than its
limit, however well it compresses. Over a limit is a :class:`StreamError` (exit 7) with a one-line
message. No httpx here: this works on plain byte iterators.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator

from llmost_cli.errors import RequestTimeout, StreamError

KiB = 1024
MiB = 1024 * KiB

# Sizes are of decoded (decompressed) bytes.
ERROR_BODY_LIMIT = 64 * KiB  # an error response: this much is kept, the rest is never read
JSON_BODY_LIMIT = 32 * MiB  # a non-streamed chat completion (or any other JSON answer)
MODEL_LIST_LIMIT = 128 * MiB  # GET /models: 100,000 models of up to ~1.3 KiB each
MODEL_ENTRY_LIMIT = 1 * MiB  # one model of that list (it is parsed one model at a time)
SSE_EVENT_LIMIT = 4 * MiB  # one SSE event (all its lines); the text of one chunk
SSE_STREAM_LIMIT = 256 * MiB  # one whole stream (about a million tokens of ordinary chunks)
MAX_JSON_DEPTH = 64  # nesting of any JSON value: event, body, tool-call arguments
# A compressed body may expand at most MAX_EXPANSION-fold once EXPANSION_FLOOR bytes have been
# decoded: ordinary JSON and SSE compress 5-30 fold, a decompression bomb 1000 fold.
MAX_EXPANSION = 100
EXPANSION_FLOOR = 4 * MiB
DECODE_STEP = 64 * KiB  # the most one decompression step produces
CONNECT_TIMEOUT_CAP = 15.0  # connecting never waits longer than this, whatever --timeout is

# What a deadline waits for, with the server's host:port in {where}.
HEADERS = "waiting for the response headers from {where}"
NEXT_EVENT = (
    "waiting for the next event of the stream from {where} (keep-alive comments do not count)"
)
BODY = "reading the response body from {where}"


def size(n: int) -> str:
    """1.5 MiB, 64 KiB, 12 bytes."""
    if n >= MiB:
        return f"{n / MiB:.4g} MiB"
    if n >= KiB:
        return f"{n / KiB:.4g} KiB"
    return f"{n} bytes"


class Deadline:
    """The time left to one phase of a request; ``--timeout`` seconds from each (re)start.

    The transport bounds every socket operation by :meth:`remaining`, so a server dribbling one
    byte a second cannot stretch a phase: only :meth:`reset` (a complete SSE event) extends it.
    """

    __slots__ = ("at", "seconds", "what", "where")

    def __init__(self, seconds: float, where: str) -> None:
        self.seconds = seconds
        self.where = where
        self.what = HEADERS
        self.at = time.monotonic() + seconds

    def start(self, what: str) -> None:
        self.what = what
        self.at = time.monotonic() + self.seconds

    def reset(self) -> None:
        self.at = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def error(self, what: str | None = None) -> RequestTimeout:
        doing = (what or self.what).format(where=self.where)
        return RequestTimeout(
            f"timed out after {self.seconds:g} s {doing}",
            hint="raise --timeout or check the server",
        )


def too_large(what: str, limit: int) -> StreamError:
    return StreamError(f"{what} is larger than {size(limit)}; llmost stopped reading it")


def decoded(raw: Iterable[bytes], encoding: str, limit: int, what: str) -> Iterator[bytes]:
    """The decoded bytes of a body read as ``raw`` pieces with this ``Content-Encoding``.

    Pieces are at most DECODE_STEP long when decompressing; more than ``limit`` decoded bytes in
    all, or a suspicious expansion, is a StreamError raised before the excess is produced.
    ``what`` names the body in messages ("the stream", "the answer to models").
    """
    codec = encoding.strip().lower()
    if codec in ("", "identity"):
        total = 0
        for piece in raw:
            total += len(piece)
            if total > limit:
                raise too_large(what, limit)
            yield piece
        return
    if codec not in ("gzip", "x-gzip", "deflate"):
        raise StreamError(
            f"{what} is compressed with {codec[:40]!r}, which llmost does not accept "
            "(it asks for gzip or deflate)"
        )
    yield from _inflate(raw, codec, limit, what)


def _inflate(raw: Iterable[bytes], codec: str, limit: int, what: str) -> Iterator[bytes]:
    inflater: zlib._Decompress | None = None
    if codec != "deflate":
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    head = b""  # deflate: the first two bytes tell a zlib stream from raw deflate
    compressed = total = 0  # compressed: the bytes the inflater has taken so far
    for piece in raw:
        if inflater is None:
            head += piece
            if len(head) < 2:
                continue
            zlib_header = (head[0] << 8 | head[1]) % 31 == 0 and head[0] & 0x0F == 8
            inflater = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
            piece, head = head, b""
        if inflater.eof:
            continue  # trailing bytes after the end of the compressed data are ignored
        data = piece
        while True:
            try:
                out = inflater.decompress(data, DECODE_STEP)
            except zlib.error:
                raise StreamError(f"{what} is not valid {codec} data") from None
            compressed += len(data) - len(inflater.unconsumed_tail)
            data = inflater.unconsumed_tail
            if out:
                total += len(out)
                if total > limit:
                    raise too_large(what, limit)
                if total > EXPANSION_FLOOR and total > MAX_EXPANSION * compressed:
                    raise StreamError(
                        f"{what} expands more than {MAX_EXPANSION}-fold when decompressed; "
                        "refused as a decompression bomb"
                    )
                yield out
            # A full step may leave output inside zlib even when all input was taken.
            if inflater.eof or (not data and len(out) < DECODE_STEP):
                break


def read_body(pieces: Iterable[bytes], deadline: Deadline | None) -> bytearray:
    """All of a body (``pieces`` are already limited by :func:`decoded`) within the deadline."""
    body = bytearray()
    for piece in pieces:
        body += piece
        if deadline is not None and deadline.expired():
            raise deadline.error()
    return body


def read_prefix(pieces: Iterable[bytes], limit: int, body: bytearray) -> bool:
    """Append at most ``limit`` bytes of a body to ``body`` (which keeps them should reading
    fail half-way); True if there was more. The rest is never read."""
    for piece in pieces:
        body += piece
        if len(body) > limit:
            del body[limit:]
            return True
    return False
