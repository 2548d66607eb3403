"""The one turn engine shared by ``ask``, ``chat`` and ``batch``.

A turn is composed and validated into an immutable ``Turn`` before anything is stored or
sent. ``run_turn`` then builds each request body, streams the answer into a writer, runs the
tool rounds the user allowed, and records what the conversation keeps, by one rule:

* an answer that failed before anything arrived leaves no trace: the user message is not
  kept, so a retry does not send it twice;
* an answer cut off after some text keeps the text, marked partial, with its question;
* every tool call kept in the history gets an answer: its result, or a message that says why
  it was not run (declined, cancelled, round limit). Calls shown to the user for
  ``ask -c --tool-result`` stay open until the next turn, which answers them as not run if the
  user did not. A strict server then never sees an unanswered call.

The engine knows nothing of terminals, HTTP or SQLite: the client, the view and the recorder
are handed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmost_cli.core import tools as toolmod
from llmost_cli.core.events import StreamEvent, Usage
from llmost_cli.core.messages import Message, Reply, ToolCall
from llmost_cli.core.request import TurnOptions, build_body
from llmost_cli.core.settings import Settings
from llmost_cli.errors import Interrupted, LlmostError, OutputClosed, StreamError

NOT_RUN_NEXT_TURN = "not run: the user went on without answering this call"
NOT_RUN_DECLINED = "not run: the user declined to run {name}; do not call it again for this request"
NOT_RUN_CANCELLED = "not run: the user cancelled this turn"
NOT_RUN_LIMIT = "not run: the limit of {limit} tool rounds for one question was reached"
NOT_RUN_UNOFFERED = "not run: {name} is not a tool offered for this request"


class ChatClient(Protocol):
    def chat(self, body: dict[str, Any]) -> Iterator[StreamEvent]: ...


class AnswerWriter(Protocol):
    def start(self, prefill: str) -> None: ...
    def event(self, event: StreamEvent) -> None: ...
    def finish(self, reply: Reply) -> None: ...
    def abort(self) -> None: ...


class TurnView(Protocol):
    """How a turn reaches the user (implemented by the UI layer)."""

    def answer_writer(self) -> AnswerWriter: ...
    def tool_calls(self, calls: Sequence[ToolCall]) -> None: ...
    def confirm_tool(self, tool: toolmod.LocalTool, call: ToolCall) -> bool | None: ...
    def tool_started(self, tool: toolmod.LocalTool, call: ToolCall) -> None: ...
    def tool_finished(
        self, tool: toolmod.LocalTool, call: ToolCall, run: toolmod.ToolRun
    ) -> None: ...
    def warn(self, text: str) -> None: ...
    def note(self, text: str) -> None: ...


class Recorder(Protocol):
    def record(self, messages: Sequence[Message]) -> str | None:
        """Store ``messages`` at the end of the conversation; its id, or None if not stored."""
        ...


class NoRecorder:
    def record(self, messages: Sequence[Message]) -> str | None:
        return None


@dataclass(frozen=True)
class Turn:
    """Everything one question needs, checked. ``new`` is recorded; ``history`` already is."""

    settings: Settings
    options: TurnOptions
    system: str | None
    history: tuple[Message, ...]
    new: tuple[Message, ...]
    prefill: str = ""
    offered: tuple[dict[str, Any], ...] = ()
    local: Mapping[str, toolmod.LocalTool] = field(default_factory=dict)
    run_tools: bool = False  # run calls of ``local`` tools (after confirm_tool, if it asks)

    def body(self, extra: Sequence[Message] = (), prefill: str = "") -> dict[str, Any]:
        """The request body: system prompt, history, the new messages, ``extra``, prefill."""
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for message in (*self.history, *self.new, *extra):
            if message.role != "system":
                messages.append(message.to_api())
        if prefill:
            messages.append({"role": "assistant", "content": prefill})
        return build_body(self.settings, messages, self.options, tools=list(self.offered) or None)

    def first_body(self) -> dict[str, Any]:
        return self.body(prefill=self.prefill)


def compose(
    settings: Settings,
    options: TurnOptions,
    history: Sequence[Message],
    *,
    system: str | None,
    user: Message | None,
    tool_results: Sequence[Message] = (),
    prefill: str = "",
    offered: Sequence[dict[str, Any]] = (),
    local: Mapping[str, toolmod.LocalTool] | None = None,
    run_tools: bool = False,
) -> Turn:
    """A checked turn: the system prompt recorded when it changes, open tool calls answered."""
    stored_system = last_system(history)
    new: list[Message] = []
    if system and system != stored_system:
        new.append(Message(role="system", content=system))
    answered = {m.tool_call_id for m in tool_results}
    for call in toolmod.pending_calls(history):
        call_id = str(call.get("id"))
        if call_id not in answered:
            name = str(call.get("function", {}).get("name") or "")
            new.append(not_run(ToolCall(call_id, name, ""), NOT_RUN_NEXT_TURN))
    new.extend(tool_results)
    if user is not None:
        new.append(user)
    turn = Turn(
        settings=settings,
        options=options,
        system=system or stored_system,
        history=tuple(history),
        new=tuple(new),
        prefill=prefill,
        offered=tuple(offered),
        local=dict(local or {}),
        run_tools=run_tools,
    )
    turn.first_body()  # a bad option combination fails now, before anything is sent or stored
    return turn


def last_system(history: Sequence[Message]) -> str | None:
    for message in reversed(history):
        if message.role == "system" and isinstance(message.content, str):
            return message.content
    return None


def not_run(call: ToolCall, why: str) -> Message:
    return Message(role="tool", content=why, tool_call_id=call.id, name=call.name or None)


@dataclass
class TurnResult:
    """What a turn produced. ``reply`` is the last answer; ``recorded`` what history gained."""

    reply: Reply
    recorded: list[Message] = field(default_factory=list)
    usage: Usage | None = None
    usages: list[tuple[Usage, str | None]] = field(default_factory=list)
    error: LlmostError | None = None
    conversation: str | None = None
    requests: int = 0
    cancelled: bool = False  # the user cancelled at a tool confirmation

    @property
    def kept_question(self) -> bool:
        return bool(self.recorded)

    def add_usage(self, reply: Reply, model: str | None) -> None:
        if reply.usage is None:
            return
        self.usages.append((reply.usage, reply.model or model))
        self.usage = reply.usage if self.usage is None else self.usage + reply.usage


class _Round:
    """Messages of the turn not yet recorded, and the recorder's answer."""

    def __init__(self, turn: Turn, recorder: Recorder, result: TurnResult) -> None:
        self.turn = turn
        self.recorder = recorder
        self.result = result
        self.pending: list[Message] = list(turn.new)
        self.after: list[Message] = []  # kept after turn.new: replies and tool results

    def keep(self, *messages: Message) -> None:
        self.pending.extend(messages)
        self.after.extend(messages)

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        conversation = self.recorder.record(batch)
        if conversation is not None:
            self.result.conversation = conversation
        self.result.recorded.extend(batch)

    def body(self, prefill: str = "") -> dict[str, Any]:
        return self.turn.body(extra=self.after, prefill=prefill)


