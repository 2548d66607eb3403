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
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
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
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


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
