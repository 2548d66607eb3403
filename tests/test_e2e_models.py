"""End-to-end: the installed ``llmost models`` against the fake LLMost server."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from llmost_cli import paths
from llmost_cli.core import catalog
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner, llmost_executable, run_in_process

ALL_ROWS = [
    "anthropic/claude-3.5-sonnet\t200000\t3\t15\ttext,image,file",
    "google/gemini-2.5-pro\t1048576\t1.25\t10\ttext,image,file,audio",
    "meta-llama/llama-3.1-8b-instruct:free\t131072\t0\t0\ttext",
    "mistralai/mistral-small\t32768\t0.2\t0.6\ttext",
    "openai/gpt-4o\t128000\t2.5\t10\ttext,image,file",
    "openrouter/auto\t2000000\t-\t-\ttext,image",
]


def model_requests(server: fs.FakeServer) -> list[fs.Recorded]:
    return [r for r in server.requests if r.path == fs.MODELS_PATH]


def cache_file(server: fs.FakeServer) -> Path:
    return paths.models_cache_file(server.base_url)


def lines(text: str) -> list[str]:
    return text.splitlines()


def read_cache(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the whole entries of a cache file (``core/catalog.py`` has the layout)."""
    data = path.read_bytes()
    head = json.loads(data[: catalog.HEADER_SIZE])
    body = data[catalog.HEADER_SIZE : head["records_at"]]
    return head, [json.loads(line) for line in body.splitlines()]


def age_cache(path: Path, seconds: float) -> None:
    data = bytearray(path.read_bytes())
    head = json.loads(data[: catalog.HEADER_SIZE])
    head["fetched_at"] -= seconds
    data[: catalog.HEADER_SIZE - 1] = json.dumps(head).encode().ljust(catalog.HEADER_SIZE - 1)
    path.write_bytes(data)


# --- the list, piped --------------------------------------------------------------------------


def test_piped_list_is_plain_tab_separated(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("models")
    assert (r.rc, r.stderr) == (0, "")
    assert lines(r.stdout) == ALL_ROWS  # sorted by id, no header line
    assert "\x1b" not in r.stdout and not re.search("[\u2500-\u257f]", r.stdout)  # no box
    req = model_requests(server)
    assert len(req) == 1 and req[0].method == "GET"
    assert req[0].headers["authorization"] == f"Bearer {TEST_KEY}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["CLAUDE"], [0]),
        (["claude", "sonnet"], [0]),  # every word must match
        (["gpt"], [4]),
        (["--vision"], [0, 1, 4, 5]),
        (["--tools"], [0, 1, 3, 4]),
        (["g", "--vision", "--tools"], [1, 4]),
        (["--tools", "mistral"], [3]),
    ],
)
def test_search_and_filters(llmost: Runner, args: list[str], expected: list[int]) -> None:
    r = llmost("models", *args)
    assert (r.rc, lines(r.stdout)) == (0, [ALL_ROWS[i] for i in expected])


def test_search_matches_the_name(llmost: Runner, server: fs.FakeServer) -> None:
    server.models.append({"id": "z/m-1", "name": "The Zebra Model"})
    assert llmost("models", "zebra").stdout == "z/m-1\t-\t-\t-\t-\n"


def test_no_match_is_empty_output_and_a_note(llmost: Runner) -> None:
    r = llmost("models", "no-such-thing")
    assert (r.rc, r.stdout) == (0, "")
    assert "no models match" in r.stderr
    r = llmost("models", "no-such-thing", "--json")
    assert (r.rc, r.json) == (0, [])


def test_list_word_searches_for_a_subcommand_name(llmost: Runner, server: fs.FakeServer) -> None:
    server.models.append({"id": "acme/show-model"})
    r = llmost("models", "list", "show")
    assert (r.rc, r.stdout) == (0, "acme/show-model\t-\t-\t-\t-\n")


