"""The model list in bounded memory (issue 13) that still serves 100,000 models (issue 14).

Each ``llmost models`` here is a fresh subprocess whose own peak RSS is measured (os.wait4 in a
small parent, as in test_api_e2e.py). Parsed whole, the hostile bodies below cost several
hundred MB; read one entry at a time into compact records they cost about the interpreter.
"""

from __future__ import annotations

import json

import pytest

from llmost_cli.api import limits
from llmost_cli.core import catalog, models
from tests import fakeserver as fs
from tests.conftest import Runner
from tests.test_api_e2e import MiB, run_measured

BOUND = 120 * MiB  # the interpreter with httpx and rich is ~45 MiB of it


def serve(server: fs.FakeServer, body: bytes) -> None:
    server.set_default(fs.raw_response(200, body, content_type="application/json"),
                       path=fs.MODELS_PATH)  # fmt: skip


def test_unused_fields_full_of_empty_containers_cost_nothing(
    llmost: Runner, server: fs.FakeServer
) -> None:
    # 3 bytes of "[]," are 64 bytes of Python list: 8 MiB of them are ~200 MB of RSS.
    entry = b'{"id":"n/%05d","name":"N %05d","x":[' + b"[]," * 4000 + b'{"a":[{}]}]}'
    count = 8 * MiB // len(entry)
    serve(
        server,
        b'{"object":"list","data":[' + b",".join(entry % (i, i) for i in range(count)) + b"]}",
    )
    m = run_measured(llmost, "models")
    assert (m.rc, m.stderr) == (0, ""), m
    assert m.stdout.splitlines() == [f"n/{i:05d}\t-\t-\t-\t-" for i in range(count)]
    assert m.peak_rss < BOUND, m
    again = run_measured(llmost, "models", "--json", "n/00007")  # from the cache
    assert again.rc == 0 and again.peak_rss < BOUND, again
    [shown] = json.loads(again.stdout)
    assert shown["id"] == "n/00007" and len(shown["x"]) == 4001


def test_more_entries_than_kept_are_dropped_with_a_warning(
    llmost: Runner, server: fs.FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process with a lower cap: the same rule as 200,000 (the memory of a whole hostile list
    # is measured below), without building a quarter of a million entries.
    monkeypatch.setattr(catalog, "MAX_MODELS", 1000)
    tiny = b",".join(b'{"id":"t/%06d"}' % i for i in range(1000 + 50))
    serve(server, b'{"data":[' + tiny + b"]}")
    r = llmost("models")
    assert r.rc == 0, r
    lines = r.stdout.splitlines()
    assert len(lines) == 1000 and lines[-1].startswith("t/000999\t")
    assert "llmost: warning: 50 models of the list" in r.stderr
    assert "at most 1,000 models" in r.stderr


def test_a_hostile_list(llmost: Runner, server: fs.FakeServer) -> None:
    # Huge unused strings, wide and 50-deep unused fields, tiny entries, long ids and names.
    # What is kept is capped, not proportional to the body: 12 MiB here keeps the test short
    # (tests/benchmarks/models_memory.py runs the whole MODEL_LIST_LIMIT: 1.9 GB before).
    serve(server, fs.hostile_model_list(12 * MiB))
    m = run_measured(llmost, "models", "--json", "h/1", timeout=300)
    assert m.rc == 0 and m.peak_rss < BOUND, m
    assert [e["id"] for e in json.loads(m.stdout)] == ["h/1"]  # h/0 to h/8 at this size


def test_an_entry_over_its_limit_is_refused(llmost: Runner, server: fs.FakeServer) -> None:
    huge = b'{"id":"big","description":"' + b"d" * limits.MODEL_ENTRY_LIMIT + b'"}'
    serve(server, b'{"data":[{"id":"a"},' + huge + b"]}")
    r = llmost("models")
    assert r.rc == 7 and "one value is larger than 1 MiB" in r.stderr, r.stderr


def _models_body(count: int) -> bytes:
    entry = (
        b'{"id":"vendor%d/model-%06d","name":"Vendor %d: Model %d","created":1700000000,'
        b'"description":"A model.","context_length":%d,"architecture":{"modality":"text->text",'
        b'"input_modalities":["text"%s],"output_modalities":["text"]},"pricing":{"prompt":'
        b'"0.000001","completion":"0.000002","request":"0"},"supported_parameters":'
        b'["max_tokens"%s]}'
    )
    return b'{"data":[' + b",".join(
        entry % (i % 97, i, i % 97, i, 4096 * (1 + i % 64), b',"image"' if i % 3 == 0 else b"",
                 b',"tools"' if i % 2 else b"")
        for i in range(count)
    ) + b"]}"  # fmt: skip


@pytest.mark.no_cover  # a size test: the example tests measure these lines
@pytest.mark.parametrize("count", [100_000])
def test_a_list_of_100000_models_works(llmost: Runner, server: fs.FakeServer, count: int) -> None:
    serve(server, _models_body(count))
    m = run_measured(llmost, "models", timeout=120)
    assert (m.rc, m.stderr) == (0, ""), m
    lines = m.stdout.splitlines()
    assert len(lines) == count and m.peak_rss < BOUND, m
    assert lines[0] == "vendor0/model-000000\t4096\t1\t2\ttext,image"
    assert lines[-1] == "vendor96/model-099909\t24576\t1\t2\ttext,image"  # sorted by id

    # From the cache: search, filters, show (one entry read back) and the ids for completion.
    r = llmost("models", "model-09999", "--tools", "--vision")
    assert r.stdout.splitlines() == [
        "vendor83/model-099993\t106496\t1\t2\ttext,image",
        "vendor89/model-099999\t131072\t1\t2\ttext,image",
    ]
    r = llmost("models", "show", "model-054321", "--json")
    assert r.rc == 0 and r.json["id"] == "vendor1/model-054321"
    assert r.json["supported_parameters"] == ["max_tokens", "tools"]
    ids = models.cached_model_ids(server.base_url)
    assert len(ids) == count and ids[12345] == "vendor26/model-012345"
    assert len(server.requests) == 1
