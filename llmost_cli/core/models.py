"""The model list: fetch, cache, search and filters, lookup, prices and cost accounting.

Servers differ: LLMost/OpenRouter send rich model objects (name, context, pricing,
architecture); llama.cpp, vLLM and Ollama send little more than ``id``. Every reader here
tolerates a missing or odd field and reports it as unknown (None), never as an error.

Prices are decimal strings per token (``"0.0000025"``); ``"0"`` is free, ``"-1"`` or a missing
key is unknown. They are parsed as ``Decimal`` so that sums of many small prices stay exact.

Lists, searches and lookups work on compact records (``catalog.Record``): a list of 100,000
models, or a hostile one, must not cost its weight in Python dicts. The whole model object is
read back from the catalog's file only to be shown (``catalog.py`` has the layout and limits).
The cache is one file per base URL; the list is fresh for ``CACHE_TTL`` seconds. A corrupt or
foreign cache file is ignored (and replaced on the next fetch), never fatal.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmost_cli.errors import UsageError

if TYPE_CHECKING:
    from llmost_cli.core.catalog import Catalog, Record
    from llmost_cli.core.events import Usage
    from llmost_cli.core.settings import Settings

Model = dict[str, Any]
Log = Callable[[str], None]

CACHE_TTL = 3600.0
MIN_PRICE_EXPONENT, MAX_PRICE_EXPONENT = -30, 12  # prices per token outside are garbage
MILLION = Decimal(1_000_000)
# Pricing keys charged per token (shown per million tokens); the others are per unit.
TOKEN_PRICE_KEYS = frozenset(
    {"prompt", "completion", "internal_reasoning", "input_cache_read", "input_cache_write"}
)
UNIT_PRICE_KEYS = {"request": "per request", "image": "per image", "web_search": "per search"}


# --------------------------------------------------------------------------- reading fields


def parse_price(value: Any) -> Decimal | None:
    """A price as Decimal; None when unknown (absent, null, negative such as "-1", garbage)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    return _parse_price_text(value)


@lru_cache(maxsize=4096)  # a long model list repeats a few prices many times
def _parse_price_text(value: str) -> Decimal | None:
    try:
        price = Decimal(value.strip())
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0:
        return None
    if price and not MIN_PRICE_EXPONENT <= price.adjusted() <= MAX_PRICE_EXPONENT:
        return None  # absurd (1e999999999 would overflow, or print a billion digits)
    return price


def pricing(model: Mapping[str, Any]) -> dict[str, Any]:
    raw = model.get("pricing")
    return raw if isinstance(raw, dict) else {}


def price(model: Mapping[str, Any], key: str) -> Decimal | None:
    return parse_price(pricing(model).get(key))


def per_million(value: Decimal | None) -> Decimal | None:
    return None if value is None else value * MILLION


@lru_cache(maxsize=4096)
def format_decimal(value: Decimal | None) -> str:
    """Plain notation without trailing zeros (2.5, 10, 0.075); "-" when unknown."""
    if value is None:
        return "-"
    text = format(value.normalize(), "f")
    return "0" if text in ("0", "-0") else text


@dataclass(frozen=True)
class Summary:
    """One row of ``llmost models``; None means unknown."""

    id: str
    name: str | None
    context_length: int | None
    prompt_per_m: Decimal | None
    completion_per_m: Decimal | None
    input_modalities: list[str] | None

    @classmethod
    def of(cls, record: Record) -> Summary:
        return cls(
            id=record.id,
            name=record.name,
            context_length=record.context_length,
            prompt_per_m=per_million(parse_price(record.prompt)),
            completion_per_m=per_million(parse_price(record.completion)),
            input_modalities=record.input_modalities,
        )

    def cells(self) -> list[str]:
        """The plain (tab-separated) columns: unknown values are "-"."""
        return [
            self.id,
            "-" if self.context_length is None else str(self.context_length),
            format_decimal(self.prompt_per_m),
            format_decimal(self.completion_per_m),
            ",".join(self.input_modalities) if self.input_modalities else "-",
        ]


# --------------------------------------------------------------------------- search and lookup


def matches(record: Record, search: str) -> bool:
    """Every word of ``search`` occurs (case-insensitively) in the id or the name."""
    haystack = f"{record.id}\n{record.name or ''}".casefold()
    return all(word in haystack for word in search.casefold().split())


def has_vision(record: Record) -> bool:
    return "image" in (record.input_modalities or [])


def select(
    records: Iterable[Record],
    search: str | None = None,
    *,
    vision: bool = False,
    tools: bool = False,
) -> list[Record]:
    """The models that pass the search and filters, sorted by id."""
    chosen = [
        r
        for r in records
        if (not search or matches(r, search))
        and (not vision or has_vision(r))
        and (not tools or r.tools)
    ]
    return sorted(chosen, key=lambda r: (r.id.casefold(), r.id))


