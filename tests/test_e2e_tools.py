"""End-to-end: tool calls, --tool-result, declared local tools with --yes, structured output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from llmost_cli import paths
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import Runner, write_config

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([WEATHER]))
    return path


def declare(home: Path, script: str, *, extra: str = "") -> Path:
    """Declare a local tool get_weather that runs ``script`` with Python."""
    tool = home / "weather.py"
    tool.write_text(script)
    write_config(
        home,
        f"{extra}[tools.get_weather]\n"
        'description = "Current weather in a city"\n'
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(tool))}]\n"
        "timeout = 5\n"
        'parameters = { type = "object", properties = { city = { type = "string" } }, '
        'required = ["city"] }\n',
    )
    return tool


ECHO_TOOL = (
    "import json, sys\n"
    "args = json.load(sys.stdin)\n"
    "print(json.dumps({'city': args['city'], 'temp_c': 3}))\n"
)


def test_non_streamed_parallel_calls_printed(
    llmost: Runner, server: fs.FakeServer, tools_file: Path
) -> None:
    server.add(
        fs.completion(
            None,
            finish_reason="tool_calls",
            tool_calls=[("c1", "get_weather", '{"city":"Paris"}'), ("c2", "get_weather", "{}")],
        )
    )
    r = llmost("ask", "--no-stream", "--tools", str(tools_file), "weather?")
    assert r.rc == 0, r
    assert [json.loads(x) for x in r.stdout.splitlines()] == [
        {"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "c2", "name": "get_weather", "arguments": {}},
    ]


def test_malformed_arguments_shown_with_warning(
    llmost: Runner, server: fs.FakeServer, tools_file: Path
) -> None:
    server.add(fs.stream_tool_calls([("c1", "get_weather", '{"city": "Par')]))
    r = llmost("ask", "--tools", str(tools_file), "weather?")
    assert r.rc == 0
    assert json.loads(r.stdout) == {"id": "c1", "name": "get_weather", "arguments": '{"city": "Par'}
    assert "not valid JSON" in r.stderr


def test_full_loop_through_tool_result(
    llmost: Runner, server: fs.FakeServer, tools_file: Path, tmp_path: Path
) -> None:
    server.add(
        fs.stream_tool_calls(
            [("call_a", "get_weather", '{"city":"Oslo"}'), ("call_b", "get_weather", "{}")]
        )
    )
    r = llmost("ask", "--tools", str(tools_file), "weather in Oslo?")
    assert r.rc == 0 and len(r.stdout.splitlines()) == 2
    result_file = tmp_path / "b.json"
    result_file.write_text('{"temp": -2}')
    server.add(fs.stream_text("It is 3 °C in Oslo."))
    r = llmost("ask", "-c", "--tool-result", "call_a={\"temp\": 3}", "--tool-result",
               f"call_b=@{result_file}")  # fmt: skip
    assert (r.rc, r.stdout) == (0, "It is 3 °C in Oslo.\n"), r
    body = server.chat_requests()[-1].json
    assert body["tools"] == [WEATHER]  # the same tools are sent again
    msgs = body["messages"]
    assert msgs[0] == {"role": "user", "content": "weather in Oslo?"}
    assert msgs[1]["role"] == "assistant" and msgs[1]["content"] is None
    assert [c["id"] for c in msgs[1]["tool_calls"]] == ["call_a", "call_b"]
    assert msgs[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert msgs[2] == {"role": "tool", "content": '{"temp": 3}', "tool_call_id": "call_a",
                       "name": "get_weather"}  # fmt: skip
    assert msgs[3]["tool_call_id"] == "call_b" and msgs[3]["content"] == '{"temp": -2}'
    # both calls are answered now: another result is refused
    r = llmost("ask", "-c", "--tool-result", "call_a=again")
    assert r.rc == 2 and "no pending tool calls" in r.stderr


def test_tool_result_errors(llmost: Runner, server: fs.FakeServer, tools_file: Path) -> None:
    server.add(fs.stream_tool_calls([("call_a", "get_weather", "{}")]))
    llmost("ask", "--session", "t", "--tools", str(tools_file), "weather?")
    n = len(server.chat_requests())
    r = llmost("ask", "--session", "t", "--tool-result", "call_zz=1")
    assert r.rc == 2 and "'call_zz' is not a pending tool call (call_a)" in r.stderr
    r = llmost("ask", "--tool-result", "call_a=1")
    assert r.rc == 2 and "add -c or --session" in r.stderr
    r = llmost("ask", "--session", "t", "--tool-result", "call_a")
    assert r.rc == 2 and "ID=VALUE" in r.stderr
    assert len(server.chat_requests()) == n  # nothing was sent
    server.add(fs.stream_text("ok"))
    r = llmost("ask", "--session", "t", "--tool-result", "call_a=-", input="from stdin")
    assert r.rc == 0
    assert server.chat_requests()[-1].json["messages"][-1]["content"] == "from stdin"


def test_declared_tool_runs_with_yes(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    declare(isolated_env, ECHO_TOOL)
    server.add(fs.stream_tool_calls([("c1", "get_weather", '{"city": "Paris"}')]))
    server.add(fs.stream_text("Paris: 3 °C."))
    r = llmost("ask", "--tool", "get_weather", "--yes", "weather in Paris?")
    assert (r.rc, r.stdout) == (0, "Paris: 3 °C.\n"), r
    assert "running tool get_weather: " in r.stderr  # the real command line
    assert 'arguments: {"city": "Paris"}' in r.stderr
    first, second = (req.json for req in server.chat_requests())
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert second["messages"][-1] == {
        "role": "tool",
        "content": '{"city": "Paris", "temp_c": 3}\n',
        "tool_call_id": "c1",
        "name": "get_weather",
    }
    assert second["tools"] == first["tools"]


def test_declared_tool_without_yes_only_prints(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    marker = isolated_env / "ran"
    declare(isolated_env, f"open({str(marker)!r}, 'w').write('x')\n")
    server.add(fs.stream_tool_calls([("c1", "get_weather", '{"city": "Rome"}')]))
    r = llmost("ask", "--tools-all", "weather?")
    assert r.rc == 0
    assert json.loads(r.stdout)["name"] == "get_weather"
    assert not marker.exists()
    assert len(server.chat_requests()) == 1


def test_failing_tool_sends_error_back(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    declare(isolated_env, "import sys\nprint('no such city', file=sys.stderr)\nsys.exit(4)\n")
    server.add(fs.stream_tool_calls([("c1", "get_weather", '{"city": "Nowhere"}')]))
    server.add(fs.stream_text("Sorry."))
    r = llmost("ask", "--tools-all", "--yes", "weather?")
    assert (r.rc, r.stdout) == (0, "Sorry.\n")
    assert "tool get_weather failed: exit code 4: no such city" in r.stderr
    sent = server.chat_requests()[-1].json["messages"][-1]
    assert sent["role"] == "tool" and "exit code 4" in sent["content"]


def test_tool_timeout(llmost: Runner, server: fs.FakeServer, isolated_env: Path) -> None:
    tool = declare(isolated_env, "import time\ntime.sleep(30)\n")
    config = isolated_env / ".config" / "llmost" / "config.toml"
    config.write_text(config.read_text().replace("timeout = 5", "timeout = 0.5"))
    del tool
    server.add(fs.stream_tool_calls([("c1", "get_weather", "{}")]), fs.stream_text("k"))
    r = llmost("ask", "--tools-all", "--yes", "weather?")
    assert r.rc == 0 and "timed out after 0.5 s" in r.stderr


def test_round_limit(llmost: Runner, server: fs.FakeServer, isolated_env: Path) -> None:
    declare(isolated_env, ECHO_TOOL, extra="[profiles.default]\nmax_tool_rounds = 2\n")
    for i in range(4):
        server.add(fs.stream_tool_calls([(f"c{i}", "get_weather", '{"city": "X"}')]))
    r = llmost("ask", "--tools-all", "--yes", "loop")
    assert r.rc == 0
    assert "stopped after 2 tool rounds" in r.stderr
    assert len(server.chat_requests()) == 3
    assert r.stdout == ""
    # the calls of the last round are answered as not run, so the conversation can go on
    with Store(paths.database_file()) as store:
        latest = store.latest()
        assert latest is not None
        stored = store.messages(latest.id)
    assert stored[-1].role == "tool" and stored[-1].tool_call_id == "c2"
    assert "limit of 2 tool rounds" in str(stored[-1].content)


def test_long_tool_output_truncated(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    declare(isolated_env, "print('x' * 100000)\n")
    server.add(fs.stream_tool_calls([("c1", "get_weather", "{}")]), fs.stream_text("done"))
    r = llmost("ask", "--tools-all", "--yes", "q")
    assert r.rc == 0 and "output truncated to 16 KiB" in r.stderr
    content = server.chat_requests()[-1].json["messages"][-1]["content"]
    assert len(content) < 17 * 1024 and content.endswith("]")


def test_undeclared_tool_name(llmost: Runner, isolated_env: Path) -> None:
    declare(isolated_env, ECHO_TOOL)
    r = llmost("ask", "--tool", "nope", "q")
    assert r.rc == 2 and "no tool 'nope' in the config file (get_weather)" in r.stderr


def test_bad_tool_declaration(llmost: Runner, isolated_env: Path) -> None:
    write_config(isolated_env, '[tools.x]\ncommand = "not a list"\n')
    r = llmost("ask", "--tools-all", "q")
    assert r.rc == 3 and "[tools.x]: command must be a list" in r.stderr


@pytest.mark.parametrize(
    ("answer", "rc", "message"),
    [
        ('{"name": "Ann", "age": 31}', 0, ""),
        ('{"name": "Ann"}', 7, "'age' is a required property"),
        ('{"name": "Ann", "age": "old"}', 7, "at age"),
        ("not json at all", 7, "not valid JSON"),
    ],
)
def test_schema_validation(
    llmost: Runner, server: fs.FakeServer, answer: str, rc: int, message: str
) -> None:
    server.add(fs.stream_text(answer))
    r = llmost("ask", "--schema", "name, age int", "who?")
    assert r.rc == rc, r
    assert r.stdout == answer + "\n"  # the answer is printed either way
    assert message in r.stderr
    if rc:  # one clear line, not a warning and then an error saying the same
        assert r.stderr.count("\n") == 1 and "warning" not in r.stderr


def test_json_mode_validation(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text('{"ok": true}'), fs.stream_text("Sure! Here is JSON: {"))
    assert llmost("ask", "--json-mode", "q").rc == 0
    r = llmost("ask", "--json-mode", "-o", "json", "q")
    assert r.rc == 7
    assert json.loads(r.stdout)["error"]["type"] == "StructuredOutputError"
