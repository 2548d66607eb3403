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
        raise UsageError(f"{where} must be true or false, got {value!r}")
    if spec.kind is str:
        if isinstance(value, str):
            return value
        raise UsageError(f"{where} must be a string, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where} must be a number, got {value!r}")
    if spec.kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise UsageError(f"{where} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise UsageError(f"{where} must be a finite number, got {value!r}")
    _check_range(spec, value, where)
    return value


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
        int: _to_int,
        float: _to_float,
        bool: _to_bool,
        list: _to_list,
    }
    try:
        value = converters[spec.kind](text)
    except ValueError:
        kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(
            spec.kind, "a value"
        )
        raise UsageError(f"{where} must be {kind}, got {text!r}") from None
    return check(key, value, source=where)


def _to_int(s: str) -> int:
    return int(s.strip())


def _to_float(s: str) -> float:
    return float(s.strip())


def _to_bool(s: str) -> bool:
    low = s.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    raise ValueError(s)


def _to_list(s: str) -> list[str]:
    stripped = s.strip()
    if stripped.startswith("["):
        parsed = json.loads(stripped)
        if isinstance(parsed, list):
            return [str(x) for x in parsed]
    return [s]


def parse_param(item: str) -> tuple[str, Any]:
    """``--param KEY=JSON``; a value that is not JSON is taken as a string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--param expects KEY=JSON, got {item!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw
