"""The conversation's types: stored messages, conversations, tool calls, and the reply as it
accumulates from stream events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmost_cli.core.events import (
    ErrorEvent,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)


@dataclass
class Message:
    role: str  # system | user | assistant | tool
    content: str | list[dict[str, Any]] | None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    prefill: bool = False
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    partial: bool = False
    model: str | None = None
    created: float = 0.0  # filled by the store when 0
    # The -f texts inside ``content``: never sent (they are in the content already); the store
    # keeps each one once (core/textrefs.py). Not compared: the same content is the same message.
    attached: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def to_api(self) -> dict[str, Any]:
        """The OpenAI wire message: only what the API accepts, none of our bookkeeping."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls is not None:
            out["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass
class Conversation:
    id: str
    name: str | None
    model: str | None
    created: float
    updated: float


@dataclass
class Thread:
    """The conversation a command continues (or will start), as read from the store."""

    conversation: Conversation | None = None
    messages: list[Message] = field(default_factory=list)
    name: str | None = None  # --session NAME not yet stored: created with the first exchange


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    def parsed_arguments(self) -> Any:
        """The arguments as JSON, or None when the string is not valid JSON."""
        try:
            return json.loads(self.arguments) if self.arguments.strip() else {}
        except json.JSONDecodeError:
            return None


@dataclass
class Reply:
    """The assistant's answer as it accumulates from stream events."""

    prefill: str = ""
    id: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    error: ErrorEvent | None = None
    _reasoning: list[str] = field(default_factory=list)
    _text: list[str] = field(default_factory=list)
    _calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def add(self, event: StreamEvent) -> None:
        match event:
            case TextDelta(text=text):
                self._text.append(text)
            case ToolCallDelta():
                slot = self._calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
                if event.id:
                    slot["id"] = event.id
                if event.name:
                    slot["name"] = event.name
                slot["arguments"] += event.arguments
            case Finish(reason=reason):
                self.finish_reason = reason
            case Usage():
                self.usage = event
            case ResponseMeta(id=rid, model=model):
                self.id, self.model = rid, model
            case ErrorEvent():
                self.error = event
            case ReasoningDelta(text=text):
                self._reasoning.append(text)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    @property
    def text(self) -> str:
        """The whole answer: prefill + continuation."""
        return self.prefill + "".join(self._text)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"])
            for i, c in sorted(self._calls.items())
        ]

    @property
    def partial(self) -> bool:
        """Cut off: no finish reason arrived, or the server reported an error."""
        return self.finish_reason is None or self.error is not None

    @property
    def empty(self) -> bool:
        return not self._text and not self._calls

    @property
    def has_content(self) -> bool:
        """Something worth keeping arrived: text, or whole tool calls (a cut-off call is not)."""
        return bool(self._text) or (bool(self._calls) and not self.partial)

    def to_message(self) -> Message:
        # A call cut off mid-arguments cannot be answered: keep only the text of a partial reply.
        calls = None if self.partial else [c.to_api() for c in self.tool_calls] or None
        return Message(
            role="assistant",
            content=self.text if (self.text or not calls) else None,
            tool_calls=calls,
            prefill=bool(self.prefill),
            finish_reason=self.finish_reason,
            usage=self.usage.raw if self.usage else None,
            partial=self.partial,
            model=self.model,
        )
