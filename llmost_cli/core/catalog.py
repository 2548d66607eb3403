"""The model list in bounded memory: a compact record per model, the whole entries on disk.

A server may list 100,000 models, or send a hostile list as large as the limit allows. Kept
as ``json.loads`` dicts such a list costs 0.6 to 2 GB, so it is kept in two parts:

* in memory, one :class:`Record` per model with only what lists, searches, filters, id
  lookup, completion and cost estimates read: id, name, context length, three prices, input
  modalities, tools. Text fields are capped (an id over ID_LIMIT drops its model: an id cut
  short would name another model), repeated values are shared, and at most MAX_MODELS models
  or KEPT_LIMIT bytes of records are kept; the rest are dropped and counted (``dropped``);
* on disk, each whole entry as JSON text, read back one at a time by ``models show`` and
  ``models --json``.

The disk part is the model cache itself: a header line of HEADER_SIZE bytes
``{"llmost_models": 2, "base_url", "fetched_at", "count", "dropped", "records_at"}``, the
entries one per line, then one record per line (a JSON array) from ``records_at``. It is
written as a temporary file in the cache directory while the list arrives and renamed into
place when complete (a temporary file elsewhere when the cache directory is not writable).
Reading it back reads the header and the records with a limit on each line, never the
entries: a foreign, corrupt or oversized file is ignored (None), as before.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeGuard

from llmost_cli import paths
from llmost_cli.core import modelfields

VERSION = 2
MAX_MODELS = 200_000  # models kept of one list; OpenRouter lists about 500
KEPT_LIMIT = 64 * 1024 * 1024  # estimated bytes of records kept (RSS stays far below 200 MB)
ID_LIMIT = 256  # bytes of UTF-8 in an id; a model with a longer one is dropped
NAME_LIMIT = 160  # bytes of UTF-8 kept of a name (longer names are cut)
PRICE_LIMIT = 40  # characters of a price; a longer one is unknown (no real price is that long)
INPUTS_LIMIT = 80  # characters of the comma-joined input modalities; longer is unknown
ENTRY_LIMIT = 4 * 1024 * 1024  # one entry read back from the file (the wire allows 1 MiB)
HEADER_SIZE = 4096
RECORD_LINE_LIMIT = 8192  # a record line: capped fields, even if all escaped as \uXXXX
_OVERHEAD = 200  # bytes of one record beyond its text: tuple, two ints, list slot
_TEXT = 50  # bytes of a str beyond its characters


class Record(NamedTuple):
    """One model as lists and lookups need it; None means unknown. Prices are the texts the
    server sent (parsed when used); ``inputs`` is the comma-joined input modalities."""

    id: str
    name: str | None
    context_length: int | None
    prompt: str | None
    completion: str | None
    request: str | None
    inputs: str | None
    tools: bool
    at: int  # where the entry's JSON text starts in the file, and its length
    size: int

    @property
    def input_modalities(self) -> list[str] | None:
        if self.inputs is None:
            return None
        return self.inputs.split(",") if self.inputs else []


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    if len(text) * 4 <= limit or _utf8_len(text) <= limit:
        return text
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


def _price(pricing: Any, key: str) -> str | None:
    if not isinstance(pricing, dict):
        return None
    value = pricing.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and len(value) <= PRICE_LIMIT else None


class _Builder:
    """Records of entries as they arrive, each entry's text written to ``file``."""

    def __init__(self, file: IO[bytes]) -> None:
        self._models = modelfields
        self.file = file
        self.records: list[Record] = []
        self.dropped = 0
        self.kept = 0
        self._shared: dict[Any, Any] = {None: None}  # repeated values, one object each
        # What ui.json() writes for an item, so that ``--json`` copies the text as it is.
        self._encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
        file.write(b" " * (HEADER_SIZE - 1) + b"\n")

    def _share(self, value: str | None) -> Any:
        if value is None:
            return None
        shared = self._shared.setdefault(value, value)
        if shared is value and isinstance(value, str):
            self.kept += _TEXT + len(value)
        return shared

    def add(self, entry: Any) -> None:
        if not isinstance(entry, dict):
            return
        model_id = entry.get("id")
        if not isinstance(model_id, str) or not model_id:
            return
        if self.kept >= KEPT_LIMIT or len(self.records) >= MAX_MODELS:
            self.dropped += 1
            return
        id_size = _utf8_len(model_id)
        if id_size > ID_LIMIT:
            self.dropped += 1
            return
        try:
            data = self._encode(entry).encode("utf-8", "replace")
        except ValueError:  # NaN from a caller that did not clean: not a valid entry
            return
        at = self.file.tell()
        self.file.write(data + b"\n")
        m = self._models
        name = m.model_name(entry)
        if name is not None:
            name = _cut(name, NAME_LIMIT)
        context = m.context_length(entry)
        inputs = m.input_modalities(entry)
        joined = ",".join(inputs) if inputs is not None else None
        pricing = entry.get("pricing")
        share = self._share
        self.records.append(
            Record(
                model_id,
                name,
                context if context is not None and 0 <= context < 2**62 else None,
                share(_price(pricing, "prompt")),
                share(_price(pricing, "completion")),
                share(_price(pricing, "request")),
                share(joined if joined is None or len(joined) <= INPUTS_LIMIT else None),
                m.has_tools(entry),
                at,
                len(data),
            )
        )
        self.kept += _OVERHEAD + _TEXT + id_size + (0 if name is None else _TEXT + _utf8_len(name))

    def finish(self, base_url: str, fetched_at: float) -> None:
        """Append the records and write the header: the file is then a complete cache."""
        fh = self.file
        records_at = fh.tell()
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        step = 4096
        for i in range(0, len(self.records), step):
            fh.write(
                "".join(dumps(r) + "\n" for r in self.records[i : i + step]).encode(
                    "utf-8", "replace"
                )
            )
        header = {
            "llmost_models": VERSION,
            "base_url": base_url,
            "fetched_at": fetched_at,
            "count": len(self.records),
            "dropped": self.dropped,
            "records_at": records_at,
        }
        head = json.dumps(header, ensure_ascii=False).encode("utf-8", "replace")
        if len(head) >= HEADER_SIZE:
            raise OSError("the base URL is too long to be cached")
        fh.seek(0)
        fh.write(head.ljust(HEADER_SIZE - 1) + b"\n")
        fh.flush()


