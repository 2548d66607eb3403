"""One validator for flags, config values and /set."""

from __future__ import annotations

from typing import Any

import pytest

from llmost_cli.core import params
from llmost_cli.errors import UsageError


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("temperature", 0, 0.0),
        ("temperature", 2, 2.0),
        ("top_p", 1, 1.0),
        ("top_p", 0.01, 0.01),
        ("max_tokens", 1, 1),
        ("max_tokens", 5.0, 5),
        ("frequency_penalty", -2, -2.0),
        ("seed", -3, -3),
        ("stop", "END", ["END"]),
        ("stop", ["a", "b", "c", "d"], ["a", "b", "c", "d"]),
        ("markdown", False, False),
        ("retries", 0, 0),
        ("model", "a/b", "a/b"),
    ],
)
def test_valid(key: str, value: Any, expected: Any) -> None:
    assert params.check(key, value) == expected


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("temperature", 2.01, "--temperature must be in [0, 2], got 2.01"),
        ("temperature", float("nan"), "finite"),
        ("top_p", 0, "--top-p must be in (0, 1], got 0"),
        ("max_tokens", 0, "--max-tokens must be >= 1, got 0"),
        ("max_tokens", 2.5, "whole number"),
        ("timeout", 0, "--timeout must be > 0"),
        ("retries", 11, "[0, 10]"),
        ("stop", ["a"] * 5, "at most 4"),
        ("stop", [""], "cannot be empty"),
        ("stop", [1], "list of strings"),
        ("markdown", "yes", "true or false"),
        ("temperature", True, "must be a number"),
        ("model", 3, "must be a string"),
        ("colour", 1, "unknown key 'colour'"),
    ],
)
def test_invalid(key: str, value: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        params.check(key, value)
    assert message in str(info.value)


def test_source_names_where_the_value_came_from() -> None:
    with pytest.raises(UsageError, match=r"^profiles\.x\.temperature must be"):
        params.check("temperature", 9, source="profiles.x.temperature")


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("temperature", " 0.5 ", 0.5),
        ("max_tokens", "10", 10),
        ("markdown", "off", False),
        ("markdown", "YES", True),
        ("stop", "END", ["END"]),
        ("stop", '["a", "b"]', ["a", "b"]),
        ("system", "  keep spaces ", "  keep spaces "),
    ],
)
def test_parse_text_value(key: str, text: str, expected: Any) -> None:
    assert params.parse_text_value(key, text) == expected


def test_parse_text_value_bad_number() -> None:
    with pytest.raises(UsageError, match="temperature must be a number, got 'warm'"):
        params.parse_text_value("temperature", "warm")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("top_k=40", ("top_k", 40)),
        ('x={"a": [1]}', ("x", {"a": [1]})),
        ("user=some text", ("user", "some text")),
        ("flag=true", ("flag", True)),
        ("empty=", ("empty", "")),
    ],
)
def test_parse_param(item: str, expected: tuple[str, Any]) -> None:
    assert params.parse_param(item) == expected


@pytest.mark.parametrize("item", ["novalue", "=3", " =x"])
def test_parse_param_invalid(item: str) -> None:
    with pytest.raises(UsageError, match="KEY=JSON"):
        params.parse_param(item)