def suggestions(wanted: str, ids: Sequence[str], limit: int = 3) -> list[str]:
    """Ids close to ``wanted``: containing it first, then near spellings (with or without the
    vendor prefix, so ``gpt4o`` finds ``openai/gpt-4o``)."""
    low = wanted.casefold()
    found = [i for i in ids if low and low in i.casefold()]
    by_lower = {i.casefold(): i for i in ids}
    by_tail = {i.casefold().rsplit("/", 1)[-1]: i for i in ids}
    for pool in (by_lower, by_tail):
        for near in difflib.get_close_matches(low, list(pool), n=limit, cutoff=0.6):
            found.append(pool[near])
    return list(dict.fromkeys(found))[:limit]


def find(records: Sequence[Record], model_id: str) -> Record | None:
    """The model with this id (exactly, else ignoring case)."""
    for record in records:
        if record.id == model_id:
            return record
    low = model_id.casefold()
    for record in records:
        if record.id.casefold() == low:
            return record
    return None


def resolve(models: Sequence[Record], wanted: str, base_url: str) -> Record | None:
    """The model ``wanted`` names: its exact id (or ignoring case), else the one id that
    contains it (``gemma`` -> ``google/gemma-3-27b-it``), preferring an id whose last part is
    exactly it (``gpt-4o`` -> ``openai/gpt-4o`` over ``openai/gpt-4o-mini``). None when no id
    matches; a UsageError listing the candidates when several do."""
    model = find(models, wanted)
    if model is not None:
        return model
    low = wanted.casefold()
    if not low:
        return None
    found = [m for m in models if low in m.id.casefold()]
    if len(found) > 1:
        tails = [m for m in found if m.id.casefold().rsplit("/", 1)[-1] == low]
        found = tails if len(tails) == 1 else found
    if len(found) <= 1:
        return found[0] if found else None
    raise ambiguous_model(wanted, sorted(m.id for m in found), base_url)


def ambiguous_model(wanted: str, ids: Sequence[str], base_url: str, shown: int = 8) -> UsageError:
    listed = ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
    return UsageError(
        f"{wanted!r} matches {len(ids)} models at {base_url}: {listed}",
        hint="give the whole id",
    )


def unknown_model(model_id: str, models: Sequence[Record], base_url: str) -> UsageError:
    close = suggestions(model_id, [m.id for m in models])
    hint = (
        "did you mean " + ", ".join(close) + "?"
        if close
        else "list the available ids with: llmost models"
    )
    return UsageError(f"unknown model {model_id!r} at {base_url}", hint=hint)


# --------------------------------------------------------------------------- fetch and cache


Fetcher = Callable[[], Iterable[Any]]  # the entries of GET /models, as they arrive


def cached_model_ids(base_url: str) -> list[str]:
    """Ids from the cache of any age, for completion; never fetches."""
    from llmost_cli.core import catalog

    return [r.id for r in catalog.cached_records(base_url)]


def write_cache(base_url: str, entries: Iterable[Any], *, now: float | None = None) -> Path:
    """Save ``entries`` (model objects) as the cached list of ``base_url``."""
    from llmost_cli.core import catalog

    return catalog.write(base_url, entries, now=now)


def load(
    settings: Settings,
    *,
    refresh: bool = False,
    log: Log | None = None,
    fetcher: Fetcher,
) -> Catalog:
    """The list from a fresh cache, else fetched (and cached). ``refresh`` skips the cache.
    The caller closes it (``with``)."""
    from llmost_cli.core import catalog

    if not refresh:
        cached = catalog.cached(settings.base_url, max_age=CACHE_TTL)
        if cached is not None:
            return cached
    return catalog.fetched(settings.base_url, fetcher(), log=log)


def lookup(
    settings: Settings,
    model_id: str,
    *,
    log: Log | None = None,
    fetcher: Fetcher,
) -> Model:
    """One model by id, or by a part of its id that only it contains (``resolve``); an id
    missing from a cached list triggers one refresh (it may be new). Unknown: a UsageError
    that names it and suggests close ids; ambiguous: one that lists the candidates."""
    base_url = settings.base_url
    with load(settings, log=log, fetcher=fetcher) as listing:
        record = resolve(listing.records, model_id, base_url)
        if record is not None:
            return listing.entry(record)
        refetch = listing.from_cache
        if not refetch:
            raise unknown_model(model_id, listing.records, base_url)
    with load(settings, refresh=True, log=log, fetcher=fetcher) as listing:
        record = resolve(listing.records, model_id, base_url)
        if record is None:
            raise unknown_model(model_id, listing.records, base_url)
        return listing.entry(record)