def test_json_is_the_model_objects(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("models", "--json")
    assert r.rc == 0
    assert r.json == sorted(fs.DEFAULT_MODELS, key=lambda m: m["id"])
    r = llmost("models", "--json", "--vision", "gpt")
    assert r.json == [fs.DEFAULT_MODELS[0]]


# --- show -------------------------------------------------------------------------------------


def test_show_every_field(llmost: Runner) -> None:
    r = llmost("models", "show", "openai/gpt-4o")
    assert (r.rc, r.stderr) == (0, "")
    out = lines(r.stdout)
    assert re.fullmatch(r"id +openai/gpt-4o", out[0])
    assert re.fullmatch(r"name +OpenAI: GPT-4o", out[1])
    for pattern in (
        r"context_length +128000",
        r"pricing\.prompt +0\.0000025 per token = 2\.5 per 1M",
        r"pricing\.completion +0\.00001 per token = 10 per 1M",
        r"architecture\.input_modalities +text, image, file",
        r"top_provider\.max_completion_tokens +16384",
        r"architecture\.instruct_type +-",
    ):
        assert any(re.fullmatch(pattern, line) for line in out), pattern
    assert out[-2:] == ["", fs.DEFAULT_MODELS[0]["description"]]


def test_show_wraps_a_long_description(llmost: Runner, server: fs.FakeServer) -> None:
    server.models[0]["description"] = "word " * 60 + "\n\nSecond paragraph."
    out = lines(llmost("models", "show", "openai/gpt-4o").stdout)
    start = out.index("") + 1
    assert all(len(line) <= 80 for line in out[start:])
    assert out[-2:] == ["", "Second paragraph."]
    assert " ".join(out[start:-2]).split() == ["word"] * 60


def test_show_json(llmost: Runner) -> None:
    r = llmost("models", "show", "anthropic/claude-3.5-sonnet", "--json")
    assert (r.rc, r.json) == (0, fs.DEFAULT_MODELS[1])


def test_show_unknown_id_suggests_close_ones(llmost: Runner) -> None:
    r = llmost("models", "show", "gpt4o")
    assert (r.rc, r.stdout) == (2, "")
    assert r.stderr.startswith("llmost: error: unknown model 'gpt4o'")
    assert "did you mean openai/gpt-4o" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    r = llmost("models", "show", "qqqqqqqq", "--json")
    assert r.rc == 2 and "llmost models" in r.stderr


def test_show_refetches_an_id_missing_from_the_cache(llmost: Runner, server: fs.FakeServer) -> None:
    assert llmost("models").rc == 0
    server.models.append({"id": "brand/new"})
    r = llmost("models", "show", "brand/new")
    assert (r.rc, r.stdout) == (0, "id  brand/new\n")
    assert len(model_requests(server)) == 2


def test_show_needs_a_model_id(llmost: Runner) -> None:
    r = llmost("models", "show")
    assert r.rc == 2 and "MODEL_ID" in r.stderr


# --- servers that send only ids ---------------------------------------------------------------


def test_bare_models_show_dashes(llmost: Runner, server: fs.FakeServer) -> None:
    server.models = [
        {"id": "llama3"},
        {"id": "qwen2:7b", "object": "model", "owned_by": "library", "created": 1717000000},
        {"id": "vllm/m", "object": "model", "max_model_len": 8192, "root": "m", "parent": None},
    ]
    r = llmost("models")
    assert (r.rc, r.stderr) == (0, "")
    assert lines(r.stdout) == [
        "llama3\t-\t-\t-\t-",
        "qwen2:7b\t-\t-\t-\t-",
        "vllm/m\t8192\t-\t-\t-",
    ]
    assert llmost("models", "--vision", "--tools").stdout == ""
    r = llmost("models", "show", "qwen2:7b")
    assert r.rc == 0
    assert lines(r.stdout) == [
        "id        qwen2:7b",
        "created   2024-05-29 (1717000000)",
        "object    model",
        "owned_by  library",
    ]
    r = llmost("models", "show", "vllm/m")
    assert "parent         -" in lines(r.stdout)


def test_no_key_for_a_local_server(server: fs.FakeServer) -> None:
    bare = Runner({"LLMOST_BASE_URL": server.base_url})
    assert bare("models").rc == 0
    assert "authorization" not in model_requests(server)[0].headers


# --- errors -----------------------------------------------------------------------------------


def test_auth_error_exits_4(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.error(401, "No auth credentials found"), path=fs.MODELS_PATH)
    r = llmost("models")
    assert (r.rc, r.stdout) == (4, "")
    assert r.stderr.startswith("llmost: error: HTTP 401: No auth credentials found")
    assert not cache_file(server).exists()


def test_a_body_that_is_not_a_model_list_exits_7(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.json_response({"models": []}), path=fs.MODELS_PATH)
    r = llmost("models")
    assert r.rc == 7 and "not a model list" in r.stderr


# --- the cache --------------------------------------------------------------------------------


def test_cache_saves_a_request_and_refresh_bypasses_it(
    llmost: Runner, server: fs.FakeServer
) -> None:
    assert llmost("models").rc == 0
    path = cache_file(server)
    doc, entries = read_cache(path)
    assert doc["base_url"] == server.base_url and entries == fs.DEFAULT_MODELS
    assert time.time() - 60 < doc["fetched_at"] <= time.time()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    server.models = [{"id": "changed"}]
    assert lines(llmost("models").stdout) == ALL_ROWS  # from the cache
    assert llmost("models", "show", "openai/gpt-4o").rc == 0
    assert len(model_requests(server)) == 1

    assert llmost("models", "--refresh").stdout == "changed\t-\t-\t-\t-\n"
    assert len(model_requests(server)) == 2
    assert llmost("models").stdout == "changed\t-\t-\t-\t-\n"
    assert len(model_requests(server)) == 2


def test_stale_cache_is_fetched_again(llmost: Runner, server: fs.FakeServer) -> None:
    llmost("models")
    path = cache_file(server)
    age_cache(path, 3601)
    assert llmost("models").rc == 0
    assert len(model_requests(server)) == 2


def test_corrupt_cache_is_ignored_and_rewritten(llmost: Runner, server: fs.FakeServer) -> None:
    path = cache_file(server)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"fetched_at": 1e12, "models": [trunc')
    r = llmost("models")
    assert (r.rc, lines(r.stdout), r.stderr) == (0, ALL_ROWS, "")
    assert read_cache(path)[1] == fs.DEFAULT_MODELS
    assert len(model_requests(server)) == 1


def test_each_base_url_has_its_own_cache(llmost: Runner, server: fs.FakeServer) -> None:
    llmost("models")
    other = server.url + "/other/v1"  # 404 there: proves the first cache was not reused
    r = llmost("models", env={"LLMOST_BASE_URL": other})
    assert r.rc == 7 and "404" in r.stderr


# --- help and the terminal --------------------------------------------------------------------


def test_help(llmost: Runner, server: fs.FakeServer) -> None:
    for args in (["models", "--help"], ["models", "-h"]):
        r = llmost(*args)
        assert r.rc == 0
        assert "llmost models show openai/gpt-4o" in r.stdout
        assert "llmost models --vision --tools" in r.stdout
    r = llmost("models", "show", "--help")
    assert r.rc == 0 and "llmost models show anthropic/claude-3.5-sonnet" in r.stdout
    r = llmost("models", "list", "--help")
    assert r.rc == 0 and "no header line" in " ".join(r.stdout.split())
    assert model_requests(server) == []  # help never reaches the network


def spawn(args: list[str], width: int, env: dict[str, str]) -> str:
    import pexpect

    child = pexpect.spawn(
        llmost_executable(),
        args,
        # the terminal's size is the pty's: a COLUMNS left by another test would override it
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | env,
        dimensions=(50, width),
        timeout=20,
        encoding="utf-8",
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before or "")


def on_terminal(args: list[str], width: int, env: dict[str, str]) -> str:
    """In-process with stdout a terminal of ``width`` columns (COLUMNS; the pty's own size is
    read in test_terminal_table)."""
    r = run_in_process(args, b"", dict(os.environ) | env | {"COLUMNS": str(width)}, stdout_tty=True)
    assert r.rc == 0, r
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", r.stdout)


@pytest.mark.pty
def test_terminal_table(server: fs.FakeServer) -> None:
    env = {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    wide = spawn(["models"], 120, env)
    header = next(line for line in wide.splitlines() if "CONTEXT" in line)
    assert header.split() == ["ID", "CONTEXT", "PROMPT", "COMPLETION", "INPUT"]
    row = next(line for line in wide.splitlines() if "gemini" in line)
    cells = " ".join(row.split())
    assert cells == "google/gemini-2.5-pro 1,048,576 1.25 10 text, image, file, audio"
    assert "free" in wide and "6 models; prices per million tokens" in wide
    narrow = spawn(["models"], 76, env)
    assert "INPUT" not in narrow  # dropped first, so that ids stay whole
    assert "meta-llama/llama-3.1-8b-instruct:free" in narrow


def test_terminal_detail_and_bare_models(server: fs.FakeServer) -> None:
    env = {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    shown = on_terminal(["models", "show", "openai/gpt-4o"], 60, env)
    assert "2.5 per 1M" in shown and "flagship multimodal" in shown
    server.models = [{"id": "llama3"}]
    bare = on_terminal(["models", "--refresh"], 100, env)
    assert bare.splitlines()[2].split() == ["llama3", "-", "-", "-", "-"]  # header, rule, row


def test_ask_usage_and_json_show_cost(llmost: Runner, server: fs.FakeServer) -> None:
    llmost("models")  # fills the price cache; ask itself never fetches the list
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    gpt = next(m for m in fs.DEFAULT_MODELS if m["id"] == "openai/gpt-4o")
    expected = 1000 * float(gpt["pricing"]["prompt"]) + 100 * float(gpt["pricing"]["completion"])
    server.add(fs.stream_text("hi", model="openai/gpt-4o", usage=usage))
    r = llmost("ask", "-u", "hi")
    assert r.rc == 0
    assert "tokens: 1000 prompt + 100 completion = 1100 total, cost $" in r.stderr
    server.add(fs.stream_text("hi", model="openai/gpt-4o", usage=usage))
    assert abs(llmost("ask", "-o", "json", "hi").json["cost"] - expected) < 1e-12
    server.add(fs.stream_text("hi", model="openai/gpt-4o", usage={**usage, "cost": 0.25}))
    assert llmost("ask", "-o", "json", "hi").json["cost"] == 0.25  # the server's figure wins
    server.add(fs.stream_text("hi", model="openrouter/auto", usage=usage))
    out = llmost("ask", "-o", "json", "hi")
    assert out.json["cost"] is None  # "-1": price varies
    models_requests = [r for r in server.requests if r.path.endswith("/models")]
    assert len(models_requests) == 1


# --- hostile or odd model lists ---------------------------------------------------------------

EVIL = [
    {"id": "evil[/bold]model", "name": "[link=https://x]n[/link]"},
    {"id": "acme/\x1b]0;pwned\x07title", "description": "\x1b]52;c;cm0=\x07 \u202eboom"},
    {"id": "acme/[/]"},
]


def test_terminal_table_of_hostile_ids(server: fs.FakeServer) -> None:
    server.models = EVIL
    env = {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}
    shown = on_terminal(["models"], 100, env)
    assert "evil[/bold]model" in shown and "acme/[/]" in shown
    assert "acme/␛]0;pwned␇title" in shown
    assert "\x1b]" not in shown and "\x07" not in shown
    detail = on_terminal(["models", "show", "acme/\x1b]0;pwned\x07title"], 80, env)
    assert "␛]52;c;cm0=␇ \\u202eboom" in detail and "\x1b]" not in detail


def test_piped_table_of_hostile_ids_is_as_received(llmost: Runner, server: fs.FakeServer) -> None:
    server.models = EVIL
    r = llmost("models")
    assert r.rc == 0
    assert r.stdout_bytes.split(b"\t")[0] == b"acme/\x1b]0;pwned\x07title"


@pytest.mark.parametrize(
    ("created", "shown"),
    [(1e20, "1e+20"), (-5, "-5"), ("last tuesday", "last tuesday"), (10**30, str(10**30))],
)
def test_show_an_odd_created_value_raw(
    llmost: Runner, server: fs.FakeServer, created: object, shown: str
) -> None:
    server.models = [{"id": "odd/model", "created": created}]
    r = llmost("models", "show", "odd/model")
    assert (r.rc, r.stderr) == (0, "")
    assert f"created  {shown}" in r.stdout


def test_show_nan_created_does_not_crash(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(
        fs.raw_response(
            200,
            b'{"data": [{"id": "odd/nan", "created": NaN}]}',
            content_type="application/json",
        ),
        path=fs.MODELS_PATH,
    )
    r = llmost("models", "show", "odd/nan")
    # NaN is not JSON: the client reads it as null, shown as unknown
    assert (r.rc, r.stdout, r.stderr) == (0, "id       odd/nan\ncreated  -\n", "")


def test_show_by_a_unique_part_of_an_id(llmost: Runner, server: fs.FakeServer) -> None:
    server.models.append({"id": "google/gemma-3-27b-it", "name": "Gemma 3 27B"})
    r = llmost("models", "show", "gemma")
    assert (r.rc, r.stderr) == (0, "")
    assert lines(r.stdout)[0].split() == ["id", "google/gemma-3-27b-it"]
    assert llmost("models", "show", "GPT-4O", "--json").json["id"] == "openai/gpt-4o"


def test_show_an_ambiguous_part_lists_the_candidates(llmost: Runner) -> None:
    r = llmost("models", "show", "mi")
    assert (r.rc, r.stdout) == (2, "")
    assert r.stderr.startswith("llmost: error: 'mi' matches 2 models")
    assert "google/gemini-2.5-pro, mistralai/mistral-small" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_models_help_lists_the_list_options(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("models", "--help")
    assert r.rc == 0
    for word in ("SEARCH", "--json", "--refresh", "--vision", "--tools", "show", "list"):
        assert word in r.stdout, word
    assert model_requests(server) == []
