"""One validator for flags, config values and /set."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

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


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("x=NaN", "--param x: NaN is not a number JSON allows; quote it to send a string"),
        ("x=Infinity", "--param x: Infinity is not a number JSON allows"),
        ("x=-Infinity", "--param x: -Infinity is not a number JSON allows"),
        ("x=1e999", "--param x: 1e999 is too large for a number"),
        ("x=-1e999", "--param x: -1e999 is too large for a number"),
        ('x={"a": [1, NaN]}', "--param x: NaN is not a number JSON allows"),
        ("x=" + "9" * 5000, "--param x: " + "9" * 40 + "… is too large for a number"),
        ("x=18446744073709551616", "--param x: 18446744073709551616 is too large"),
        ("x=" + "[" * 100_000, "--param x nests JSON deeper than 64 levels"),
        ("x=" + "[" * 65 + "]" * 65, "--param x nests JSON deeper than 64 levels"),
    ],
)
def test_parse_param_refuses_what_json_bodies_cannot_carry(item: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        params.parse_param(item)
    assert str(info.value).startswith(message)
    assert len(str(info.value)) < 120


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("x=NaN and bread", ("x", "NaN and bread")),  # not JSON: a string, as before
        ('x="NaN"', ("x", "NaN")),
        ('x="[[[["', ("x", "[[[[")),  # brackets inside a string do not nest
        ("x=" + "[" * 64 + "]" * 64, ("x", eval("[" * 64 + "]" * 64))),
        ("x=18446744073709551615", ("x", 2**64 - 1)),
        ("x=-9223372036854775808", ("x", -(2**63))),
        ("x=1e308", ("x", 1e308)),
    ],
)
def test_parse_param_keeps_what_is_fine(item: str, expected: tuple[str, Any]) -> None:
    assert params.parse_param(item) == expected


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("temperature", "abc", "--temperature must be a number, got 'abc'"),
        ("temperature", "1e999", "--temperature must be a finite number, got inf"),
        ("temperature", "nan", "--temperature must be a finite number, got nan"),
        ("max_tokens", "1.5", "--max-tokens must be a whole number, got '1.5'"),
        ("max_tokens", "9" * 5000, "--max-tokens must fit in 64 bits, got a 5000-digit number"),
        ("max_tokens", "x" * 5000, "--max-tokens must be a whole number, got '" + "x" * 40 + "…'"),
        ("seed", "99999999999999999999", "--seed must fit in 64 bits, got a 20-digit number"),
        ("seed", "9223372036854775808", "--seed must fit in 64 bits, got 9223372036854775808"),
        ("retries", "-1", "--retries must be in [0, 10], got -1"),
        ("top_p", "0", "--top-p must be in (0, 1], got 0"),
    ],
)
def test_flag_parser_speaks_plain_words(key: str, text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        params.flag_parser(key)(text)
    assert str(info.value) == message


def test_flag_parser_plugs_into_typer() -> None:
    """What cli/options.py needs for `-t abc` to say the plain message (not typer's)."""
    app = typer.Typer()

    @app.command()
    def ask(
        temperature: Annotated[
            float | None,
            typer.Option("-t", "--temperature", parser=params.flag_parser("temperature")),
        ] = None,
    ) -> None:
        typer.echo(repr(temperature))

    assert CliRunner().invoke(app, ["-t", "0.5"]).output == "0.5\n"
    result = CliRunner().invoke(app, ["-t", "abc"])
    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == "--temperature must be a number, got 'abc'"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seed", 2**63, "--seed must fit in 64 bits"),
        ("seed", -(2**63) - 1, "--seed must fit in 64 bits"),
        ("api_key", "sk abc", "--api-key contains a space"),
        ("api_key", "sk\nabc", "--api-key contains a control character"),
        ("api_key", "sk\u200babc", "--api-key contains a non-ASCII character"),
        ("api_key", 12345, "--api-key must be a string, got a int"),
    ],
)
def test_more_invalid(key: str, value: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        params.check(key, value)
    assert str(info.value).startswith(message)
    if key == "api_key":
        assert "abc" not in str(info.value) and "12345" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[INST]", ["[INST]"]), ('["a", "b"]', ["a", "b"]), ('["a", ', ['["a", '])],
)
def test_stop_text_that_is_not_json_is_one_sequence(text: str, expected: list[str]) -> None:
    assert params.parse_text_value("stop", text) == expected
