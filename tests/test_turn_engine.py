"""The turn engine in isolation: a scripted client, a recording view, a recording store.

The engine is real; only what it is handed is scripted (its client, view and recorder are
parameters by design: core knows no HTTP, terminal or SQLite).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmost_cli.core import tools
from llmost_cli.core.events import Finish, StreamEvent, TextDelta, ToolCallDelta, Usage
from llmost_cli.core.messages import Message, Reply, ToolCall
from llmost_cli.core.request import TurnOptions
from llmost_cli.core.settings import Settings
from llmost_cli.core.turn import compose, run_turn
from llmost_cli.errors import Interrupted, NetworkError


class Client:
    def __init__(self, *answers: list[StreamEvent] | BaseException) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    def chat(self, body: dict[str, Any]) -> Iterator[StreamEvent]:
        self.bodies.append(json.loads(json.dumps(body)))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        yield from answer


class Writer:
    def __init__(self, view: View) -> None:
        self.view = view

    def start(self, prefill: str) -> None:
        pass

    def event(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self.view.text += event.text

    def finish(self, reply: Reply) -> None:
        pass

    def abort(self) -> None:
        self.view.aborted += 1


class View:
    def __init__(self, answers: Sequence[bool | None] = ()) -> None:
        self.answers = list(answers)
        self.text = ""
        self.aborted = 0
        self.shown_calls: list[ToolCall] = []
        self.asked: list[str] = []
        self.finished: list[tools.ToolRun] = []
        self.lines: list[str] = []

    def answer_writer(self) -> Writer:
        return Writer(self)

    def tool_calls(self, calls: Sequence[ToolCall]) -> None:
        self.shown_calls.extend(calls)

    def confirm_tool(self, tool: tools.LocalTool, call: ToolCall) -> bool | None:
        self.asked.append(call.id)
        return self.answers.pop(0) if self.answers else True

    def tool_started(self, tool: tools.LocalTool, call: ToolCall) -> None:
        pass

    def tool_finished(self, tool: tools.LocalTool, call: ToolCall, run: tools.ToolRun) -> None:
        self.finished.append(run)

    def warn(self, text: str) -> None:
        self.lines.append("warning: " + text)

    def note(self, text: str) -> None:
        self.lines.append(text)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def record(self, messages: Sequence[Message]) -> str | None:
        self.messages.extend(messages)
        return "conv-1"


def text(answer: str, usage: Usage | None = None) -> list[StreamEvent]:
    events: list[StreamEvent] = [TextDelta(answer), Finish("stop")]
    return events + ([usage] if usage else [])


def calls(*ids: str, name: str = "echo") -> list[StreamEvent]:
    return [
        *(ToolCallDelta(i, id=cid, name=name, arguments='{"x": 1}') for i, cid in enumerate(ids)),
        Finish("tool_calls"),
    ]


@pytest.fixture
def echo(tmp_path: Path) -> tools.LocalTool:
    script = tmp_path / "echo.py"
    script.write_text("import sys; print('ran: ' + sys.stdin.read())\n")
    return tools.LocalTool("echo", [sys.executable, str(script)])


def settings(**values: Any) -> Settings:
    return Settings(profile="default", config_path=Path("/nonexistent"), **values)


def turn_with(local: dict[str, tools.LocalTool], *, run_tools: bool = True, **kw: Any) -> Any:
    offered = [t.definition() for t in local.values()]
    return compose(
        settings(**kw),
        TurnOptions(),
        [],
        system=None,
        user=Message(role="user", content="q"),
        offered=offered,
        local=local,
        run_tools=run_tools,
    )


def test_cancel_at_a_confirmation_stops_the_whole_turn(echo: tools.LocalTool) -> None:
    client = Client(calls("a", "b", "c"), text("never asked"))
    view, recorder = View([True, None]), Recorder()
    result = run_turn(turn_with({"echo": echo}), client, view, recorder)
    assert result.cancelled and len(client.bodies) == 1  # no second request
    assert view.asked == ["a", "b"]  # not asked again for c
    results = {m.tool_call_id: m.content for m in recorder.messages if m.role == "tool"}
    assert results["a"] == 'ran: {"x": 1}\n'
    assert "cancelled" in str(results["b"]) and "cancelled" in str(results["c"])


def test_declining_answers_the_call_and_the_model_goes_on(echo: tools.LocalTool) -> None:
    client = Client(calls("a"), text("fine, without it"))
    view, recorder = View([False]), Recorder()
    result = run_turn(turn_with({"echo": echo}), client, view, recorder)
    assert result.reply.text == "fine, without it"
    tool_message = client.bodies[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "declined" in tool_message["content"]


def test_ctrl_c_during_a_tool_answers_every_call_then_interrupts(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "import os, signal, time\nos.kill(os.getppid(), signal.SIGINT)\ntime.sleep(30)\n"
    )
    slow = tools.LocalTool("slow", [sys.executable, str(script)], timeout=20)
    client, view, recorder = Client(calls("a", "b", name="slow")), View(), Recorder()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_turn(turn_with({"slow": slow}), client, view, recorder)
    assert time.monotonic() - start < 10
    answered = [m.tool_call_id for m in recorder.messages if m.role == "tool"]
    assert answered == ["a", "b"]


def test_calls_of_tools_not_offered_never_run(echo: tools.LocalTool, tmp_path: Path) -> None:
    marker = tmp_path / "other-ran"
    other = tools.LocalTool("other", ["touch", str(marker)])
    client, view = Client(calls("a", name="other")), View()
    run_turn(turn_with({"echo": echo}), client, view, Recorder())
    assert not marker.exists()
    assert any("not offered: other" in line for line in view.lines)
    assert [c.name for c in view.shown_calls] == ["other"]
    del other


def test_round_limit_answers_the_last_calls(echo: tools.LocalTool) -> None:
    client = Client(calls("a"), calls("b"), calls("c"))
    recorder = Recorder()
    run_turn(turn_with({"echo": echo}, max_tool_rounds=2), client, View(), recorder)
    assert len(client.bodies) == 3
    last = recorder.messages[-1]
    assert last.role == "tool" and last.tool_call_id == "c" and "limit of 2" in str(last.content)


def test_nothing_is_recorded_when_the_first_answer_fails_before_any_text() -> None:
    recorder = Recorder()
    for failure in (NetworkError("dropped"), KeyboardInterrupt()):
        client = Client(failure)
        result = run_turn(turn_with({}), client, View(), recorder)
        assert result.error is not None and not result.kept_question
    assert recorder.messages == []
    assert isinstance(result.error, Interrupted)


def test_a_partial_answer_is_recorded_with_its_question() -> None:
    def cut() -> Iterator[StreamEvent]:
        yield TextDelta("half")
        raise NetworkError("dropped")

    class Cut(Client):
        def chat(self, body: dict[str, Any]) -> Iterator[StreamEvent]:
            return cut()

    recorder = Recorder()
    result = run_turn(turn_with({}), Cut(), View(), recorder)
    assert isinstance(result.error, NetworkError)
    assert [(m.role, m.content, m.partial) for m in recorder.messages] == [
        ("user", "q", False),
        ("assistant", "half", True),
    ]


def test_usage_is_summed_over_the_rounds(echo: tools.LocalTool) -> None:
    u1 = Usage(10, 2, 12, cost=0.5)
    u2 = Usage(20, 5, 25, cost=0.25)
    client = Client([*calls("a"), u1], text("done", u2))
    result = run_turn(turn_with({"echo": echo}), client, View(), Recorder())
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (30, 37)
    assert result.usage.cost == 0.75 and result.requests == 2


def test_tools_run_without_the_api_key_in_their_environment(tmp_path: Path) -> None:
    script = tmp_path / "env.py"
    script.write_text("import os, json; print(json.dumps(sorted(os.environ)))\n")
    tool = tools.LocalTool("env", [sys.executable, str(script)])
    environ = dict(os.environ) | {"LLMOST_API_KEY": "sk-secret-123456", "KEEP_ME": "1"}
    run = tools.run_tool(tool, "{}", environ)
    names = json.loads(run.content)
    assert "LLMOST_API_KEY" not in names and "KEEP_ME" in names


def test_tool_timeout_kills_its_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "spawn.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    tool = tools.LocalTool("spawn", [sys.executable, str(script)], timeout=1.5)
    start = time.monotonic()
    run = tools.run_tool(tool, "{}")
    assert not run.ok and "timed out" in run.content
    assert time.monotonic() - start < 6
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the tool's child outlived the timeout"


def test_a_tool_that_backgrounds_a_child_is_done_when_it_exits(tmp_path: Path) -> None:
    script = tmp_path / "bg.py"
    script.write_text(
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print('started')\n"
    )
    tool = tools.LocalTool("bg", [sys.executable, str(script)], timeout=20)
    start = time.monotonic()
    run = tools.run_tool(tool, "{}")
    assert run.ok and run.content == "started\n"
    assert time.monotonic() - start < 5  # not the 20 s timeout, not the child's 30 s


def test_huge_tool_output_is_read_within_the_limit(tmp_path: Path) -> None:
    import resource

    script = tmp_path / "flood.py"
    script.write_text(
        "import sys\nchunk = b'x' * (1 << 20)\n"
        "for _ in range(300): sys.stdout.buffer.write(chunk)\n"
    )
    tool = tools.LocalTool("flood", [sys.executable, str(script)], timeout=60)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = tools.run_tool(tool, "{}")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert run.ok and run.note and "of 314572800 bytes" in run.note
    assert len(run.content) < tools.MAX_OUTPUT + 200
    assert grown_kib < 50 * 1024  # 300 MiB went through; far less was ever held


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead: reap it if it is ours, else read its state
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
