"""The model list core: prices, filters, lookup, the cache and cost accounting (no subprocess)."""

from __future__ import annotations

import copy
import json
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llmost_cli import paths
from llmost_cli.core import catalog, modelfields, models
from llmost_cli.core import settings as config
from llmost_cli.core.events import Usage
from llmost_cli.errors import ExitCode, UsageError
from tests.fakeserver import DEFAULT_MODELS

BASE = "http://127.0.0.1:9/api/v1"


def catalogue() -> list[dict[str, Any]]:
    return copy.deepcopy(DEFAULT_MODELS)


def settings(base_url: str = BASE) -> config.Settings:
    return config.Settings(profile="default", config_path=Path("unused.toml"), base_url=base_url)


def records(entries: list[dict[str, Any]]) -> list[catalog.Record]:
    with catalog.build(entries) as built:
        return built.records


def record(entry: dict[str, Any]) -> catalog.Record:
    return records([entry])[0]


def cached(max_age: float | None = models.CACHE_TTL, now: float | None = None) -> Any:
    """The whole entries of the cache of BASE, or None."""
    found = catalog.cached(BASE, max_age=max_age, now=now)
    if found is None:
        return None
    with found:
        return [found.entry(r) for r in found.records]


def entries(listing: catalog.Catalog) -> list[dict[str, Any]]:
    with listing:
        return [listing.entry(r) for r in listing.records]


class Fetcher:
    """Stands in for the network (the HTTP path is covered end to end); counts its calls."""

    def __init__(self, result: list[dict[str, Any]]) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        return copy.deepcopy(self.result)


# --------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.0000025", Decimal("0.0000025")),
        ("0", Decimal(0)),
        (" 0.1 ", Decimal("0.1")),
        ("1e-6", Decimal("0.000001")),
        (0, Decimal(0)),
        (0.000002, Decimal("0.000002")),
        ("-1", None),
        ("-0.5", None),
        (None, None),
        ("", None),
        ("free", None),
        ("NaN", None),
        ("Infinity", None),
        (True, None),
        ({"x": 1}, None),
    ],
)
def test_parse_price(raw: Any, expected: Decimal | None) -> None:
    assert models.parse_price(raw) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("2.5000000"), "2.5"),
        (Decimal("10.000000"), "10"),  # not 1E+1
        (Decimal("0E-7"), "0"),
        (Decimal("0.075"), "0.075"),
        (Decimal("1500"), "1500"),
        (None, "-"),
    ],
)
def test_format_decimal(value: Decimal | None, text: str) -> None:
    assert models.format_decimal(value) == text


def test_prices_per_million_are_exact() -> None:
    gpt = catalogue()[0]
    assert models.per_million(models.price(gpt, "prompt")) == Decimal("2.5")
    assert models.per_million(models.price(gpt, "completion")) == Decimal(10)
    assert models.price({"id": "x"}, "prompt") is None
    assert models.price({"id": "x", "pricing": "cheap"}, "prompt") is None


# --------------------------------------------------------------------------- fields and rows


def test_summary_of_a_full_model() -> None:
    row = models.Summary.of(record(catalogue()[0]))
    assert row.cells() == ["openai/gpt-4o", "128000", "2.5", "10", "text,image,file"]


def test_summary_of_free_and_unknown_prices() -> None:
    by_id = {m.id: models.Summary.of(m) for m in records(catalogue())}
    assert by_id["meta-llama/llama-3.1-8b-instruct:free"].cells()[2:4] == ["0", "0"]
    assert by_id["openrouter/auto"].cells()[2:4] == ["-", "-"]


@pytest.mark.parametrize(
    "bare",
    [
        {"id": "llama3"},
        {"id": "llama3", "object": "model", "owned_by": "library", "created": 1700000000},
        {"id": "llama3", "name": None, "context_length": None, "pricing": None,
         "architecture": None, "supported_parameters": None, "top_provider": None},
        {"id": "llama3", "architecture": {"input_modalities": None}, "pricing": {"prompt": None}},
    ],
)  # fmt: skip
def test_summary_of_a_bare_model_is_all_dashes(bare: dict[str, Any]) -> None:
    assert models.Summary.of(record(bare)).cells() == ["llama3", "-", "-", "-", "-"]
    assert not models.has_vision(record(bare)) and not modelfields.has_tools(bare)


def test_context_length_fallbacks() -> None:
    assert modelfields.context_length({"top_provider": {"context_length": 4096}}) == 4096
    assert modelfields.context_length({"max_model_len": 8192}) == 8192  # vLLM
    assert modelfields.context_length({"context_length": None, "max_model_len": 8192}) == 8192
    assert modelfields.context_length({"context_length": True}) is None
    assert modelfields.context_length({"context_length": "128000"}) is None


