"""End-to-end: the installed ``llmost ask`` against the fake LLMost server."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner, write_config

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 32


def last_body(server: fs.FakeServer) -> dict:
    requests = server.chat_requests()
    assert requests, "the server received no chat request"
    return requests[-1].json


# --- the basic stream ---------------------------------------------------------------------


def test_streamed_answer_is_printed_exactly(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("Привет, мир! **bold** `code`"))
    r = llmost("ask", "hi")
    assert (r.rc, r.stdout, r.stderr) == (0, "Привет, мир! **bold** `code`\n", "")


def test_answer_ending_in_newline_gets_no_extra_one(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text(["line 1\n", "line 2\n"]))
    assert llmost("ask", "hi").stdout == "line 1\nline 2\n"


def test_request_body_and_headers(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("ask", "what", "is", " spaced  words")
    assert r.rc == 0
    req = server.chat_requests()[-1]
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"].startswith("llmost/")
    body = req.json
    assert "model" not in body  # no model anywhere: the account default applies
    assert body["messages"] == [{"role": "user", "content": "what is  spaced  words"}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_crlf_stream_and_comments_everywhere(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(
        fs.stream(
            fs.comment(),
            fs.chunk({"id": "g", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
            fs.comment("keep-alive"),
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "a"}}]}),
            fs.chunk({"choices": [{"index": 0, "delta": {"content": None}}]}),
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "b"}}]}),
            fs.comment(),
            fs.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            fs.chunk({"choices": [], "usage": {"prompt_tokens": 1}}),
            fs.done(),
            line_ending="\r\n",
        )
    )
    r = llmost("ask", "hi")
    assert (r.rc, r.stdout, r.stderr) == (0, "ab\n", "")


def test_utf8_split_across_network_chunks(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(
        fs.stream(
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "Ёжик в тумане"}}]}),
            fs.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            fs.done(),
            fragment=3,
        )
    )
    assert llmost("ask", "hi").stdout == "Ёжик в тумане\n"


# --- options --------------------------------------------------------------------------------


def test_model_from_flag_env_and_profile(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    write_config(isolated_env, '[profiles.default]\nmodel = "profile/model"\n')
    llmost("ask", "hi")
    assert last_body(server)["model"] == "profile/model"
    llmost("ask", "hi", env={"LLMOST_MODEL": "env/model"})
    assert last_body(server)["model"] == "env/model"
    llmost("ask", "-m", "flag/model", "hi", env={"LLMOST_MODEL": "env/model"})
    assert last_body(server)["model"] == "flag/model"


def test_system_prompt_text_and_file(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    llmost("ask", "-s", "Be terse.", "hi")
    assert last_body(server)["messages"][0] == {"role": "system", "content": "Be terse."}
    f = tmp_path / "sys.txt"
    f.write_text("From a file.\n", encoding="utf-8")
    llmost("ask", "--system", f"@{f}", "hi")
    assert last_body(server)["messages"][0] == {"role": "system", "content": "From a file.\n"}
    r = llmost("ask", "-s", f"@{tmp_path / 'missing.txt'}", "hi")
    assert r.rc == 2 and "missing.txt" in r.stderr


def test_images_become_data_urls_and_urls_pass(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    png, jpg = tmp_path / "a.png", tmp_path / "photo.bin"
    png.write_bytes(PNG)
    jpg.write_bytes(JPEG)
    r = llmost("ask", "-i", str(png), "--image", str(jpg), "-i", "https://x.test/c.webp", "see")
    assert r.rc == 0, r
    content = last_body(server)["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "see"}
    assert (
        content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    )
    assert content[2]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert content[3] == {"type": "image_url", "image_url": {"url": "https://x.test/c.webp"}}


@pytest.mark.parametrize("kind", ["missing", "not-image", "directory"])
def test_bad_image_is_usage_error_before_any_request(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"{kind}.png"
    if kind == "not-image":
        path.write_text("just text")
    elif kind == "directory":
        path.mkdir()
    r = llmost("ask", "-i", str(path), "hi")
    assert r.rc == 2
    assert str(path) in r.stderr and r.stderr.startswith("llmost: error:")
    assert len(r.stderr.strip().splitlines()) == 1
    assert server.chat_requests() == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_image(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    path.write_bytes(PNG)
    path.chmod(0)
    r = llmost("ask", "-i", str(path), "hi")
    assert r.rc == 2 and "permission denied" in r.stderr


def test_prefill_printed_and_sent(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text('"a": 1}'))
    r = llmost("ask", "--prefill", "{", "json please")
    assert r.stdout == '{"a": 1}\n'
    assert last_body(server)["messages"][-1] == {"role": "assistant", "content": "{"}


def test_sampling_parameters_in_body(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost(
        "ask", "-t", "0.5", "--top-p", "1", "--max-tokens", "7", "--frequency-penalty", "-2",
        "--presence-penalty", "2", "--stop", "END", "--stop", "\n\n", "--seed", "42", "hi",
    )  # fmt: skip
    assert r.rc == 0, r
    body = last_body(server)
    assert body["temperature"] == 0.5
    assert body["top_p"] == 1.0
    assert body["max_tokens"] == 7
    assert body["frequency_penalty"] == -2.0
    assert body["presence_penalty"] == 2.0
    assert body["stop"] == ["END", "\n\n"]
    assert body["seed"] == 42


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-t", "5"], "--temperature must be in [0, 2], got 5"),
        (["-t", "-0.1"], "--temperature must be in [0, 2]"),
        (["--top-p", "0"], "--top-p must be in (0, 1], got 0"),
        (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["--max-tokens", "0"], "--max-tokens must be >= 1"),
        (["--frequency-penalty", "3"], "--frequency-penalty must be in [-2, 2]"),
        (["--presence-penalty", "-2.5"], "--presence-penalty must be in [-2, 2]"),
        (["--stop", "a", "--stop", "b", "--stop", "c", "--stop", "d", "--stop", "e"],
         "at most 4 stop sequences"),
        (["-t", "hot"], "--temperature must be a number, got 'hot'"),
        (["--timeout", "0"], "--timeout must be > 0"),
        (["--retries", "-1"], "--retries must be in [0, 10]"),
        (["--param", "novalue"], "--param expects KEY=JSON"),
        (["-o", "yaml"], "yaml"),
    ],
)  # fmt: skip
def test_out_of_range_values_are_usage_errors(
    llmost: Runner, server: fs.FakeServer, args: list[str], expected: str
) -> None:
    r = llmost("ask", *args, "hi")
    assert r.rc == 2, r
    assert expected in r.stderr
    assert r.stderr.startswith("llmost: error:") and r.stderr.count("\n") == 1
    assert r.stdout == ""
    assert server.chat_requests() == []


def test_param_passes_any_field(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost(
        "ask", "--param", "top_k=40", "--param", 'provider={"order": ["openai"]}',
        "--param", "user=plain text", "hi",
    )  # fmt: skip
    assert r.rc == 0
    body = last_body(server)
    assert body["top_k"] == 40
    assert body["provider"] == {"order": ["openai"]}
    assert body["user"] == "plain text"


def test_json_mode_and_schema(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    llmost("ask", "--json-mode", "hi")
    assert last_body(server)["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    llmost("ask", "--schema", json.dumps(schema), "hi")
    rf = last_body(server)["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == schema
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"name": "person", "schema": schema}))
    llmost("ask", "--schema", str(f), "hi")
    assert last_body(server)["response_format"]["json_schema"]["name"] == "person"
    llmost("ask", "--schema", "name, age int, tags list", "hi")
    props = last_body(server)["response_format"]["json_schema"]["schema"]["properties"]
    assert props == {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    }
    r = llmost("ask", "--json-mode", "--schema", str(f), "hi")
    assert r.rc == 2 and "cannot be combined" in r.stderr


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_tools_passed_and_streamed_calls_printed(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    f = tmp_path / "tools.json"
    f.write_text(json.dumps(TOOLS))
    server.add(
        fs.stream_tool_calls(
            [("call_1", "get_weather", '{"city": "Москва"}'), ("call_2", "get_weather", "{}")],
            interleave=True,
        )
    )
    r = llmost("ask", "--tools", str(f), "--tool-choice", "get_weather", "weather?")
    assert r.rc == 0, r
    body = last_body(server)
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Москва"}},
        {"id": "call_2", "name": "get_weather", "arguments": {}},
    ]
    r = llmost("ask", "--tools", str(f), "--tool-choice", "nope", "hi")
    assert r.rc == 2 and "nope" in r.stderr


def test_no_stream_sends_stream_false(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.completion("Whole answer."))
    r = llmost("ask", "--no-stream", "hi")
    assert (r.rc, r.stdout) == (0, "Whole answer.\n")
    assert last_body(server)["stream"] is False
    assert "stream_options" not in last_body(server)


def test_output_json(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("Hi there", id="gen-42", model="openai/gpt-4o"))
    r = llmost("ask", "-o", "json", "hi")
    assert r.rc == 0
    out = r.json
    assert out["id"] == "gen-42"
    assert out["model"] == "openai/gpt-4o"
    assert out["content"] == "Hi there"
    assert out["finish_reason"] == "stop"
    assert out["tool_calls"] == []
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert out["cost"] is None
    assert isinstance(out["conversation"], str)
    assert r.stdout.count("\n") == 1


def test_output_json_error(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.error(401, "Неверные учетные данные"))
    r = llmost("ask", "-o", "json", "hi")
    assert r.rc == 4
    assert r.json["error"]["code"] == 401
    assert "Неверные учетные данные" in r.json["error"]["message"]
    r = llmost("ask", "-o", "json", "-t", "9", "hi")
    assert r.rc == 2 and r.json["error"]["code"] == 2


def test_usage_on_stderr(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("ask", "-u", "hi")
    assert r.stdout == "Hello!\n"
    assert r.stderr == "llmost: tokens: 12 prompt + 3 completion = 15 total\n"


def test_stdin_combined_after_prompt(llmost: Runner, server: fs.FakeServer) -> None:
    llmost("ask", "review", "this", input="diff --git a b\n+ x\n")
    content = last_body(server)["messages"][0]["content"]
    assert content == "review this\n\ndiff --git a b\n+ x\n"
    llmost("ask", input="only stdin")
    assert last_body(server)["messages"][0]["content"] == "only stdin"
    llmost("ask", "--no-stdin", "just this", input="ignored")
    assert last_body(server)["messages"][0]["content"] == "just this"


def test_no_prompt_is_usage_error(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("ask", input=b"")
    assert r.rc == 2 and "no prompt" in r.stderr
    r = llmost("ask", "--no-stdin", input=b"text")
    assert r.rc == 2


def test_non_utf8_stdin_replaced_with_warning(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("ask", "x", input=b"caf\xe9 \xff ok")
    assert r.rc == 0
    assert "not valid UTF-8" in r.stderr
    assert last_body(server)["messages"][0]["content"] == "x\n\ncaf\ufffd \ufffd ok"


def test_dry_run_sends_nothing_and_needs_no_key(llmost_bare: Runner, server: fs.FakeServer) -> None:
    r = llmost_bare("ask", "--dry-run", "-m", "a/b", "-t", "1", "hi")
    assert r.rc == 0, r
    assert json.loads(r.stdout) == {
        "model": "a/b",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 1.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "usage": {"include": True},
    }
    r = llmost_bare("ask", "--dry-run", "hi", env={"LLMOST_API_KEY": TEST_KEY})
    assert TEST_KEY not in r.stdout + r.stderr
    assert server.requests == []


# --- failures -------------------------------------------------------------------------------


def test_missing_key_says_how_to_set_one(llmost_bare: Runner) -> None:
    r = llmost_bare("ask", "hi")
    assert r.rc == 3
    assert r.stderr == (
        "llmost: error: no API key is set (run 'llmost config set api_key' or set LLMOST_API_KEY)\n"
    )


@pytest.mark.parametrize(
    ("status", "rc"),
    [(400, 7), (401, 4), (403, 4), (402, 5), (404, 7), (413, 7), (422, 7)],
)
def test_http_errors_map_to_exit_codes_without_retry(
    llmost: Runner, server: fs.FakeServer, status: int, rc: int
) -> None:
    server.add(fs.error(status, f"server says {status}", metadata={"reason": "x"}))
    r = llmost("ask", "hi")
    assert r.rc == rc
    assert r.stdout == ""
    assert r.stderr.startswith(f"llmost: error: HTTP {status}: server says {status}")
    assert r.stderr.count("\n") == 1
    assert len(server.chat_requests()) == 1  # never retried


@pytest.mark.parametrize(("status", "rc"), [(429, 6), (500, 7), (502, 7), (503, 7), (504, 7)])
def test_retryable_errors_retried_then_reported(
    llmost: Runner, server: fs.FakeServer, status: int, rc: int
) -> None:
    for _ in range(3):
        server.add(fs.error(status, "busy", retry_after=0))
    r = llmost("ask", "--retries", "2", "hi")
    assert r.rc == rc
    assert f"HTTP {status}: busy" in r.stderr
    assert len(server.chat_requests()) == 3


def test_retry_that_succeeds_honours_retry_after(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.error(429, "slow down", retry_after=1), fs.stream_text("finally"))
    start = time.monotonic()
    r = llmost("ask", "hi")
    elapsed = time.monotonic() - start
    assert (r.rc, r.stdout) == (0, "finally\n")
    assert len(server.chat_requests()) == 2
    assert elapsed >= 1.0


def test_retries_zero(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.error(503, "down"))
    r = llmost("ask", "--retries", "0", "hi")
    assert r.rc == 7 and len(server.chat_requests()) == 1


def test_midstream_error_keeps_partial_text(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.midstream_error("Partial ans", code=502, message="Provider disconnected"))
    r = llmost("ask", "hi")
    assert r.rc == 7
    assert r.stdout == "Partial ans\n"
    assert "Provider disconnected" in r.stderr
    assert len(server.chat_requests()) == 1  # mid-stream errors are never retried


def test_midstream_error_with_string_code(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.midstream_error("x", code="server_error", message="boom"))
    r = llmost("ask", "-o", "json", "hi")
    assert r.rc == 7
    assert r.json["error"]["code"] == "server_error"


@pytest.mark.parametrize("chunked", [True, False])
def test_dropped_connection_keeps_partial_text(
    llmost: Runner, server: fs.FakeServer, chunked: bool
) -> None:
    server.add(
        fs.stream(
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "half an "}}]}),
            fs.drop(),
            chunked=chunked,
        )
    )
    r = llmost("ask", "hi")
    assert r.rc == 8
    assert r.stdout == "half an \n"
    assert r.stderr.startswith("llmost: error:") and r.stderr.count("\n") == 1


def test_malformed_line(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(
        fs.stream(
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "ok "}}]}),
            fs.raw(b"data: {not json\n\n"),
            fs.done(),
        )
    )
    r = llmost("ask", "hi")
    assert r.rc == 7
    assert r.stdout == "ok \n"
    assert "malformed stream" in r.stderr


def test_timeout(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.hang(10))
    r = llmost("ask", "--timeout", "0.5", "--retries", "0", "hi")
    assert r.rc == 8
    assert "timed out" in r.stderr


def test_timeout_mid_stream(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(
        fs.stream(
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "slow"}}]}),
            fs.pause(10),
            fs.done(),
        )
    )
    r = llmost("ask", "--timeout", "0.5", "hi")
    assert (r.rc, r.stdout) == (8, "slow\n")


def test_connection_refused(llmost: Runner) -> None:
    r = llmost("ask", "--retries", "0", "hi", env={"LLMOST_BASE_URL": "http://127.0.0.1:9/v1"})
    assert r.rc == 8
    assert "cannot connect to 127.0.0.1" in r.stderr


def test_length_and_content_filter_warn(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.stream_text("cut", finish_reason="length"))
    r = llmost("ask", "hi")
    assert (r.rc, r.stdout) == (0, "cut\n")
    assert "warning" in r.stderr and "length" in r.stderr
    server.add(fs.stream_text("filtered", finish_reason="content_filter"))
    r = llmost("ask", "hi")
    assert r.rc == 0 and "content_filter" in r.stderr


def test_html_error_page_from_proxy(llmost: Runner, server: fs.FakeServer) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    server.add(*[fs.raw_response(502, page)] * 2)
    r = llmost("ask", "--retries", "1", "hi")
    assert r.rc == 7
    assert "502 Bad Gateway" in r.stderr and "<" not in r.stderr


def test_redirect_not_followed(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.redirect("http://evil.test/steal"))
    r = llmost("ask", "hi")
    assert r.rc == 7
    assert "evil.test" in r.stderr and "not followed" in r.stderr
    assert len(server.requests) == 1


def test_200_with_error_object(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.json_response({"error": {"code": 502, "message": "upstream failed"}}))
    r = llmost("ask", "--no-stream", "hi")
    assert r.rc == 7 and "upstream failed" in r.stderr


def test_stream_request_answered_with_json(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.completion("not streamed after all"))
    r = llmost("ask", "hi")
    assert (r.rc, r.stdout) == (0, "not streamed after all\n")


def test_insecure_http_refused_for_remote_host(llmost: Runner) -> None:
    r = llmost("ask", "hi", env={"LLMOST_BASE_URL": "http://example.com/api/v1"})
    assert r.rc == 3
    assert "plain http" in r.stderr
    assert TEST_KEY not in r.stderr


def test_invalid_config_file(llmost: Runner, isolated_env: Path) -> None:
    path = write_config(isolated_env, "[profiles.default\nmodel = 1\n")
    r = llmost("ask", "hi")
    assert r.rc == 3
    assert str(path) in r.stderr
    assert path.read_text() == "[profiles.default\nmodel = 1\n"  # never replaced


def test_debug_shows_traffic_with_key_redacted(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("--debug", "ask", "hi")
    assert r.rc == 0
    assert "> POST" in r.stderr and "Bearer ***" in r.stderr
    assert TEST_KEY not in r.stderr + r.stdout
