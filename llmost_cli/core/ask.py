"""``ask``: one question, checked into a turn before anything is stored or sent.

The command (``cli/ask.py``) opens the store and the client; everything here is pure: it
reads only what it is handed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from llmost_cli.core import attachments, inputs, templates, tools
from llmost_cli.core.messages import Message
from llmost_cli.core.request import TurnOptions, json_schema_spec, load_tools_file
from llmost_cli.core.settings import Settings
from llmost_cli.core.turn import Turn, TurnResult, compose
from llmost_cli.errors import LlmostError, StructuredOutputError, UsageError


@dataclass
class AskOptions(TurnOptions):
    prompt: list[str] = field(default_factory=list)
    output: str = "text"
    usage: bool = False
    no_stdin: bool = False
    dry_run: bool = False
    tool_result: list[str] = field(default_factory=list)
    yes: bool = False
    extract: bool = False
    block: int | None = None

    @property
    def extracts(self) -> bool:
        """``-x`` or ``--block N``: print one code block, not the answer."""
        return self.extract or self.block is not None

    @property
    def json_output(self) -> bool:
        return self.output == "json"


@dataclass(frozen=True)
class Question:
    """The user's side of an ask, read and checked."""

    text: str
    images: tuple[str, ...]
    system: str | None
    offered: tuple[dict[str, Any], ...]
    local: dict[str, tools.LocalTool]
    stdin_text: str | None = None  # kept for --tool-result ID=-
    attached: tuple[str, ...] = ()  # the -f texts inside ``text`` (the store keeps each once)


def read_question(
    opts: AskOptions,
    settings: Settings,
    stdin: IO[bytes] | None,
    warn: Callable[[str], None],
    *,
    fetch: attachments.Fetch | None = None,
    template: templates.Filled | None = None,
    note: Callable[[str], None] | None = None,
) -> Question:
    """Prompt, stdin, ``-f`` context, images, system prompt and tools: every usage error before
    anything is sent. ``fetch`` gets ``-f`` URLs; ``template`` wraps the text (``-T``)."""
    if opts.tool_result and not (opts.continue_ or opts.session):
        raise UsageError(
            "--tool-result answers calls of a stored conversation: add -c or --session"
        )
    system = inputs.read_text_arg(settings.system, "--system") if settings.system else None
    offered, local = offered_tools(opts, settings)
    piped = None if opts.no_stdin else stdin
    stdin_text = None
    if piped is not None and "-" not in opts.file:  # `-f -` attaches stdin as a block instead
        read = inputs.read_stdin(piped)
        if read.replaced:
            warn("standard input is not valid UTF-8; invalid bytes were replaced with U+FFFD")
        stdin_text = read.text
    wants_stdin = any(item.partition("=")[2] == "-" for item in opts.tool_result)
    context = attachments.load(opts.file, stdin=piped, fetch=fetch, warn=warn, note=note)
    prompt = " ".join(opts.prompt)
    text = attachments.compose_text(prompt, context, None if wants_stdin else stdin_text)
    if template is not None:
        text = template.prompt(text)
    images = tuple(inputs.image_url(spec) for spec in opts.image) + tuple(context.images)
    if not text.strip() and not images and not opts.tool_result:
        raise UsageError(
            "no prompt given", hint="pass words after 'ask' or pipe text on standard input"
        )
    attached = tuple(block.text for block in context.blocks)
    return Question(text, images, system, tuple(offered), local, stdin_text, attached)


def offered_tools(
    opts: TurnOptions, settings: Settings
) -> tuple[list[dict[str, Any]], dict[str, tools.LocalTool]]:
    """Tool definitions offered this turn, and the declared ones among them that may run.

    Only a tool named with ``--tool`` (or every one with ``--tools-all``) is offered, and only
    an offered tool can ever run (DESIGN §9).
    """
    offered = load_tools_file(opts.tools) if opts.tools else []
    declared = tools.declared_tools(dict(settings.tools))
    names = list(declared) if opts.tools_all else list(dict.fromkeys(opts.tool))
    local: dict[str, tools.LocalTool] = {}
    for name in names:
        tool = declared.get(name)
        if tool is None:
            known = ", ".join(declared) or "none are declared"
            raise UsageError(f"no tool {name!r} in the config file ({known})")
        local[name] = tool
        offered.append(tool.definition())
    return offered, local