# --------------------------------------------------------------------------- detail view


_FIRST = ("id", "name", "canonical_slug", "created", "context_length")


def _flat(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flat(f"{prefix}.{key}", inner, out)
    else:
        out.append((prefix, _show(value)))


def _show(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _price_text(key: str, value: Any) -> str:
    parsed = parse_price(value)
    if parsed is None:
        return "-" if value is None or str(value).strip() == "-1" else f"{value} (?)"
    if parsed == 0:
        return "0 (free)"
    if key in TOKEN_PRICE_KEYS:
        return f"{format_decimal(parsed)} per token = {format_decimal(parsed * MILLION)} per 1M"
    unit = UNIT_PRICE_KEYS.get(key)
    return f"{format_decimal(parsed)} {unit}" if unit else format_decimal(parsed)


# Timestamps shown as a date: 1970 up to the last day datetime can represent.
_LAST_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z


def _day(value: Any) -> str | None:
    """A Unix timestamp as YYYY-MM-DD; None for anything else (a string, a bool, NaN, a
    negative or absurd number): the caller then shows the value as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= _LAST_TIMESTAMP:  # False for NaN too
        return None
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d")


def detail_fields(model: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every field as (label, text), nested objects flattened with dots, ``description`` left
    out (the renderer wraps it). Unknown or empty values are "-"."""
    out: list[tuple[str, str]] = []
    keys = [k for k in _FIRST if k in model] + sorted(k for k in model if k not in _FIRST)
    for key in keys:
        value = model[key]
        if key == "description":
            continue
        if key == "created" and (day := _day(value)) is not None:
            out.append((key, f"{day} ({int(value)})"))
        elif key == "pricing" and isinstance(value, dict):
            out.extend((f"pricing.{k}", _price_text(k, v)) for k, v in value.items())
        else:
            _flat(key, value, out)
    return out


def description(model: Mapping[str, Any]) -> str | None:
    text = model.get("description")
    return text.strip() or None if isinstance(text, str) else None


# --------------------------------------------------------------------------- cost


PriceIndex = dict[str, "Record"]


def price_index(base_url: str) -> PriceIndex:
    """Cached models by id (a cache of any age: prices change rarely, and a cost estimate must
    never cost a request)."""
    from llmost_cli.core import catalog

    return {r.id: r for r in catalog.cached_records(base_url)}


def _part(tokens: int | None, unit_price: Decimal | None) -> Decimal | None:
    if tokens is None:
        return None
    if tokens == 0:
        return Decimal(0)  # no tokens of this kind: its price does not matter
    return None if unit_price is None else unit_price * tokens


def estimate(usage: Usage, model: Record | None) -> Decimal | None:
    """prompt_tokens x prompt + completion_tokens x completion (+ the per-request price when
    one is listed); None when a needed price or token count is unknown. Cache discounts are
    not modelled: the server's own ``usage.cost`` is preferred wherever it is sent."""
    if model is None:
        return None
    prompt_price, completion_price = parse_price(model.prompt), parse_price(model.completion)
    if prompt_price is None and completion_price is None:
        return None  # no price at all: unknown, never "$0" (even for zero tokens)
    prompt = _part(usage.prompt_tokens, prompt_price)
    completion = _part(usage.completion_tokens, completion_price)
    if prompt is None or completion is None:
        return None
    return prompt + completion + (parse_price(model.request) or Decimal(0))


def _cost(usage: Usage, model_id: str | None, index: Callable[[], PriceIndex]) -> Decimal | None:
    if usage.cost is not None:
        return Decimal(str(usage.cost))
    if not model_id:
        return None
    return estimate(usage, index().get(model_id))


def _lazy(base_url: str) -> Callable[[], PriceIndex]:
    memo: list[PriceIndex] = []

    def get() -> PriceIndex:
        if not memo:
            memo.append(price_index(base_url))
        return memo[0]

    return get


def cost_of(usage: Usage, model_id: str | None, base_url: str) -> float | None:
    """The cost of one answer: the server's ``usage.cost`` when sent, else an estimate from the
    cached prices of ``model_id`` (the model that answered); None when unknown. Reads only the
    cache, never the network, so ``ask`` stays fast."""
    cost = _cost(usage, model_id, _lazy(base_url))
    return None if cost is None else float(cost)


def session_cost(usages: list[tuple[Usage, str | None]], base_url: str) -> float | None:
    """Total cost of several answers (the REPL's /usage). None as soon as any one is unknown:
    a sum of only the known parts would be shown as a total that is too low. No answers: 0."""
    index = _lazy(base_url)
    total = Decimal(0)
    for usage, model_id in usages:
        cost = _cost(usage, model_id, index)
        if cost is None:
            return None
        total += cost
    return float(total)
