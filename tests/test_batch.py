"""``llmost batch`` end to end (in-process) against the fake server, and its pure parts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests import fakeserver as fs
from tests.conftest import Result, Runner, write_config

FIELDS = ["id", "model", "content", "finish_reason", "tool_calls", "usage", "cost", "error"]


class ByPrompt(fs.Reply):
    """The reply chosen by the text of the request's last message (lines run concurrently,
    so a FIFO queue cannot say which line gets which reply)."""

    def __init__(self, pick: Callable[[str], fs.Reply]) -> None:
        self.pick = pick

    def play(self, ctx: Any) -> None:
        body = ctx.request.json
        content = body["messages"][-1]["content"]
        self.pick(content if isinstance(content, str) else json.dumps(content)).play(ctx)


def jsonl(items: Iterable[Any]) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def prompts(n: int, prefix: str = "p") -> str:
    return jsonl({"id": f"{prefix}{i}", "prompt": f"{prefix}{i}"} for i in range(n))


def lines_of(text: str) -> list[dict[str, Any]]:
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def run(llmost: Runner, data: str, *args: str) -> tuple[Result, list[dict[str, Any]]]:
    r = llmost("batch", "-", *args, input=data)
    return r, lines_of(r.stdout)


def by_id(out: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    ids = [line["id"] for line in out]
    assert len(ids) == len(set(ids)), f"duplicate ids: {ids}"
    return {line["id"]: line for line in out}


# --- the lines ------------------------------------------------------------------------------


def test_three_kinds_of_lines_one_output_line_each(llmost: Runner, server: fs.FakeServer) -> None:
    data = jsonl(
        [
            {"id": "a", "prompt": "Привет"},
            {"id": 7, "messages": [{"role": "system", "content": "terse"},
                                   {"role": "user", "content": "hi"}]},
            "a bare string",
            {"prompt": "no id", "model": "openai/gpt-4o-mini", "temperature": 0.5},
        ]
    )  # fmt: skip
    r, out = run(llmost, data)
    assert r.rc == 0, r
    lines = by_id(out)
    assert set(lines) == {"a", 7, 3, 4}  # a bare string or a line without id: its line number
    for line in out:
        assert list(line) == FIELDS
        assert line["content"] == "Hello!" and line["error"] is None
        assert line["finish_reason"] == "stop" and line["tool_calls"] == []
        assert line["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert lines[4]["model"] == "openai/gpt-4o-mini"
    bodies = {json.dumps(req.json["messages"]): req.json for req in server.chat_requests()}
    assert len(bodies) == 4
    sent = {b["messages"][-1]["content"]: b for b in bodies.values()}
    assert sent["hi"]["messages"][0] == {"role": "system", "content": "terse"}
    assert sent["no id"]["model"] == "openai/gpt-4o-mini"
    assert sent["no id"]["temperature"] == 0.5
    assert sent["Привет"]["messages"] == [{"role": "user", "content": "Привет"}]
    assert r.stderr.startswith("llmost: batch: 4 done, 0 failed, 60 tokens")


def test_shared_options_apply_to_every_line(llmost: Runner, server: fs.FakeServer) -> None:
    data = jsonl([{"id": 1, "prompt": "x"}, {"id": 2, "prompt": "y", "max_tokens": 9}])
    r, _ = run(llmost, data, "-m", "m/one", "-s", "be brief", "--max-tokens", "5",
               "--param", "top_k=40", "--no-stream")  # fmt: skip
    assert r.rc == 0, r
    bodies = sorted((req.json for req in server.chat_requests()), key=lambda b: str(b["messages"]))
    for body in bodies:
        assert body["model"] == "m/one" and body["top_k"] == 40 and body["stream"] is False
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert [b["max_tokens"] for b in bodies] == [5, 9]  # a line's own value wins


def test_cost_from_usage_and_strict_json(llmost: Runner, server: fs.FakeServer) -> None:
    usage = {**fs.DEFAULT_USAGE, "cost": 0.0125}
    server.set_default(fs.adaptive("ok", usage=usage))
    r, out = run(llmost, prompts(2))
    assert r.rc == 0 and [line["cost"] for line in out] == [0.0125, 0.0125]
    assert "NaN" not in r.stdout and "$0.025" in r.stderr


def test_output_file_lines_are_whole(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    r = llmost("batch", "-", "-o", str(out), input=prompts(5))
    assert (r.rc, r.stdout) == (0, "")
    assert sorted(by_id(lines_of(out.read_text()))) == [f"p{i}" for i in range(5)]
    # without --resume, a file that already holds answers is not overwritten
    r = llmost("batch", "-", "-o", str(out), input=prompts(5))
    assert r.rc == 2 and "--resume" in r.stderr
    assert len(lines_of(out.read_text())) == 5


# --- concurrency, rate, backoff -------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [((), 8), (("--concurrency", "3"), 3)])
def test_concurrency_is_reached_and_not_exceeded(
    llmost: Runner, server: fs.FakeServer, args: tuple[str, ...], expected: int
) -> None:
    server.latency = 0.25
    r, out = run(llmost, prompts(3 * expected), *args)
    assert r.rc == 0 and len(out) == 3 * expected
    assert server.max_in_flight == expected


def test_rpm_spaces_the_requests(llmost: Runner, server: fs.FakeServer) -> None:
    r, out = run(llmost, prompts(5), "--rpm", "600", "--concurrency", "5")
    assert r.rc == 0 and len(out) == 5
    times = sorted(req.received_at for req in server.chat_requests())
    # 600 a minute: sent 0.1 s apart (0.4 s from first to last); when they arrive adds its own
    # delay on a loaded machine (one found 0.379 s). Unlimited they arrive within milliseconds.
    assert times[-1] - times[0] >= 0.3, times


def test_a_429_storm_pauses_the_whole_batch_then_every_line_succeeds(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.latency = 0.05
    server.add(*[fs.error(429, "slow down", retry_after=1) for _ in range(8)])
    r, out = run(llmost, prompts(16), "--concurrency", "8")
    assert r.rc == 0, r
    assert len(out) == 16 and all(line["error"] is None for line in out)
    times = sorted(req.received_at for req in server.chat_requests())
    assert len(times) == 24
    # the 8 first requests were refused; nobody sent anything during the 1 s pause
    assert times[8] - times[7] >= 0.9, times


def test_5xx_is_retried_after_a_shared_pause(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.error(503, "busy", retry_after=0))
    r, out = run(llmost, prompts(3), "--concurrency", "1")
    assert r.rc == 0 and len(out) == 3 and all(line["error"] is None for line in out)
    assert len(server.chat_requests()) == 4


# --- failures -------------------------------------------------------------------------------


def test_a_failed_line_is_recorded_and_exit_is_9(llmost: Runner, server: fs.FakeServer) -> None:
    def pick(prompt: str) -> fs.Reply:
        if prompt == "p2":
            return fs.error(400, "context length exceeded", code=400)
        return fs.adaptive("fine")

    server.set_default(ByPrompt(pick))
    r, out = run(llmost, prompts(5))
    assert r.rc == 9, r
    lines = by_id(out)
    assert len(lines) == 5
    assert lines["p2"]["error"] == {"code": 400, "message": "HTTP 400: context length exceeded"}
    assert lines["p2"]["content"] is None
    assert all(lines[f"p{i}"]["error"] is None for i in (0, 1, 3, 4))
    assert "4 done, 1 failed" in r.stderr


def test_rate_limit_after_retries_fails_only_that_line(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.add(fs.error(429, "slow down", retry_after=0))
    r, out = run(llmost, prompts(2), "--retries", "0", "--concurrency", "1")
    assert r.rc == 9
    assert [line["error"] and line["error"]["code"] for line in out] == [429, None]


def test_midstream_error_keeps_what_arrived(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.midstream_error("partial ", code=502, message="Provider disconnected"))
    r, out = run(llmost, prompts(1))
    assert r.rc == 9
    assert out[0]["content"] == "partial "
    assert out[0]["error"]["code"] == 502 and "Provider disconnected" in out[0]["error"]["message"]


def test_bad_key_stops_the_whole_run_and_writes_nothing(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.set_default(fs.error(401, "invalid key"))
    r, out = run(llmost, prompts(20), "--concurrency", "2")
    assert r.rc == 4 and out == []
    assert len(server.chat_requests()) <= 2  # nothing more was started
    assert "20 not written" in r.stderr and "invalid key" in r.stderr


def test_schema_failure_is_a_failed_line_with_code_7(llmost: Runner, server: fs.FakeServer) -> None:
    def pick(prompt: str) -> fs.Reply:
        return fs.adaptive("not json" if prompt == "p1" else '{"name": "x"}')

    server.set_default(ByPrompt(pick))
    r, out = run(llmost, prompts(3), "--schema", "name")
    assert r.rc == 9
    lines = by_id(out)
    assert lines["p1"]["error"]["code"] == 7 and lines["p1"]["content"] == "not json"
    assert lines["p0"]["error"] is None
    body = server.chat_requests()[0].json
    assert body["response_format"]["type"] == "json_schema"


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "input line 2 is not valid JSON"),
        ('{"id": "x"}', "input line 2 needs either prompt or messages"),
        ('{"id": "x", "prompt": "p", "temperature": 5}', "input line 2: temperature must be in"),
        ('{"id": "x", "prompt": "p", "tempreature": 1}', "unknown key 'tempreature'"),
        ('{"id": true, "prompt": "p"}', "id must be a non-empty string or an integer"),
        ('{"id": 1.5, "prompt": "p"}', "id must be"),
        ('{"prompt": NaN}', "input line 2"),
        ("[1, 2]", "must be a JSON object or a string"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "role must be one of"),
    ],
)
def test_a_malformed_line_is_exit_2_before_anything_is_sent(
    llmost: Runner, server: fs.FakeServer, line: str, message: str
) -> None:
    data = '"first"\n' + line + '\n"third"\n'
    r = llmost("batch", "-", input=data)
    assert r.rc == 2, r
    assert message in r.stderr and "--skip-invalid" in r.stderr
    assert server.chat_requests() == [] and r.stdout == ""


def test_invalid_utf8_and_blank_lines(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("batch", "-", input=b'"one"\n\n   \n"\xff"\n')
    assert r.rc == 2 and "input line 4 is not valid UTF-8" in r.stderr


def test_skip_invalid_records_the_line_as_failed(llmost: Runner, server: fs.FakeServer) -> None:
    data = '{"id": "ok", "prompt": "x"}\n{"id": "bad", "prompt": ""}\n{oops\n'
    r, out = run(llmost, data, "--skip-invalid")
    assert r.rc == 9
    lines = by_id(out)
    assert lines["ok"]["error"] is None
    assert lines["bad"]["error"] == {"code": 2, "message": "input line 2: prompt must be a "
                                     "non-empty string"}  # fmt: skip
    assert lines[3]["error"]["code"] == 2 and "input line 3" in lines[3]["error"]["message"]
    assert len(server.chat_requests()) == 1


def test_duplicate_ids_are_exit_2(llmost: Runner, server: fs.FakeServer) -> None:
    data = jsonl([{"id": "a", "prompt": "x"}, "b", {"id": "a", "prompt": "y"}])
    r = llmost("batch", "-", "--skip-invalid", input=data)
    assert r.rc == 2 and 'input lines 1 and 3 have the same id "a"' in r.stderr
    assert server.chat_requests() == []
    # 1 and "1" are different ids; a bare string's id is its line number
    r, out = run(llmost, jsonl([{"id": "1", "prompt": "x"}, "y"]))
    assert r.rc == 0 and {line["id"] for line in out} == {"1", 2}
    r = llmost("batch", "-", input=jsonl([{"id": 2, "prompt": "x"}, "y"]))
    assert r.rc == 2 and "input lines 1 and 2 have the same id 2" in r.stderr


def test_input_file_and_missing_file(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(prompts(3))
    r = llmost("batch", str(path))
    assert r.rc == 0 and len(lines_of(r.stdout)) == 3
    r = llmost("batch", str(tmp_path / "nope.jsonl"))
    assert r.rc == 2 and "no such file" in r.stderr


def test_input_from_a_fifo_is_read_once(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    import os
    import threading

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as f:
            f.write(prompts(4))

    writer = threading.Thread(target=feed)
    writer.start()
    r = llmost("batch", str(fifo))
    writer.join(5)
    assert r.rc == 0 and len(lines_of(r.stdout)) == 4


def test_output_cannot_be_the_input(llmost: Runner, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(prompts(2))
    r = llmost("batch", str(path), "-o", str(path), "--resume")
    assert r.rc == 2 and "OUTPUT is the INPUT file" in r.stderr


# --- whole-run errors -----------------------------------------------------------------------


def test_no_key_is_exit_3(llmost_bare: Runner) -> None:
    r = llmost_bare("batch", "-", input=prompts(2))
    assert r.rc == 3 and "no API key" in r.stderr and r.stdout == ""


def test_plain_http_to_a_remote_host_is_refused(llmost: Runner) -> None:
    r = llmost("batch", "-", input=prompts(1), env={"LLMOST_BASE_URL": "http://example.com/v1"})
    assert r.rc == 3 and "plain http" in r.stderr


def test_unwritable_output_is_exit_74(llmost: Runner, tmp_path: Path) -> None:
    r = llmost("batch", "-", "-o", str(tmp_path / "no" / "dir.jsonl"), input=prompts(1))
    assert r.rc == 74 and "cannot write" in r.stderr


def test_option_errors(llmost: Runner, server: fs.FakeServer) -> None:
    for args, text in [
        (("--concurrency", "0"), "--concurrency"),
        (("--rpm", "0"), "--rpm"),
        (("--max-cost", "-1"), "--max-cost"),
        (("--resume",), "--resume needs -o"),
        (("--json-mode", "--schema", "x"), "cannot be combined"),
        (("--tool-choice", "auto"), "--tool-choice needs tools"),
    ]:
        r = llmost("batch", "-", *args, input=prompts(1))
        assert r.rc == 2 and text in r.stderr, (args, r)
    assert server.chat_requests() == []


def test_help_shows_examples(llmost: Runner) -> None:
    r = llmost("batch", "--help")
    assert r.rc == 0
    assert "Examples:" in r.stdout and "--resume" in r.stdout and "--max-cost" in r.stdout
    assert "--session" not in r.stdout and "--continue" not in r.stdout


# --- ordering -------------------------------------------------------------------------------


def slow_first(prompt: str) -> fs.Reply:
    """p0 answers last, p5 first."""
    i = int(prompt[1:])
    return fs.hang(0.1 * (6 - i), fs.adaptive(prompt))


def test_ordered_keeps_input_order(llmost: Runner, server: fs.FakeServer) -> None:
    server.set_default(ByPrompt(slow_first))
    r, out = run(llmost, prompts(6), "--ordered", "--concurrency", "6")
    assert r.rc == 0
    assert [line["id"] for line in out] == [f"p{i}" for i in range(6)]
    assert [line["content"] for line in out] == [f"p{i}" for i in range(6)]


def test_unordered_writes_as_lines_complete(llmost: Runner, server: fs.FakeServer) -> None:
    server.set_default(ByPrompt(slow_first))
    r, out = run(llmost, prompts(6), "--concurrency", "6")
    assert r.rc == 0 and sorted(line["id"] for line in out) == [f"p{i}" for i in range(6)]
    assert out[-1]["id"] == "p0"  # the slowest by far is written last


# --- resume ---------------------------------------------------------------------------------


def test_resume_skips_present_ids_and_repairs_a_torn_line(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    done = [{"id": f"p{i}", "content": "old", "error": None} for i in range(2)]
    out.write_text(jsonl(done) + '{"id": "p2", "model": "openai/gp')  # killed mid-write
    r = llmost("batch", "-", "-o", str(out), "--resume", input=prompts(5))
    assert r.rc == 0, r
    lines = by_id(lines_of(out.read_text()))
    assert sorted(lines) == [f"p{i}" for i in range(5)]
    assert lines["p0"]["content"] == "old" and lines["p2"]["content"] == "Hello!"
    sent = sorted(req.json["messages"][-1]["content"] for req in server.chat_requests())
    assert sent == ["p2", "p3", "p4"]
    assert "torn last line" in r.stderr and "2 already in OUTPUT" in r.stderr
    # everything done: a resume sends nothing
    r = llmost("batch", "-", "-o", str(out), "--resume", input=prompts(5))
    assert r.rc == 0 and len(server.chat_requests()) == 3


def test_resume_refuses_a_file_it_did_not_write(llmost: Runner, tmp_path: Path) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("dear diary\n")
    r = llmost("batch", "-", "-o", str(out), "--resume", input=prompts(1))
    assert r.rc == 2 and "not a line written by llmost batch" in r.stderr
    assert out.read_text() == "dear diary\n"


# --- max-cost -------------------------------------------------------------------------------


def test_max_cost_stops_starting_lines(llmost: Runner, server: fs.FakeServer) -> None:
    server.set_default(fs.adaptive("ok", usage={**fs.DEFAULT_USAGE, "cost": 0.01}))
    r, out = run(llmost, prompts(10), "--max-cost", "0.035", "--concurrency", "1")
    assert r.rc == 0, r
    assert len(out) == 4  # $0.01 each: the 4th reaches $0.035
    assert "$0.04" in r.stderr and "6 not written (--max-cost 0.035 reached" in r.stderr
    assert "warning: --max-cost reached: 6 lines were not started" in r.stderr


def test_max_cost_with_concurrency_overshoots_little(llmost: Runner, server: fs.FakeServer) -> None:
    server.latency = 0.05
    server.set_default(fs.adaptive("ok", usage={**fs.DEFAULT_USAGE, "cost": 0.01}))
    r, out = run(llmost, prompts(40), "--max-cost", "0.1", "--concurrency", "8")
    assert r.rc == 0
    assert 10 <= len(out) <= 11  # the expected cost of the lines in flight is counted


def test_max_cost_with_unknown_prices_stops(llmost: Runner, server: fs.FakeServer) -> None:
    r, out = run(llmost, prompts(5), "--max-cost", "1", "--concurrency", "1")
    assert r.rc == 0 and len(out) == 1
    assert "--max-cost cannot be kept" in r.stderr and out[0]["cost"] is None


def test_cost_from_cached_prices(llmost: Runner, server: fs.FakeServer) -> None:
    assert llmost("models", "--refresh").rc == 0  # caches the prices
    r, out = run(llmost, prompts(2), "-m", "openai/gpt-4o")
    assert r.rc == 0
    # 12 x 0.0000025 + 3 x 0.00001
    assert out[0]["cost"] == pytest.approx(0.00006)


# --- store and output to a terminal ----------------------------------------------------------


def test_store_keeps_each_line_as_a_conversation(llmost: Runner, server: fs.FakeServer) -> None:
    from llmost_cli import paths
    from llmost_cli.store.store import Store

    r, out = run(llmost, prompts(2))
    assert r.rc == 0 and "conversation" not in out[0]
    assert not paths.database_file().exists()  # nothing stored without --store
    r, out = run(llmost, prompts(3, "s"), "--store")
    assert r.rc == 0 and all(line["conversation"] for line in out)
    with Store(paths.database_file()) as store:
        conversations = store.list()
        assert len(conversations) == 3
        messages = store.messages(out[0]["conversation"])
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == out[0]["id"] and messages[1].content == "Hello!"


def test_summary_only_when_stderr_is_not_a_terminal(llmost: Runner, server: fs.FakeServer) -> None:
    r, _ = run(llmost, prompts(3))
    assert r.stderr.count("\n") == 1 and "\x1b" not in r.stderr


# --- config -----------------------------------------------------------------------------


def test_profile_settings_apply(llmost: Runner, server: fs.FakeServer, isolated_env: Path) -> None:
    write_config(isolated_env, '[profiles.default]\nmodel = "cfg/model"\ntemperature = 0.3\n')
    r, _ = run(llmost, prompts(1))
    assert r.rc == 0
    body = server.chat_requests()[0].json
    assert body["model"] == "cfg/model" and body["temperature"] == 0.3


def test_elapsed_is_measured(llmost: Runner, server: fs.FakeServer) -> None:
    server.latency = 0.2
    start = time.monotonic()
    r, _ = run(llmost, prompts(2), "--concurrency", "1")
    took = time.monotonic() - start
    shown = float(r.stderr.rsplit(", ", 1)[1].split(" s")[0])
    assert 0.4 <= shown <= took + 0.05  # shown to a tenth of a second: 0.46 s prints as 0.5
