"""Options of one turn (flags of ``ask``/``chat``) and the request body built from them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from llmost_cli.core import params
from llmost_cli.core.settings import Settings
from llmost_cli.errors import UsageError

TOOL_CHOICES = ("auto", "none", "required")
REASONING_EFFORTS = ("low", "medium", "high")


def reasoning_effort(text: str) -> str:
    """``--reasoning-effort low|medium|high``, refused in plain words."""
    value = text.strip().lower()
    if value not in REASONING_EFFORTS:
        raise UsageError(f"--reasoning-effort must be low, medium or high, got {text!r}")
    return value


@dataclass
class TurnOptions:
    """Flags shared by ``ask`` and ``chat``; ``None`` means "not given"."""

    model: str | None = None
    system: str | None = None
    image: list[str] = field(default_factory=list)
    prefill: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    json_mode: bool = False
    schema: str | None = None
    tools: str | None = None
    tool: list[str] = field(default_factory=list)
    tools_all: bool = False
    tool_choice: str | None = None
    param: list[str] = field(default_factory=list)
    no_stream: bool = False
    markdown: bool | None = None
    continue_: bool = False
    session: str | None = None
    timeout: float | None = None
    retries: int | None = None
    # -- context and templates (core/attachments.py, core/templates.py) --
    file: list[str] = field(default_factory=list)
    template: str | None = None
    var: list[str] = field(default_factory=list)
    # -- reasoning models --
    reasoning_effort: str | None = None
    show_reasoning: bool | None = None

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> Self:
        """Build from click's ``ctx.params`` (extra keys are ignored)."""
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if k in names
        }
        return cls(**kwargs)

    def overrides(self) -> dict[str, Any]:
        """Settings given on the command line, checked (a bad value is a usage error)."""
        raw: dict[str, Any] = {
            "model": self.model,
            "system": self.system,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "stop": self.stop or None,
            "seed": self.seed,
            "timeout": self.timeout,
            "retries": self.retries,
            "markdown": self.markdown,
        }
        return {k: params.check(k, v) for k, v in raw.items() if v is not None}


def is_gateway(base_url: str) -> bool:
    """LLMost (and OpenRouter) accept the ``usage`` request field; plain servers may not."""
    host = (urlsplit(base_url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in ("llmost.ru", "openrouter.ai"))


def build_body(
    settings: Settings,
    messages: list[dict[str, Any]],
    opts: TurnOptions,
    *,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if settings.model:
        body["model"] = settings.model
    body["messages"] = messages
    body.update(settings.sampling)
    stream = not opts.no_stream
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    if is_gateway(settings.base_url):
        body["usage"] = {"include": True}
    response_format = build_response_format(opts)
    if response_format:
        body["response_format"] = response_format
    if tools:
        body["tools"] = tools
    if opts.tool_choice:
        body["tool_choice"] = tool_choice(opts.tool_choice, tools)
    if opts.reasoning_effort:
        body["reasoning"] = {"effort": opts.reasoning_effort}
    for item in opts.param:
        key, value = params.parse_param(item)
        body[key] = value
    return body


def build_response_format(opts: TurnOptions) -> dict[str, Any] | None:
    if opts.json_mode and opts.schema:
        raise UsageError("--json-mode and --schema cannot be combined; --schema implies JSON")
    if opts.json_mode:
        return {"type": "json_object"}
    if opts.schema:
        return {"type": "json_schema", "json_schema": json_schema_spec(opts.schema)}
    return None


def load_schema(value: str) -> dict[str, Any]:
    """``--schema`` as a JSON Schema object: inline JSON, a file, or the short form."""
    text = value.strip()
    if not text.startswith("{"):
        path = Path(value).expanduser()
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"--schema file {path}: cannot read it ({exc})") from None
        else:
            from llmost_cli.core.schema_short import parse_short_schema

            return parse_short_schema(value)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--schema is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(schema, dict):
        raise UsageError("--schema must be a JSON object")
    return schema


def json_schema_spec(value: str) -> dict[str, Any]:
    """The ``json_schema`` member: accepts a bare schema or OpenAI's {name, schema} wrapper."""
    schema = load_schema(value)
    if isinstance(schema.get("schema"), dict) and "name" in schema:
        return schema
    return {"name": "response", "strict": True, "schema": schema}


def load_tools_file(path_text: str) -> list[dict[str, Any]]:
    path = Path(path_text).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--tools file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--tools file {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--tools file {path} is not valid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise UsageError(f"--tools file {path} must hold a JSON list of tool definitions")
    tools = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and item.get("type") == "function" and "function" in item:
            tool = item
        elif isinstance(item, dict) and "name" in item:
            tool = {"type": "function", "function": item}  # a bare function definition
        else:
            raise UsageError(f"--tools file {path}: entry {i} is not a tool definition")
        if not isinstance(tool["function"], dict) or not tool["function"].get("name"):
            raise UsageError(f"--tools file {path}: entry {i} has no function name")
        tools.append(tool)
    return tools


def tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    return [str(t["function"]["name"]) for t in tools or []]


def tool_choice(value: str, tools: list[dict[str, Any]] | None) -> Any:
    if not tools:
        raise UsageError("--tool-choice needs tools: give --tools FILE, --tool NAME or --tools-all")
    if value in TOOL_CHOICES:
        return value
    names = tool_names(tools)
    if value not in names:
        raise UsageError(
            f"--tool-choice {value!r} is neither auto, none, required nor an offered tool "
            f"({', '.join(names)})"
        )
    return {"type": "function", "function": {"name": value}}
