"""One-shot questions: resolve settings, assemble the turn, stream the answer, store it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmost_cli.core import inputs as conversation
from llmost_cli.core import settings as config
from llmost_cli.core import tools
from llmost_cli.core.messages import Message, Reply
from llmost_cli.core.request import TurnOptions, build_body
from llmost_cli.errors import (
    Interrupted,
    LlmostError,
    OutputClosed,
    StreamError,
    StructuredOutputError,
    UsageError,
)

if TYPE_CHECKING:
    from llmost_cli.api.client import Client
    from llmost_cli.core.messages import Conversation, ToolCall
    from llmost_cli.core.settings import Settings
    from llmost_cli.store.store import Store
    from llmost_cli.ui.output import UI, AnswerWriter


@dataclass
class AskOptions(TurnOptions):
    prompt: list[str] = field(default_factory=list)
    output: str = "text"
    usage: bool = False
    no_stdin: bool = False
    dry_run: bool = False
    tool_result: list[str] = field(default_factory=list)
    yes: bool = False


@dataclass
class Outcome:
    """What an ``ask`` produced; ``error`` is set when the answer was cut off."""

    reply: Reply
    conversation: str | None = None
    cost: float | None = None
    error: LlmostError | None = None

    @property
    def keeps_reply(self) -> bool:
        """Whether the reply is stored: one cut off before its first token has nothing to keep."""
        reply = self.reply
        return not reply.empty or bool(reply.prefill) or self.error is None

    def as_json(self) -> dict[str, Any]:
        r = self.reply
        return {
            "id": r.id,
            "model": r.model,
            "content": r.text,
            "finish_reason": r.finish_reason,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in r.tool_calls
            ],
            "usage": r.usage.as_dict() if r.usage else None,
            "cost": self.cost,
            "conversation": self.conversation,
        }


def read_stdin(opts: AskOptions, ui: UI) -> str | None:
    if opts.no_stdin or sys.stdin is None or sys.stdin.isatty():
        return None
    try:
        raw = sys.stdin.buffer.read()
    except OSError:
        return None
    text = conversation.decode_stdin(raw)
    if text.replaced:
        ui.warn("standard input is not valid UTF-8; invalid bytes were replaced with U+FFFD")
    return text.text


def run(opts: AskOptions, ui: UI, *, profile: str | None, log: Callable[[str], None] | None) -> int:
    settings = config.resolve(config.load_file(), profile, opts.overrides())
    if opts.tool_result and not (opts.continue_ or opts.session):
        raise UsageError(
            "--tool-result answers calls of a stored conversation: add -c or --session"
        )
    reads_stdin = not any(item.partition("=")[2] == "-" for item in opts.tool_result)
    text = conversation.combine_prompt(opts.prompt, read_stdin(opts, ui) if reads_stdin else None)
    if not text.strip() and not opts.tool_result:
        raise UsageError(
            "no prompt given", hint="pass words after 'ask' or pipe text on standard input"
        )
    images = [conversation.image_url(spec) for spec in opts.image]
    system = conversation.read_text_arg(settings.system, "--system") if settings.system else None
    local = tools.declared_tools(settings.tools) if (opts.tool or opts.tools_all) else {}
    offered = offered_tools(opts, settings)
    with open_conversation(opts, settings, ui, dry=opts.dry_run) as (store, conv):
        history = store.messages(conv.id) if store and conv else []
        new: list[Message] = []
        if opts.tool_result:
            new += tools.tool_result_messages(history, opts.tool_result)
            if store and conv and offered is None:
                offered = store.tools(conv.id)
        elif system and not any(m.role == "system" for m in history):
            new.append(Message(role="system", content=system))
        if text.strip() or images:
            new.append(Message(role="user", content=conversation.user_content(text, images)))
        turn = Turn(settings, opts, system, offered, local, history, new)
        if opts.dry_run:
            ui.json(turn.body(), pretty=True)
            return 0
        if store and conv and offered:
            store.set_tools(conv.id, offered)
        from llmost_cli.api.client import Client

        with Client(
            settings.base_url,
            settings.api_key(),
            timeout=settings.timeout,
            retries=settings.retries,
            log=log,
        ) as client:
            outcome = converse(client, turn, ui, store, conv)
    if outcome.reply.usage and (opts.usage or opts.output == "json"):
        outcome.cost = answer_cost(outcome.reply, settings)
    return report(outcome, opts, ui)


def answer_cost(reply: Reply, settings: Settings) -> float | None:
    """From ``usage.cost`` or the cached prices; the model that answered may carry a dated id
    that is not in the list, so the requested model is the fallback."""
    from llmost_cli.core.models import cost_of

    assert reply.usage is not None
    cost = cost_of(reply.usage, reply.model, settings.base_url)
    if cost is None and settings.model and settings.model != reply.model:
        cost = cost_of(reply.usage, settings.model, settings.base_url)
    return cost


@dataclass
class Turn:
    """What the next request is built from; ``new`` holds messages not yet stored."""

    settings: Settings
    opts: AskOptions
    system: str | None
    offered: list[dict[str, Any]] | None
    local: dict[str, tools.LocalTool]
    history: list[Message]
    new: list[Message]

    def body(self, prefill: str | None = None) -> dict[str, Any]:
        messages = conversation.build_messages(
            self.history,
            system=self.system,
            new=[m.to_api() for m in self.new],
            prefill=prefill,
        )
        return build_body(self.settings, messages, self.opts, tools=self.offered)


def converse(
    client: Client, turn: Turn, ui: UI, store: Store | None, conv: Conversation | None
) -> Outcome:
    """Ask, and with ``--yes`` run declared tools and ask again, up to the round limit."""
    opts = turn.opts
    run_tools = opts.yes and bool(turn.local)
    prefill = opts.prefill or ""
    rounds = 0
    while True:
        writer = ui.answer_writer(
            markdown=use_markdown(opts, turn.settings), quiet=opts.output == "json"
        )
        writer.show_tool_calls = not run_tools
        outcome = stream_answer(client, turn.body(prefill or None), prefill, writer)
        if outcome.keeps_reply:
            turn.new.append(outcome.reply.to_message())
        outcome.conversation = _save(store, conv, turn, ui)
        calls = outcome.reply.tool_calls
        if outcome.error is not None or not calls or not run_tools:
            return outcome
        show = ui.tool_calls if opts.output != "json" else None
        if not tools_may_run(ui, calls, turn.local, rounds, turn.settings.max_tool_rounds, show):
            return outcome
        rounds += 1
        prefill = ""
        for call in calls:
            ui.note(f"running tool {call.name} {call.arguments}")
            turn.new.append(run_declared(ui, turn.local[call.name], call))


def tools_may_run(
    ui: UI,
    calls: list[ToolCall],
    local: dict[str, tools.LocalTool],
    rounds: int,
    limit: int,
    show: Callable[[list[ToolCall]], None] | None,
) -> bool:
    """Whether another round of declared tools may run; if not, say why and ``show`` the
    calls left unanswered (``ask -c --tool-result`` can answer them)."""
    if not tools.runnable(calls, local):
        unknown = ", ".join(sorted({c.name for c in calls if c.name not in local}))
        ui.warn(f"the model called a tool that is not declared: {unknown}; not running any")
    elif rounds >= limit:
        ui.warn(f"stopped after {limit} tool rounds (max_tool_rounds)")
    else:
        return True
    if show is not None:
        show(calls)
    return False


def run_declared(ui: UI, tool: tools.LocalTool, call: ToolCall) -> Message:
    """Run one call of a declared tool; the message that carries its result back."""
    result = tools.run_tool(tool, call.arguments)
    if result.note:
        (ui.note if result.ok else ui.warn)(result.note)
    return tools.result_message(call, result)


def _save(store: Store | None, conv: Conversation | None, turn: Turn, ui: UI) -> str | None:
    """Store the messages of this round; they become history either way."""
    new, turn.new = turn.new, []
    turn.history = [*turn.history, *new]
    if store is None or conv is None:
        return None
    from llmost_cli.errors import StoreError

    try:
        store.append(conv.id, new)
    except StoreError as exc:
        ui.warn(f"{exc.message}; this answer was not saved")
        return None
    return conv.id


def offered_tools(opts: TurnOptions, settings: Settings) -> list[dict[str, Any]] | None:
    from llmost_cli.core.request import load_tools_file

    tools = load_tools_file(opts.tools) if opts.tools else []
    names = list(settings.tools) if opts.tools_all else opts.tool
    for name in names:
        spec = settings.tools.get(name)
        if spec is None:
            known = ", ".join(settings.tools) or "none are declared"
            raise UsageError(f"no tool {name!r} in the config file ({known})")
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": str(spec.get("description", "")),
                    "parameters": spec.get("parameters", {"type": "object", "properties": {}}),
                },
            }
        )
    return tools or None


def use_markdown(opts: TurnOptions, settings: Settings) -> bool:
    return settings.markdown if settings.markdown is not None else True


def stream_answer(
    client: Client, body: dict[str, Any], prefill: str, writer: AnswerWriter
) -> Outcome:
    """Stream one answer into ``writer``; a failure is kept on the outcome, not lost."""
    reply = Reply(prefill=prefill)
    outcome = Outcome(reply)
    writer.start(prefill)
    try:
        for event in client.chat(body):
            reply.add(event)
            writer.event(event)
    except BrokenPipeError:
        outcome.error = OutputClosed()
        return outcome
    except KeyboardInterrupt:
        outcome.error = Interrupted()
    except LlmostError as exc:
        outcome.error = exc
    if outcome.error is not None:
        _abort(writer)
        return outcome
    if reply.error:
        _abort(writer)
        e = reply.error
        outcome.error = StreamError(
            f"the server reported an error mid-answer: {e.message}",
            error_code=e.code,
            metadata=e.metadata,
        )
    else:
        try:
            writer.finish(reply)
        except BrokenPipeError:
            outcome.error = OutputClosed()
    return outcome


def _abort(writer: AnswerWriter) -> None:
    # A closed pipe leaves the final newline nowhere to go; the error itself goes to stderr.
    with contextlib.suppress(BrokenPipeError):
        writer.abort()


@contextmanager
def open_conversation(
    opts: TurnOptions, settings: Settings, ui: UI, *, create: bool = True, dry: bool = False
) -> Iterator[tuple[Store | None, Conversation | None]]:
    """The store and the conversation of this command; (None, None) when the store is unusable.

    ``create``: start a new conversation now unless one is named or continued (``chat`` passes
    False and creates it at its first exchange, so an idle session leaves nothing behind).
    """
    from llmost_cli import paths
    from llmost_cli.errors import StoreError
    from llmost_cli.store.store import Store

    try:
        store = Store(paths.database_file())
    except StoreError as exc:
        if opts.continue_ or opts.session:
            raise
        if not dry:
            ui.warn(f"{exc.message}; this conversation will not be saved")
        yield None, None
        return
    create = create and not dry
    conv: Conversation | None
    try:
        if opts.session:
            conv = store.get_or_create(opts.session, settings.model)
        elif opts.continue_:
            conv = store.latest() or (store.create(model=settings.model) if create else None)
        else:
            conv = store.create(model=settings.model) if create else None
        yield store, conv
    finally:
        store.close()


def report(outcome: Outcome, opts: AskOptions, ui: UI) -> int:
    """Print the result of a finished (or cut off) ask; raise its error for the boundary."""
    reply = outcome.reply
    if outcome.error is not None:
        raise outcome.error
    if (opts.json_mode or opts.schema) and reply.text.strip():
        check_structured(reply.text, opts, ui)
    if opts.output == "json":
        ui.json(outcome.as_json())
    if reply.finish_reason in ("length", "content_filter"):
        why = "max_tokens reached" if reply.finish_reason == "length" else "content filter"
        ui.warn(f"the answer was cut off ({reply.finish_reason}: {why})")
    elif reply.empty and not reply.prefill:
        ui.warn("the model returned an empty answer")
    if opts.usage:
        ui.usage(reply, outcome.cost)
    return 0


def check_structured(text: str, opts: AskOptions, ui: UI) -> None:
    """With --json-mode/--schema the answer must be JSON (matching the schema): else exit 7."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        ui.warn("the answer is not valid JSON")
        raise StructuredOutputError(
            f"the answer is not valid JSON: {exc.msg} at char {exc.pos}"
        ) from None
    if not opts.schema:
        return
    import jsonschema

    from llmost_cli.core.request import json_schema_spec

    schema = json_schema_spec(opts.schema)["schema"]
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        ui.warn("the answer does not match --schema")
        raise StructuredOutputError(
            f"the answer does not match --schema at {where}: {exc.message}"
        ) from None
    except jsonschema.SchemaError as exc:
        raise UsageError(f"--schema is not a valid JSON schema: {exc.message}") from None