def test_input_modalities_from_the_modality_string() -> None:
    model = {"architecture": {"modality": "text+image->text"}}
    assert modelfields.input_modalities(model) == ["text", "image"]
    assert models.has_vision(record({"id": "x", **model}))


# --------------------------------------------------------------------------- search and lookup


def ids(chosen: list[catalog.Record]) -> list[str]:
    return [m.id for m in chosen]


def test_select_sorts_by_id() -> None:
    assert ids(models.select(records(catalogue()))) == [
        "anthropic/claude-3.5-sonnet",
        "google/gemini-2.5-pro",
        "meta-llama/llama-3.1-8b-instruct:free",
        "mistralai/mistral-small",
        "openai/gpt-4o",
        "openrouter/auto",
    ]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("CLAUDE", ["anthropic/claude-3.5-sonnet"]),
        ("sonnet claude", ["anthropic/claude-3.5-sonnet"]),  # every word, any order
        ("router", ["openrouter/auto"]),
        ("auto router", ["openrouter/auto"]),
        ("zebra", ["z/model-1"]),  # in the name only
        ("claude gpt", []),
        ("", None),  # no search: everything
    ],
)
def test_search_matches_id_and_name(search: str, expected: list[str] | None) -> None:
    listed = records([*catalogue(), {"id": "z/model-1", "name": "The Zebra"}])
    chosen = ids(models.select(listed, search))
    assert chosen == (expected if expected is not None else sorted(ids(listed)))


def test_filters() -> None:
    listed = records([*catalogue(), {"id": "bare"}])
    assert ids(models.select(listed, vision=True)) == [
        "anthropic/claude-3.5-sonnet",
        "google/gemini-2.5-pro",
        "openai/gpt-4o",
        "openrouter/auto",
    ]
    assert ids(models.select(listed, tools=True)) == [
        "anthropic/claude-3.5-sonnet",
        "google/gemini-2.5-pro",
        "mistralai/mistral-small",
        "openai/gpt-4o",
    ]
    assert ids(models.select(listed, "g", vision=True, tools=True)) == [
        "google/gemini-2.5-pro",
        "openai/gpt-4o",
    ]


@pytest.mark.parametrize(
    ("wanted", "first"),
    [
        ("gpt4o", "openai/gpt-4o"),
        ("gpt-4o", "openai/gpt-4o"),
        ("claude", "anthropic/claude-3.5-sonnet"),
        ("anthropic/claude-3-5-sonnet", "anthropic/claude-3.5-sonnet"),
        ("mistral-smal", "mistralai/mistral-small"),
    ],
)
def test_suggestions(wanted: str, first: str) -> None:
    close = models.suggestions(wanted, ids(records(catalogue())))
    assert close[0] == first
    assert len(close) <= 3 and len(set(close)) == len(close)


def test_no_suggestions_for_nonsense() -> None:
    assert models.suggestions("qqqqqqqq", ids(records(catalogue()))) == []


def test_find_exact_then_ignoring_case() -> None:
    listed = records(catalogue())
    assert models.find(listed, "openai/gpt-4o") is listed[0]
    assert models.find(listed, "OpenAI/GPT-4o") is listed[0]
    assert models.find(listed, "gpt-4o") is None


def test_records_skip_entries_without_an_id_and_cap_fields() -> None:
    built = records([{"id": "a"}, {"id": ""}, {"name": "no id"}, 3, {"id": 5}])  # type: ignore[list-item]
    assert ids(built) == ["a"]
    long_name = {"id": "b", "name": "я" * 1000, "pricing": {"prompt": "1" * 41}}
    kept = record(long_name)
    assert kept.name == "я" * (catalog.NAME_LIMIT // 2) and kept.prompt is None
    with catalog.build([{"id": "x" * (catalog.ID_LIMIT + 1)}, {"id": "c"}]) as built_list:
        assert (ids(built_list.records), built_list.dropped) == (["c"], 1)
        assert built_list.entry(built_list.records[0]) == {"id": "c"}


def test_at_most_max_models_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "MAX_MODELS", 3)
    with catalog.build({"id": f"m{i}"} for i in range(5)) as built:
        assert (ids(built.records), built.dropped) == (["m0", "m1", "m2"], 2)


# --------------------------------------------------------------------------- the cache


