"""Sampling parameters and settings: one table of names, types and ranges.

The same checks serve command-line flags, the config file and the REPL's ``/set``, so a value
is either valid everywhere or rejected everywhere with the same message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmost_cli.errors import UsageError

MAX_STOP = 4
SECRET_KEYS = frozenset({"api_key"})  # never shown whole, never quoted in a message


@dataclass(frozen=True, slots=True)
class Spec:
    kind: type  # float, int, str, bool, list
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # (low, high] instead of [low, high]
    describe: str = ""

    def range_text(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        left = "(" if self.low_open else "["
        return f"{left}{_num(self.low)}, {_num(self.high)}]"


def _num(x: float | None) -> str:
    if x is None:
        return "inf"
    return str(int(x)) if float(x).is_integer() else str(x)


# Request-body sampling parameters (DESIGN.md §1), keyed by their config/request name.
SAMPLING: dict[str, Spec] = {
    "temperature": Spec(float, 0, 2, describe="sampling temperature"),
    "top_p": Spec(float, 0, 1, low_open=True, describe="nucleus sampling"),
    "max_tokens": Spec(int, 1, None, describe="maximum tokens in the answer"),
    "frequency_penalty": Spec(float, -2, 2),
    "presence_penalty": Spec(float, -2, 2),
    "seed": Spec(int),
    "stop": Spec(list, describe=f"stop sequences, at most {MAX_STOP}"),
}

# Every key the config file accepts, with its type.
CONFIG_KEYS: dict[str, Spec] = {
    "base_url": Spec(str, describe="API base URL"),
    "api_key": Spec(str, describe="API key (prefer api_key_cmd)"),
    "api_key_cmd": Spec(str, describe="command whose output is the API key"),
    "model": Spec(str, describe="model id, e.g. openai/gpt-4o"),
    "system": Spec(str, describe="default system prompt"),
    **SAMPLING,
    "timeout": Spec(float, 0, None, low_open=True, describe="read timeout in seconds"),
    "retries": Spec(int, 0, 10, describe="retries on 429, 5xx and connection failures"),
    "markdown": Spec(bool, describe="render markdown on a terminal"),
    "max_tool_rounds": Spec(int, 1, 100, describe="tool-call rounds per question (default 8)"),
}


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


INT_LIMIT = 2**63  # integers must fit a signed 64-bit field, as servers and TOML expect
MAX_JSON_DEPTH = 64  # nesting allowed in --param values and JSON typed for a list
MAX_SHOWN = 40  # characters of a bad value quoted back in a message


def shown(text: str) -> str:
    """A value quoted back to the user, cut short (a 5,000-digit number is not a message)."""
    return repr(text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…")


def check(key: str, value: Any, *, source: str | None = None) -> Any:
    """Validate ``value`` for ``key`` and return it normalised, or raise UsageError.

    ``source`` names where the value came from (a flag, a config file) for the message.
    """
    spec = CONFIG_KEYS.get(key)
    where = source or flag_name(key)
    if spec is None:
        known = ", ".join(CONFIG_KEYS)
        raise UsageError(f"unknown key {key!r}; known keys: {known}")
    if spec.kind is list:
        return _check_stop(value, where)
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{where} must be true or false, got {_shown_value(value)}")
    if spec.kind is str:
        if not isinstance(value, str):
            # never the value itself: it may be a key typed in the wrong place
            raise UsageError(f"{where} must be a string, got {_shown_value(value, key)}")
        if key in SECRET_KEYS:
            check_secret(value, where)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where} must be a number, got {_shown_value(value)}")
    if spec.kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise UsageError(f"{where} must be a whole number, got {_shown_value(value)}")
        value = int(value)
        if not -INT_LIMIT <= value < INT_LIMIT:
            raise UsageError(f"{where} must fit in 64 bits, got {_shown_value(value)}")
    else:
        value = float(value)
        if not math.isfinite(value):
            raise UsageError(f"{where} must be a finite number, got {value!r}")
    _check_range(spec, value, where)
    return value


def check_secret(value: str, where: str) -> None:
    """An API key goes into an HTTP header: printable ASCII, no spaces. Never echo it."""
    bad = next((ch for ch in value if not 0x20 < ord(ch) < 0x7F), None)
    if bad is None:
        return
    code = ord(bad)
    if code == 0x20:
        kind = "a space"
    elif code < 0x20 or 0x7F <= code < 0xA0:
        kind = "a control character"
    else:
        kind = "a non-ASCII character"
    raise UsageError(
        f"{where} contains {kind}; an API key is printable ASCII without spaces "
        "(check for a stray newline or quote)"
    )


def _shown_value(value: Any, key: str = "") -> str:
    if key in SECRET_KEYS:
        return f"a {type(value).__name__}"
    return shown(value) if isinstance(value, str) else shown(repr(value))[1:-1]


def _check_range(spec: Spec, value: float, where: str) -> None:
    too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
    too_high = spec.high is not None and value > spec.high
    if too_low or too_high:
        rng = spec.range_text()
        prefix = "" if rng.startswith((">", "<")) else "in "
        raise UsageError(f"{where} must be {prefix}{rng}, got {_num(value)}")


def _check_stop(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where} must be a string or a list of strings")
    if len(value) > MAX_STOP:
        raise UsageError(f"{where}: at most {MAX_STOP} stop sequences, got {len(value)}")
    if any(v == "" for v in value):
        raise UsageError(f"{where}: a stop sequence cannot be empty")
    return list(value)


def parse_text_value(key: str, text: str, *, source: str | None = None) -> Any:
    """Turn text typed by a user (``config set``, ``/set``) into a checked value for ``key``."""
    spec = CONFIG_KEYS.get(key)
    if spec is None:
        return check(key, text, source=source)
    where = source or key
    converters: dict[type, Callable[[str], Any]] = {
        str: lambda s: s,
        int: lambda s: _to_int(s, where),
        float: _to_float,
        bool: _to_bool,
        list: lambda s: _to_list(s, where),
    }
    try:
        value = converters[spec.kind](text)
    except ValueError:
        kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(
            spec.kind, "a value"
        )
        raise UsageError(f"{where} must be {kind}, got {shown(text)}") from None
    return check(key, value, source=where)


def flag_parser(key: str) -> Callable[[str], Any]:
    """A typer ``parser=`` for the flag of ``key``: ``-t abc`` says
    ``--temperature must be a number, got 'abc'``, the same words as the config file and /set.
    """

    def parse(text: str) -> Any:
        return parse_text_value(key, text, source=flag_name(key))

    return parse


def _to_int(s: str, where: str) -> int:
    stripped = s.strip()
    digits = stripped.removeprefix("-").removeprefix("+")
    if len(digits) > 19 and digits.isdigit():  # never int() 5,000 digits: refused anyway
        raise UsageError(f"{where} must fit in 64 bits, got a {len(digits)}-digit number")
    return int(stripped)


def _to_float(s: str) -> float:
    return float(s.strip())


def _to_bool(s: str) -> bool:
    low = s.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    raise ValueError(s)


def _to_list(s: str, where: str) -> list[str]:
    """One stop sequence, or a JSON list of them; text that is not JSON (``[INST]``) is one."""
    stripped = s.strip()
    if stripped.startswith("["):
        try:
            parsed = loads_strict(stripped, where)
        except json.JSONDecodeError:
            return [s]
        if isinstance(parsed, list):
            return [str(x) for x in parsed]
    return [s]


class _NotAllowed(Exception):
    """Raised from inside ``json.loads`` by the strict number hooks."""


def _reject_constant(name: str) -> Any:
    raise _NotAllowed(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotAllowed(f"{text} is too large for a number")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise _NotAllowed(f"{shown(text)[1:-1]} is too large for a number")
    value = int(text)
    if not -INT_LIMIT <= value < 2 * INT_LIMIT:  # signed or unsigned 64-bit
        raise _NotAllowed(f"{text} is too large for a number")
    return value


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than ``limit`` (strings skipped).

    Checked before parsing: the parser recurses, and recursion has a limit of its own.
    """
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def loads_strict(text: str, where: str) -> Any:
    """JSON as a request body can carry it: no NaN/Infinity, numbers that fit, bounded depth.

    Text that is not JSON raises ``json.JSONDecodeError`` (callers may take it as a string);
    JSON that breaks those rules is a UsageError naming ``where``.
    """
    if json_depth_exceeds(text):
        raise UsageError(f"{where} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    # First the syntax alone, so that "NaN and bread" is plain text, not a bad number.
    json.loads(text, parse_constant=lambda _: None, parse_int=lambda _: 0, parse_float=lambda _: 0)
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except _NotAllowed as exc:
        raise UsageError(f"{where}: {exc}; quote it to send a string") from None


def parse_param(item: str) -> tuple[str, Any]:
    """``--param KEY=JSON``; a value that is not JSON is taken as a string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--param expects KEY=JSON, got {shown(item)}")
    try:
        return key, loads_strict(raw, f"--param {key}")
    except json.JSONDecodeError:
        return key, raw