def run_turn(turn: Turn, client: ChatClient, view: TurnView, recorder: Recorder) -> TurnResult:
    """Ask, run the allowed tool rounds, record by the rule in this module's docstring."""
    result = TurnResult(Reply(prefill=turn.prefill))
    state = _Round(turn, recorder, result)
    prefill = turn.prefill
    rounds = 0
    while True:
        reply, error = stream_answer(client, state.body(prefill), prefill, view.answer_writer())
        result.reply, result.requests = reply, result.requests + 1
        result.add_usage(reply, turn.settings.model)
        if reply.has_content or error is None:
            state.keep(reply.to_message())
            state.flush()
        elif rounds == 0:
            result.error = error
            return result  # nothing arrived: no trace, the question can be asked again
        if error is not None:
            result.error = error
            return result
        calls = reply.tool_calls
        if not calls:
            return result
        if not turn.run_tools or not toolmod.runnable(calls, turn.local):
            _leave_open(turn, calls, view)
            return result
        if rounds >= turn.settings.max_tool_rounds:
            limit = turn.settings.max_tool_rounds
            view.warn(f"stopped after {limit} tool rounds (max_tool_rounds)")
            state.keep(*(not_run(c, NOT_RUN_LIMIT.format(limit=limit)) for c in calls))
            state.flush()
            return result
        rounds += 1
        prefill = ""
        if not _run_calls(turn, calls, view, state):
            result.cancelled = True
            return result