def test_cache_round_trip_and_modes(isolated_env: Path) -> None:
    path = models.write_cache(BASE + "/", catalogue(), now=1000.0)
    assert path == paths.models_cache_file(BASE)
    head = json.loads(path.read_bytes()[: catalog.HEADER_SIZE])
    assert head["fetched_at"] == 1000.0 and head["base_url"] == BASE and head["count"] == 6
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cached(now=1000.0 + 3599) == catalogue()
    assert cached(now=1000.0 + 3600) is None  # one hour: stale
    assert cached(now=999.0) is None  # written in the future: distrusted
    assert cached(max_age=None) == catalogue()
    assert models.cached_model_ids(BASE)[0] == "openai/gpt-4o"
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_cache_is_per_base_url(isolated_env: Path) -> None:
    models.write_cache(BASE, [{"id": "a"}])
    assert catalog.cached("http://127.0.0.1:10/api/v1", max_age=None) is None
    # A file that names another base URL (a hash collision, a copied file) is not used.
    path = paths.models_cache_file(BASE)
    data = path.read_bytes().replace(BASE.encode(), b"x".ljust(len(BASE)), 1)
    path.write_bytes(data)
    assert cached() is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b"[" * 100_000,
        b'{"fetched_at": "yesterday", "base_url": "%s", "models": []}' % BASE.encode(),
        b'{"fetched_at": 1e12, "base_url": "%s", "models": {"id": "a"}}' % BASE.encode(),
        b'{"llmost_models": 2, "base_url": "%s", "fetched_at": 1e12, "count": 1, "dropped": 0,'
        b' "records_at": 99}' % BASE.encode(),
        b'{"llmost_models": 2, "base_url": "%s", "fetched_at": 1e12, "count": 1, "dropped": 0,'
        b' "records_at": 4096}'.ljust(4095)
        % BASE.encode()
        + b'\n["a",null]\n',
    ],
)
def test_corrupt_cache_is_ignored_then_rewritten(isolated_env: Path, content: bytes) -> None:
    path = paths.models_cache_file(BASE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    assert cached() is None
    fetcher = Fetcher([{"id": "a"}])
    assert entries(models.load(settings(), fetcher=fetcher)) == [{"id": "a"}]
    assert fetcher.calls == 1
    assert cached() == [{"id": "a"}]


def test_load_uses_a_fresh_cache_and_refresh_skips_it(isolated_env: Path) -> None:
    fetcher = Fetcher(catalogue())
    first = models.load(settings(), fetcher=fetcher)
    second = models.load(settings(), fetcher=fetcher)
    assert (first.from_cache, second.from_cache, fetcher.calls) == (False, True, 1)
    assert entries(second) == entries(first) == catalogue()
    fetcher.result = [{"id": "new"}]
    third = models.load(settings(), refresh=True, fetcher=fetcher)
    assert (third.from_cache, entries(third), fetcher.calls) == (False, [{"id": "new"}], 2)
    assert cached() == [{"id": "new"}]


def test_unwritable_cache_is_not_fatal(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = isolated_env / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    logged: list[str] = []
    listing = models.load(settings(), fetcher=Fetcher([{"id": "a"}]), log=logged.append)
    assert entries(listing) == [{"id": "a"}]
    assert logged and "cannot write the model cache" in logged[0]


def test_lookup_refreshes_once_for_an_id_missing_from_the_cache(isolated_env: Path) -> None:
    models.write_cache(BASE, [{"id": "old"}])
    fetcher = Fetcher([{"id": "old"}, {"id": "brand/new"}])
    assert models.lookup(settings(), "brand/new", fetcher=fetcher) == {"id": "brand/new"}
    assert fetcher.calls == 1
    assert models.lookup(settings(), "old", fetcher=fetcher) == {"id": "old"}
    assert fetcher.calls == 1  # found in the (now fresh) cache


def test_lookup_of_an_unknown_id(isolated_env: Path) -> None:
    fetcher = Fetcher(catalogue())
    with pytest.raises(UsageError) as info:
        models.lookup(settings(), "gpt4o", fetcher=fetcher)
    assert info.value.exit_code == ExitCode.USAGE
    assert "unknown model 'gpt4o'" in str(info.value)
    assert "did you mean openai/gpt-4o" in str(info.value)
    assert fetcher.calls == 1  # fetched just now: no second fetch


GEMMAS = [
    {"id": "google/gemma-3-27b-it"},
    {"id": "openai/gpt-4o"},
    {"id": "openai/gpt-4o-mini"},
    {"id": "meta/llama-3-8b"},
    {"id": "meta/llama-3-70b"},
]


@pytest.mark.parametrize(
    ("wanted", "found"),
    [
        ("openai/gpt-4o", "openai/gpt-4o"),  # exact
        ("OPENAI/GPT-4O-MINI", "openai/gpt-4o-mini"),  # ignoring case
        ("gemma", "google/gemma-3-27b-it"),  # the one id that contains it
        ("GEMMA-3", "google/gemma-3-27b-it"),
        ("4o-mini", "openai/gpt-4o-mini"),
        ("gpt-4o", "openai/gpt-4o"),  # also in gpt-4o-mini, but the whole last part of one
        ("70b", "meta/llama-3-70b"),
        ("nothing-like-it", None),
        ("", None),
    ],
)
def test_resolve_an_id_or_a_unique_part(wanted: str, found: str | None) -> None:
    model = models.resolve(records(GEMMAS), wanted, BASE)
    assert (model.id if model else None) == found


def test_resolve_an_ambiguous_part_lists_the_candidates() -> None:
    with pytest.raises(UsageError) as info:
        models.resolve(records(GEMMAS), "llama", BASE)
    assert info.value.exit_code == ExitCode.USAGE
    assert "'llama' matches 2 models" in str(info.value)
    assert "meta/llama-3-70b, meta/llama-3-8b" in str(info.value)
    many = [{"id": f"v/m-{n:02}"} for n in range(20)]
    with pytest.raises(UsageError, match=r"matches 20 models .*v/m-07 and 12 more"):
        models.resolve(records(many), "m-", BASE)


def test_lookup_by_a_unique_part_uses_the_cache_and_refreshes_when_none(
    isolated_env: Path,
) -> None:
    models.write_cache(BASE, GEMMAS)
    fetcher = Fetcher([*GEMMAS, {"id": "x/brand-new"}])
    assert models.lookup(settings(), "gemma", fetcher=fetcher)["id"] == "google/gemma-3-27b-it"
    assert fetcher.calls == 0
    assert models.lookup(settings(), "brand", fetcher=fetcher)["id"] == "x/brand-new"
    assert fetcher.calls == 1
    with pytest.raises(UsageError, match="matches 2 models"):
        models.lookup(settings(), "llama", fetcher=fetcher)


# --------------------------------------------------------------------------- detail view


def test_detail_fields_of_a_full_model() -> None:
    fields = dict(models.detail_fields(catalogue()[0]))
    assert list(fields)[:5] == ["id", "name", "canonical_slug", "created", "context_length"]
    assert fields["created"] == "2024-05-10 (1715367049)"
    assert fields["architecture.input_modalities"] == "text, image, file"
    assert fields["architecture.instruct_type"] == "-"
    assert fields["pricing.prompt"] == "0.0000025 per token = 2.5 per 1M"
    assert fields["pricing.request"] == "0 (free)"
    assert fields["pricing.image"] == "0.003613 per image"
    assert fields["top_provider.is_moderated"] == "yes"
    assert fields["per_request_limits"] == "-"
    assert "description" not in fields
    assert models.description(catalogue()[0]) == DEFAULT_MODELS[0]["description"]


def test_detail_fields_of_odd_models() -> None:
    assert models.detail_fields({"id": "llama3"}) == [("id", "llama3")]
    odd = {
        "id": "x",
        "pricing": {"prompt": "-1", "completion": "abc"},
        "meta": {"n_ctx_train": 8192},
        "permission": [{"allow_sampling": True}],
        "description": "  ",
    }
    fields = dict(models.detail_fields(odd))
    assert fields["pricing.prompt"] == "-"
    assert fields["pricing.completion"] == "abc (?)"
    assert fields["meta.n_ctx_train"] == "8192"
    assert fields["permission"] == '[{"allow_sampling": true}]'
    assert models.description(odd) is None


@pytest.mark.parametrize(
    ("created", "shown"),
    [
        (1e20, "1e+20"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-1, "-1"),
        (-1e300, "-1e+300"),
        (10**30, str(10**30)),
        ("2024-05-10", "2024-05-10"),
        ("", "-"),
        (True, "yes"),
        (None, "-"),
        ([1, 2], "1, 2"),
        (0, "1970-01-01 (0)"),
        (1715367049.9, "2024-05-10 (1715367049)"),
    ],
)
def test_an_odd_created_value_is_shown_raw(created: Any, shown: str) -> None:
    assert dict(models.detail_fields({"id": "x", "created": created}))["created"] == shown


@pytest.mark.parametrize("value", ["1e999999999", "1e-999999999", "9" * 40, 1e300])
def test_an_absurd_price_is_unknown_and_never_overflows(value: Any) -> None:
    assert models.parse_price(value) is None
    model = {"id": "x", "pricing": {"prompt": value, "completion": value}}
    assert models.Summary.of(record(model)).prompt_per_m is None
    assert dict(models.detail_fields(model))["pricing.prompt"].endswith("(?)")


# --------------------------------------------------------------------------- cost


def cache_prices(catalog: list[dict[str, Any]] | None = None) -> None:
    # An old cache on purpose: cost accounting reads it whatever its age.
    models.write_cache(BASE, catalogue() if catalog is None else catalog, now=1.0)


def test_server_cost_wins_and_needs_no_cache(isolated_env: Path) -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cost=0.42)
    assert models.cost_of(usage, "openai/gpt-4o", BASE) == 0.42
    assert models.cost_of(usage, None, BASE) == 0.42
    assert models.cost_of(Usage(cost=0.0), None, BASE) == 0.0


def test_cost_from_cached_prices(isolated_env: Path) -> None:
    cache_prices()
    usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    # 1000 x 0.0000025 + 500 x 0.00001 = 0.0025 + 0.005, exactly (Decimal, then one float)
    assert models.cost_of(usage, "openai/gpt-4o", BASE) == 0.0075
    big = Usage(prompt_tokens=3_000_000, completion_tokens=1)
    assert models.cost_of(big, "mistralai/mistral-small", BASE) == 0.6000006
    free = "meta-llama/llama-3.1-8b-instruct:free"
    assert models.cost_of(usage, free, BASE) == 0.0


def test_cost_adds_a_per_request_price(isolated_env: Path) -> None:
    prices = {"prompt": "0.001", "completion": "0.002", "request": "0.5"}
    cache_prices([{"id": "m", "pricing": prices}])
    assert models.cost_of(Usage(prompt_tokens=10, completion_tokens=5), "m", BASE) == 0.52


@pytest.mark.parametrize(
    ("model_id", "usage"),
    [
        ("openrouter/auto", Usage(prompt_tokens=10, completion_tokens=5)),  # "-1": varies
        ("not/cached", Usage(prompt_tokens=10, completion_tokens=5)),
        (None, Usage(prompt_tokens=10, completion_tokens=5)),
        ("openai/gpt-4o", Usage(prompt_tokens=10, completion_tokens=None)),
        ("openai/gpt-4o", Usage()),
        ("half", Usage(prompt_tokens=10, completion_tokens=5)),
        ("bare", Usage(prompt_tokens=10, completion_tokens=5)),
    ],
)
def test_unknown_cost(isolated_env: Path, model_id: str | None, usage: Usage) -> None:
    cache_prices([*catalogue(), {"id": "half", "pricing": {"prompt": "0.1"}}, {"id": "bare"}])
    assert models.cost_of(usage, model_id, BASE) is None


def test_an_unknown_price_of_zero_tokens_does_not_matter(isolated_env: Path) -> None:
    cache_prices([{"id": "half", "pricing": {"prompt": "0.001", "completion": "-1"}}])
    assert models.cost_of(Usage(prompt_tokens=10, completion_tokens=0), "half", BASE) == 0.01


@pytest.mark.parametrize("model_id", ["openrouter/auto", "bare", "garbage"])
def test_no_known_price_is_no_cost_even_for_zero_tokens(isolated_env: Path, model_id: str) -> None:
    # never "$0" when the price is unknown; a genuinely free model costs 0
    garbage = {"id": "garbage", "pricing": {"prompt": "abc", "completion": None}}
    cache_prices([*catalogue(), {"id": "bare"}, garbage])
    nothing = Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    assert models.cost_of(nothing, model_id, BASE) is None
    assert models.cost_of(nothing, "meta-llama/llama-3.1-8b-instruct:free", BASE) == 0.0


def test_no_cache_means_unknown_cost(isolated_env: Path) -> None:
    usage = Usage(prompt_tokens=1, completion_tokens=1)
    assert models.cost_of(usage, "openai/gpt-4o", BASE) is None
    assert not paths.models_cache_file(BASE).exists()  # and nothing was fetched or written


def test_session_cost(isolated_env: Path) -> None:
    cache_prices()
    turn = Usage(prompt_tokens=1000, completion_tokens=500)
    assert models.session_cost([], BASE) == 0.0
    assert models.session_cost([(turn, "openai/gpt-4o"), (turn, "openai/gpt-4o")], BASE) == 0.015
    served = Usage(prompt_tokens=1, completion_tokens=1, cost=0.1)
    assert models.session_cost([(turn, "openai/gpt-4o"), (served, None)], BASE) == 0.1075
    # One unpriced turn makes the total unknown rather than too low.
    assert models.session_cost([(turn, "openai/gpt-4o"), (turn, "openrouter/auto")], BASE) is None
