"""Small text helpers shared by the core (no terminal knowledge: escaping is the UI's job)."""

from __future__ import annotations


def one_line(text: str) -> str:
    """All whitespace runs, newlines included, folded to single spaces."""
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def format_cost(cost: float) -> str:
    """Dollars, with as many decimals as the amount needs (prices are fractions of a cent)."""
    return f"${cost:.6f}".rstrip("0").rstrip(".") if cost else "$0"
