"""A chunked-body reader for h11 that hands on everything one network read completed at once.

h11's own reader returns one ``Data`` event per HTTP chunk, and each event then travels alone
through h11's state machine, httpcore and httpx: about 9 µs of Python per chunk. A streaming
gateway sends one chunk per token, so that was most of the cost of reading an answer. This
reader returns, per call, one ``Data`` with all the chunk data the receive buffer holds, so
the layers above work once per network read, however many tokens it carried.

It parses exactly what h11's ``ChunkedReader`` parses, with the same checks and errors:
the chunk-size line (``[0-9A-Fa-f]{1,20}``, optional extension, optional spaces, CRLF), the
CRLF after each chunk's data, and the trailer (left to h11's own reader). Incomplete lines stay
in h11's receive buffer, so h11's limit on an incomplete event still bounds them.

:func:`install` puts it in h11's table of readers (process-wide: llmost is the only user of h11
in its process). With an h11 whose internals differ from the ones this was written against, it
installs nothing and h11's reader is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NoReturn

import h11

_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")  # h11's chunk_header
_CRLF = b"\r\n"
_LONG_LINE = 256  # bytes: a size line is 1-20 hex digits, rarely with an extension

Buffer = Any  # h11's ReceiveBuffer (private)
_Reader = Callable[[Buffer], "h11.Data | h11.EndOfMessage | None"]


class BatchedChunkedReader:
    """h11's chunked body reader, returning all the data available in one ``Data`` event."""

    __slots__ = ("_error", "_footer", "_left", "_long_line", "_trailer")

    def __init__(self) -> None:
        self._left = 0  # bytes of the current chunk not yet read
        self._footer = b""  # what is still due of the CRLF that ends a chunk's data
        self._trailer: _Reader | None = None  # h11's reader, once the last chunk has begun
        self._error: h11.LocalProtocolError | None = None  # raised after the data before it
        self._long_line = False  # an incomplete size line longer than _LONG_LINE was seen

    def __call__(self, buf: Buffer) -> h11.Data | h11.EndOfMessage | None:
        if self._error is not None:
            raise self._error
        if self._trailer is not None:
            return self._trailer(buf)
        parts: list[bytes] = []  # bytearrays, in fact: h11's own Data events carry those too
        try:
            self._read(buf, parts)
        except h11.LocalProtocolError as exc:
            if not parts:
                raise
            self._error = exc  # as h11 does: the data before the fault first, then the fault
        if not parts:
            return self._trailer(buf) if self._trailer is not None else None
        return h11.Data(data=parts[0] if len(parts) == 1 else b"".join(parts))

    def _read(self, buf: Buffer, parts: list[bytes]) -> None:
        """All the chunk data in ``buf`` into ``parts``; an incomplete size line or CRLF is put
        back into ``buf`` (then h11's limit on an incomplete event bounds it)."""
        if self._long_line:
            self._read_stepwise(buf, parts)
            return
        raw = bytes(buf.maybe_extract_at_most(len(buf)) or b"")
        pos = self._parse(raw, parts)
        if pos < len(raw):
            tail = raw[pos:]
            # Only a size line or a CRLF can be left over, and a size line is a few bytes: a
            # long one is read stepwise from now on, by h11's search that never rescans.
            self._long_line = len(tail) > _LONG_LINE
            buf += tail

    def _parse(self, raw: bytes, parts: list[bytes]) -> int:
        """Parse chunks from ``raw`` into ``parts``; the position where it stopped."""
        pos, end, left = 0, len(raw), self._left
        try:
            while pos < end:
                if self._footer:
                    footer = self._footer
                    got = raw[pos : pos + len(footer)]
                    if got != footer[: len(got)]:
                        raise _bad_footer(got, footer)
                    pos += len(got)
                    self._footer = footer[len(got) :]
                    continue
                if not left:
                    eol = raw.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    match = _HEADER.fullmatch(raw, pos, eol + 2)
                    if match is None:
                        line = bytearray(raw[pos : eol + 2])
                        raise h11.LocalProtocolError(f"illegal chunk header: {line!r}")
                    pos = eol + 2
                    left = int(match[1], 16)
                    if not left:
                        self._trailer = _trailer_reader()
                        break
                    if pos == end:
                        break
                stop = pos + left
                if stop + 2 <= end:  # the whole chunk and its CRLF: the usual case
                    parts.append(raw[pos:stop])
                    pos, left = stop + 2, 0
                    if raw[stop:pos] != _CRLF:
                        raise _bad_footer(raw[stop:pos], _CRLF)
                    continue
                take = min(left, end - pos)
                parts.append(raw[pos : pos + take])
                pos += take
                left -= take
                if not left:
                    self._footer = _CRLF
        finally:
            self._left = left
        return pos

    def _read_stepwise(self, buf: Buffer, parts: list[bytes]) -> None:
        while True:
            if self._footer:
                got = buf.maybe_extract_at_most(len(self._footer))
                if got is None:
                    return
                if got != self._footer[: len(got)]:
                    raise _bad_footer(got, self._footer)
                self._footer = self._footer[len(got) :]
                if self._footer:
                    return
            if not self._left:
                header = buf.maybe_extract_next_line()
                if header is None:
                    return
                match = _HEADER.fullmatch(header)
                if match is None:
                    raise h11.LocalProtocolError(f"illegal chunk header: {header!r}")
                size = int(match[1], 16)
                if size == 0:
                    self._trailer = _trailer_reader()
                    return
                self._left = size
            # A whole chunk and its CRLF in one step when they are all here (the usual case).
            if len(buf) >= self._left + 2:
                data = buf.maybe_extract_at_most(self._left + 2)
                end = bytes(data[-2:])
                del data[-2:]
                parts.append(data)
                self._left = 0
                if end != _CRLF:
                    raise _bad_footer(end, _CRLF)
                continue
            data = buf.maybe_extract_at_most(self._left)
            if data is None:
                return
            parts.append(data)
            self._left -= len(data)
            if self._left:
                return  # the rest of this chunk has not arrived
            self._footer = _CRLF

    def read_eof(self) -> NoReturn:
        message = "peer closed connection without sending complete message body"
        raise h11.RemoteProtocolError(f"{message} (incomplete chunked read)")