class Catalog:
    """A model list: ``records`` in memory and the whole entries in ``file`` (closed by
    :meth:`close`, or by ``with``)."""

    def __init__(
        self, records: list[Record], file: IO[bytes], *, dropped: int = 0, from_cache: bool
    ) -> None:
        self.records = records
        self.file = file
        self.dropped = dropped
        self.from_cache = from_cache

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def text(self, record: Record) -> str:
        """The entry's JSON text as ``json.dumps(entry, ensure_ascii=False)`` writes it."""
        if not 0 <= record.size <= ENTRY_LIMIT:
            return json.dumps({"id": record.id}, ensure_ascii=False)
        self.file.seek(record.at)
        return self.file.read(record.size).decode("utf-8", "replace")

    def entry(self, record: Record) -> dict[str, Any]:
        """The whole model object; just its id when the file was tampered with."""
        try:
            value = json.loads(self.text(record))
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict) or value.get("id") != record.id:
            return {"id": record.id}
        return value

    def texts(self, records: Iterable[Record]) -> Iterator[str]:
        return (self.text(r) for r in records)


def fetched(
    base_url: str, entries: Iterable[Any], *, log: Any = None, now: float | None = None
) -> Catalog:
    """The catalog of ``entries`` as they arrive, saved as the cache of ``base_url`` when the
    list is complete (a cache directory that cannot be written costs speed, not the answer)."""
    base_url = base_url.rstrip("/")
    path = paths.models_cache_file(base_url)
    tmp: str | None = None
    try:
        directory = paths.ensure_private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".models-", suffix=".tmp", dir=directory)
        file: IO[bytes] = os.fdopen(fd, "w+b")
    except OSError as exc:
        if log:
            log(f"cannot write the model cache: {exc}")
        file = tempfile.TemporaryFile()  # noqa: SIM115  # the Catalog owns and closes it
    try:
        builder = _Builder(file)
        for entry in entries:
            builder.add(entry)
        if tmp is not None:
            try:
                builder.finish(base_url, time.time() if now is None else now)
                os.chmod(tmp, 0o600)
                os.replace(tmp, path)
                tmp = None
            except OSError as exc:
                if log:
                    log(f"cannot write the model cache: {exc}")
    except BaseException:
        file.close()
        raise
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return Catalog(builder.records, file, dropped=builder.dropped, from_cache=False)


