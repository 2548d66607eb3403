"""Typed stream events: what ``client.py`` produces and ``render.py`` / the store consume.

They carry plain data only, so that nothing downstream needs httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """Generation id and the model that actually answered (first chunk that names them)."""

    id: str | None
    model: str | None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text: that of one or more consecutive chunks (the parser joins those of one read)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning text, joined like TextDelta."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call; fragments with the same ``index`` belong together."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens is not None:
            out["reasoning_tokens"] = self.reasoning_tokens
        return out

    @property
    def reasoning_tokens(self) -> int | None:
        details = self.raw.get("completion_tokens_details")
        value = details.get("reasoning_tokens") if isinstance(details, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def __add__(self, other: Usage) -> Usage:
        """The usage of two requests together; a count unknown in either is unknown."""

        def add(a: int | float | None, b: int | float | None) -> Any:
            return None if a is None or b is None else a + b

        reasoning = add(self.reasoning_tokens, other.reasoning_tokens)
        raw: dict[str, Any] = {}
        if reasoning is not None:
            raw["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return Usage(
            prompt_tokens=add(self.prompt_tokens, other.prompt_tokens),
            completion_tokens=add(self.completion_tokens, other.completion_tokens),
            total_tokens=add(self.total_tokens, other.total_tokens),
            cost=add(self.cost, other.cost),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An error reported by the server inside a 200 response (mid-stream or in the body)."""

    message: str
    code: int | str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


StreamEvent = (
    ResponseMeta | TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish | ErrorEvent
)