def _bad_footer(got: bytes | bytearray, expected: bytes) -> h11.LocalProtocolError:
    return h11.LocalProtocolError(f"malformed chunk footer: {got!r} (expected {expected!r})")


def _trailer_reader() -> _Reader:
    """h11's own reader, put in the state after a last chunk's size line, for the trailer."""
    from h11._readers import ChunkedReader
    from h11._receivebuffer import ReceiveBuffer

    reader = ChunkedReader()
    last = ReceiveBuffer()
    last += b"0\r\n"
    reader(last)  # reads the size line; no trailer yet: returns None
    return reader


def install() -> bool:
    """Use :class:`BatchedChunkedReader` for every chunked body h11 reads; False if this h11
    is not the one it was written for (then nothing changes)."""
    try:
        from h11._readers import READERS, ChunkedReader
        from h11._receivebuffer import ReceiveBuffer

        table = READERS[h11.SEND_BODY]
    except (ImportError, KeyError, AttributeError):  # pragma: no cover - another h11
        return False
    if not isinstance(table, dict):  # pragma: no cover - another h11
        return False
    if table.get("chunked") is BatchedChunkedReader:
        return True
    buffer_api = ("maybe_extract_at_most", "maybe_extract_next_line", "__len__")
    if table.get("chunked") is not ChunkedReader or not all(
        hasattr(ReceiveBuffer, name) for name in buffer_api
    ):  # pragma: no cover - another h11
        return False
    table["chunked"] = BatchedChunkedReader
    return True
