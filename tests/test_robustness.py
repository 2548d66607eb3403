"""Big and odd input, concurrent writers, a secrets audit and servers that lie."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from llmost_cli import paths
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner, forked, run_in_process, write_config

# --- big and odd input ------------------------------------------------------------------


def test_ten_megabytes_of_stdin_are_sent_whole(llmost: Runner, server: fs.FakeServer) -> None:
    data = ("строка текста 0123456789\n" * 420_000).encode()  # ~13 MB
    r = llmost("ask", "--no-stream", "summarise", input=data, timeout=120)
    assert r.rc == 0, r.stderr
    sent = server.chat_requests()[-1].json["messages"][0]["content"]
    assert sent == "summarise\n\n" + data.decode()


def test_stdin_above_the_limit_is_refused(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("ask", "x", input=b"a" * (64 * 1024 * 1024 + 1), timeout=120)
    assert r.rc == 2
    assert "standard input is larger than 64 MiB, the limit" in r.stderr
    assert server.chat_requests() == []


def test_thirty_megabyte_image_refused_with_size_and_limit(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    image = tmp_path / "big.png"
    with image.open("wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.truncate(30 * 1024 * 1024)
    r = llmost("ask", "-i", str(image), "what is it?")
    assert r.rc == 2
    assert f"image {image} is 30 MiB; the limit is 20 MiB" in r.stderr
    assert server.chat_requests() == []


@pytest.mark.parametrize(
    "text",
    [
        "[profiles.default]\nretries = true\n",
        "[profiles.default]\nstop = [1, 2]\n",
        "[profiles.default]\nmarkdown = 1\n",
        'profile = ["x"]\n',
        "[profiles]\ndefault = 3\n",
    ],
)
def test_config_with_wrong_types(llmost: Runner, isolated_env: Path, text: str) -> None:
    path = write_config(isolated_env, text)
    r = llmost("ask", "hi")
    assert r.rc == 3 and str(path) in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config(llmost: Runner, isolated_env: Path) -> None:
    path = write_config(isolated_env, "")
    path.chmod(0)
    r = llmost("ask", "hi")
    assert r.rc == 3 and "cannot read config file" in r.stderr


def test_unusable_data_directory_still_prints_the_answer(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    server.add(fs.stream_text("still here"))
    r = llmost("ask", "hi", env={"XDG_DATA_HOME": str(blocker)})
    assert (r.rc, r.stdout) == (0, "still here\n")
    assert "warning" in r.stderr and "will not be saved" in r.stderr
    r = llmost("ask", "--session", "s", "hi", env={"XDG_DATA_HOME": str(blocker)})
    assert r.rc == 3  # a named conversation cannot work without the store: say so


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_data_directory(llmost: Runner, server: fs.FakeServer) -> None:
    data = paths.data_dir()
    data.mkdir(parents=True)
    data.chmod(0o500)
    r = llmost("ask", "hi")
    assert r.rc == 0 and r.stdout == "Hello!\n" and "not be saved" in r.stderr


# --- load -------------------------------------------------------------------------------


WRITERS = 8  # processes at once: enough to contend for the lock on 2 cores


def test_concurrent_writers_to_one_session(server: fs.FakeServer) -> None:
    server.set_default(fs.adaptive("answer"))
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url, "LLMOST_API_KEY": TEST_KEY}

    def one(i: int) -> Callable[[], str]:
        return lambda: repr(run_in_process(["ask", "--session", "S", f"question {i}"], None, env))

    results = forked([one(i) for i in range(WRITERS)])  # WRITERS processes
    assert all(r.startswith("Result(rc=0, ") for r in results), results
    with Store(paths.database_file()) as store:
        conv = store.get("S")
        assert conv is not None
        messages = store.messages(conv.id)
    assert len(messages) == 2 * WRITERS
    questions = [m.content for m in messages[0::2]]
    assert all(m.role == "user" for m in messages[0::2])
    assert all(m.role == "assistant" and m.content == "answer" for m in messages[1::2])
    assert sorted(questions) == sorted(f"question {i}" for i in range(WRITERS))  # each exactly once


# --- secrets ----------------------------------------------------------------------------


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_secrets_audit(
    llmost_bare: Runner, server: fs.FakeServer, isolated_env: Path, tmp_path: Path
) -> None:
    key = "llmost_AUDIT_c0ffee_" + "7" * 24
    env = {"LLMOST_BASE_URL": server.base_url}
    assert llmost_bare("config", "set", "api_key", input=key).rc == 0
    script = [
        ["ask", "hi"],
        ["ask", "-o", "json", "hi"],
        ["--debug", "ask", "-u", "hi"],
        ["ask", "--dry-run", "hi"],
        ["--debug", "ask", "--dry-run", "hi"],
        ["ask", "-c", "again"],
        ["ask", "--session", "named", "hi"],
        ["config", "list"],
        ["config", "get", "api_key"],
        ["config", "path"],
        ["models"],
        ["--debug", "models", "--refresh"],
        ["ask", "-t", "9", "hi"],
    ]
    replies = [
        fs.error(401, "bad key"),
        fs.error(500, "boom"),
        fs.midstream_error("x", message="provider said no"),
        fs.raw_response(502, b"<html><title>Bad gateway</title></html>"),
        fs.stream(fs.chunk({"choices": [{"index": 0, "delta": {"content": "a"}}]}), fs.drop()),
    ]
    outputs: list[str] = []
    for args in script:
        r = llmost_bare(*args, env=env)
        outputs += [r.stdout, r.stderr]
    for reply in replies:
        server.add(reply)
        r = llmost_bare("--debug", "ask", "--retries", "0", "hi", env=env)
        assert r.rc != 0
        outputs += [r.stdout, r.stderr]
    chat_lines = "hello\n/history\n/usage\n/model\n/set temperature 9\nagain\n"
    server.add(fs.stream_text("first"), fs.error(401, "bad key"))
    for args in (["chat", "--session", "audit"], ["--debug", "chat", "-c", "--retries", "0"]):
        r = llmost_bare(*args, input=chat_lines, env=env)
        outputs += [r.stdout, r.stderr]
    for args in (["ask", "hi"], ["--debug", "ask", "hi"]):  # insecure URL refused
        r = llmost_bare(*args, env={"LLMOST_BASE_URL": "http://example.com/v1"})
        assert r.rc == 3
        outputs += [r.stdout, r.stderr]
    assert not [o for o in outputs if key in o], "the key leaked into output"
    assert any("llmo…7777" in o for o in outputs)  # masked form is what users see
    config_dir = isolated_env / ".config" / "llmost"
    for root in (paths.data_dir(), paths.cache_dir()):
        for path in all_files(root):
            assert key.encode() not in path.read_bytes(), path
    for root in (config_dir, paths.data_dir(), paths.cache_dir()):
        if root.exists():
            assert stat.S_IMODE(root.stat().st_mode) == 0o700, root
            for path in all_files(root):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert all(r.json["messages"] for r in server.chat_requests())
    assert all(
        r.headers.get("authorization") == f"Bearer {key}" for r in server.requests
    )  # it was really used


# --- servers that lie -------------------------------------------------------------------


def test_stream_request_answered_with_plain_text(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.raw_response(200, b"hello, I am not SSE", content_type="text/plain"))
    r = llmost("ask", "hi")
    assert r.rc == 7
    assert "not valid JSON (Expecting value; Content-Type text/plain)" in r.stderr


def test_json_body_without_choices(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.json_response({"id": "gen-1", "object": "chat.completion"}))
    r = llmost("ask", "--no-stream", "hi")
    assert r.rc == 7 and "no 'choices'" in r.stderr


def test_sse_content_type_with_other_charset(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(
        fs.stream(
            fs.chunk({"choices": [{"index": 0, "delta": {"content": "Ёж"}}]}),
            fs.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            content_type="text/event-stream; charset=iso-8859-1",
        )
    )
    assert llmost("ask", "hi").stdout == "Ёж\n"


def test_redirect_to_another_host_does_not_carry_the_key(
    llmost: Runner, server: fs.FakeServer
) -> None:
    server.add(fs.redirect(f"{server.url}/elsewhere/chat/completions", status=302))
    r = llmost("ask", "hi")
    assert r.rc == 7 and "not followed" in r.stderr
    assert [req.path for req in server.requests] == ["/api/v1/chat/completions"]