def _leave_open(turn: Turn, calls: Sequence[ToolCall], view: TurnView) -> None:
    """Calls the turn will not run: shown, and left open for ``--tool-result``."""
    unoffered = sorted({c.name for c in calls if c.name not in turn.local})
    if turn.run_tools and unoffered:
        names = ", ".join(unoffered)
        view.warn(f"the model called a tool that was not offered: {names}; not running any")
    view.tool_calls(calls)


def _run_calls(turn: Turn, calls: Sequence[ToolCall], view: TurnView, state: _Round) -> bool:
    """Run one round of calls; False when the user cancelled (the rest answered as not run)."""
    done: set[str] = set()
    try:
        for call in calls:
            tool = turn.local[call.name]
            answer = view.confirm_tool(tool, call)
            if answer is None:
                break
            if not answer:
                state.keep(not_run(call, NOT_RUN_DECLINED.format(name=call.name)))
            else:
                view.tool_started(tool, call)
                run = toolmod.run_tool(tool, call.arguments)
                view.tool_finished(tool, call, run)
                state.keep(toolmod.result_message(call, run))
            done.add(call.id)
        else:
            state.flush()
            return True
    except BaseException:
        # Ctrl-C or SIGTERM during a tool: answer the rest, keep what ran, then stop.
        state.keep(*(not_run(c, NOT_RUN_CANCELLED) for c in calls if c.id not in done))
        state.flush()
        raise
    state.keep(*(not_run(c, NOT_RUN_CANCELLED) for c in calls if c.id not in done))
    state.flush()
    view.note("cancelled; the model is told the tools were not run")
    return False


def _close(events: Iterator[StreamEvent]) -> None:
    """Close the HTTP stream now (a generator's ``close``), not when it is collected."""
    close = getattr(events, "close", None)
    if close is not None:
        close()


def _drain(events: Iterator[StreamEvent], reply: Reply) -> Reply:
    """The rest of an answer that cannot be shown, for the store; a failure ends it quietly."""
    try:
        for event in events:
            reply.add(event)
    except LlmostError:
        pass
    return reply


def stream_answer(
    client: ChatClient, body: dict[str, Any], prefill: str, writer: AnswerWriter
) -> tuple[Reply, LlmostError | None]:
    """Stream one answer into ``writer``; a failure is returned with what arrived, not lost."""
    reply = Reply(prefill=prefill)
    error: LlmostError | None = None
    events = client.chat(body)
    try:
        writer.start(prefill)
        for event in events:
            reply.add(event)
            writer.event(event)
    except BrokenPipeError:
        _close(events)
        return reply, OutputClosed()
    except OutputClosed as exc:
        if exc.quiet:  # the reader went away (`| head`): stop now
            _close(events)
            return reply, exc
        # stdout is unwritable (disk full, closed): keep the whole answer for the store
        return _drain(events, reply), exc
    except KeyboardInterrupt:
        _close(events)
        error = Interrupted()
    except LlmostError as exc:
        error = exc
    if error is None and reply.error is not None:
        e = reply.error
        error = StreamError(
            f"the server reported an error mid-answer: {e.message}",
            error_code=e.code,
            metadata=e.metadata,
        )
    try:
        if error is None:
            writer.finish(reply)
        else:
            writer.abort()
    except BrokenPipeError:
        return reply, OutputClosed()
    except OutputClosed as exc:
        return reply, exc
    return reply, error