def compose_turn(
    opts: AskOptions, settings: Settings, question: Question, history: Sequence[Message]
) -> Turn:
    """The turn to send after ``history`` (the stored conversation, if any)."""
    tool_results: list[Message] = []
    offered = list(question.offered)
    if opts.tool_result:
        stdin_text = question.stdin_text or ""
        tool_results = tools.tool_result_messages(history, opts.tool_result, lambda: stdin_text)
    user = None
    if question.text.strip() or question.images:
        content = inputs.user_content(question.text, question.images)
        user = Message(role="user", content=content, attached=question.attached)
    return compose(
        settings,
        opts,
        history,
        system=question.system,
        user=user,
        tool_results=tool_results,
        prefill=opts.prefill or "",
        offered=offered,
        local=question.local,
        run_tools=opts.yes and bool(question.local),
    )


def result_json(result: TurnResult, cost: float | None) -> dict[str, Any]:
    """DESIGN §4: the object ``-o json`` prints; usage and cost are sums over the turn."""
    r = result.reply
    out: dict[str, Any] = {
        "id": r.id,
        "model": r.model,
        "content": r.text,
        "finish_reason": r.finish_reason,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in r.tool_calls
        ],
        "usage": result.usage.as_dict() if result.usage else None,
        "cost": cost,
        "conversation": result.conversation,
    }
    if r.reasoning:
        out["reasoning"] = r.reasoning
    checked: dict[str, Any] = finite(out)
    return checked


def finite(value: Any) -> Any:
    """Strict JSON: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def check_structured(text: str, opts: TurnOptions) -> None:
    """With --json-mode/--schema the answer must be JSON (matching the schema): else exit 7."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        where = f": {exc.msg} at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise StructuredOutputError(f"the answer is not valid JSON{where}") from None
    if not opts.schema:
        return
    import jsonschema

    schema = json_schema_spec(opts.schema)["schema"]
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise StructuredOutputError(
            f"the answer does not match --schema at {where}: {exc.message}"
        ) from None
    except jsonschema.SchemaError as exc:
        raise UsageError(f"--schema is not a valid JSON schema: {exc.message}") from None


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks of markdown ``text``, in order (CommonMark
    fences: a closing fence is the same character, at least as long; an unclosed block runs
    to the end)."""
    blocks: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i].rstrip("\r\n"))
        if opening is None or (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            i += 1
            continue
        fence = opening.group(1)
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i].rstrip("\r\n"))
            if (
                closing is not None
                and closing.group(1)[0] == fence[0]
                and len(closing.group(1)) >= len(fence)
                and not closing.group(2).strip()
            ):
                break
            body.append(lines[i])
            i += 1
        blocks.append("".join(body))
        i += 1
    return blocks


def extract_block(text: str, n: int) -> str:
    """The Nth (1-based) code block's content, ending with a newline; exit 7 when missing."""
    blocks = code_blocks(text)
    if len(blocks) < n:
        have = f"has {len(blocks)}" if blocks else "has none"
        raise StructuredOutputError(f"no code block {n} in the answer (it {have})")
    content = blocks[n - 1]
    return content if content.endswith("\n") or not content else content + "\n"


def outcome_error(result: TurnResult, opts: AskOptions) -> LlmostError | None:
    """The error that decides the exit code, once the answer is printed."""
    if result.error is not None:
        return result.error
    reply = result.reply
    if (opts.json_mode or opts.schema) and reply.text.strip():
        try:
            check_structured(reply.text, opts)
        except LlmostError as exc:
            return exc
    return None
