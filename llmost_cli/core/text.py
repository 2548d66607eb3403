"""Small text helpers shared by the core (no terminal knowledge: escaping is the UI's job)."""

from __future__ import annotations


def one_line(text: str) -> str:
    """All whitespace runs, newlines included, folded to single spaces."""
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def format_cost(cost: float) -> str:
    """Dollars without trailing zeros, at least two significant digits: a cost that is not
    zero is never shown as "$0" ($0.0000000012)."""
    import math

    if cost == 0 or not math.isfinite(cost):
        return "$0" if cost == 0 else f"${cost}"
    decimals = min(max(1 - math.floor(math.log10(abs(cost))), 6), 30)
    text = f"${cost:.{decimals}f}".rstrip("0").rstrip(".")
    return text if text not in ("$0", "$-0") else f"${cost:.2g}"