def build(entries: Iterable[Any]) -> Catalog:
    """A catalog of ``entries`` in a temporary file, not cached."""
    file = tempfile.TemporaryFile()  # noqa: SIM115  # the Catalog owns and closes it
    builder = _Builder(file)
    for entry in entries:
        builder.add(entry)
    return Catalog(builder.records, file, dropped=builder.dropped, from_cache=False)


def write(base_url: str, entries: Iterable[Any], *, now: float | None = None) -> Path:
    """Save ``entries`` as the cache of ``base_url`` (fetched ``now``); its path."""
    fetched(base_url, entries, now=now).close()
    return paths.models_cache_file(base_url.rstrip("/"))


def _record(row: Any, shared: dict[Any, Any]) -> Record | None:
    if type(row) is not list or len(row) != 10:
        return None
    mid, name, ctx, prompt, completion, request, inputs, tools, at, size = row
    texts = (prompt, completion, request, inputs)
    if (
        type(mid) is not str
        or len(mid) > ID_LIMIT
        or not (name is None or (type(name) is str and len(name) <= NAME_LIMIT))
        or not (ctx is None or type(ctx) is int)
        or not all(t is None or (type(t) is str and len(t) <= INPUTS_LIMIT) for t in texts)
        or type(tools) is not bool
        or type(at) is not int
        or type(size) is not int
    ):
        return None
    share = shared.setdefault
    return Record(mid, name, ctx, share(prompt, prompt), share(completion, completion),
                  share(request, request), share(inputs, inputs), tools, at, size)  # fmt: skip


def cached(base_url: str, *, max_age: float | None, now: float | None = None) -> Catalog | None:
    """The cached list of ``base_url``, or None when absent, corrupt, foreign or older than
    ``max_age`` seconds (None: any age). Only the header and the records are read."""
    base_url = base_url.rstrip("/")
    try:
        file = paths.models_cache_file(base_url).open("rb")
    except OSError:
        return None
    try:
        catalog = _read(file, base_url, max_age, time.time() if now is None else now)
    except (OSError, ValueError, RecursionError):
        catalog = None
    if catalog is None:
        file.close()
    return catalog


def _count(value: Any) -> TypeGuard[int]:
    return type(value) is int and value >= 0


def _read(file: IO[bytes], base_url: str, max_age: float | None, now: float) -> Catalog | None:
    head = json.loads(file.read(HEADER_SIZE))
    if not isinstance(head, dict) or head.get("llmost_models") != VERSION:
        return None
    fetched_at = head.get("fetched_at")
    if head.get("base_url") != base_url or not isinstance(fetched_at, int | float):
        return None
    count, dropped, records_at = (head.get(k) for k in ("count", "dropped", "records_at"))
    if not (_count(count) and _count(dropped) and _count(records_at)):
        return None
    if count > MAX_MODELS or (max_age is not None and not 0 <= now - fetched_at < max_age):
        return None
    file.seek(records_at)
    records: list[Record] = []
    shared: dict[Any, Any] = {None: None}
    for _ in range(count):
        line = file.readline(RECORD_LINE_LIMIT)
        record = _record(json.loads(line), shared) if line.endswith(b"\n") else None
        if record is None:
            return None
        records.append(record)
    return Catalog(records, file, dropped=dropped, from_cache=True)


def cached_records(base_url: str) -> Sequence[Record]:
    """The records of the cache of any age (no entries): for completion and prices."""
    catalog = cached(base_url, max_age=None)
    if catalog is None:
        return []
    catalog.close()
    return catalog.records
