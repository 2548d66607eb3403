"""The API key is checked when loaded and never echoed; a busy or damaged store costs the
saving, never the answer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from llmost_cli import paths
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import Runner, llmost_executable, write_config

BAD_KEYS = {
    "newline": "sk-or-v1-secretvalue123\n",
    "carriage-return": "sk-or-v1-secretvalue123\r",
    "escape": "sk-or-v1-secret\x1b[2Jvalue123",
    "non-ascii": "sk-or-v1-secrét-value123",
    "space": "sk-or-v1 secretvalue123",
}


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
@pytest.mark.parametrize("source", ["env", "config"])
def test_a_malformed_key_is_a_config_error_that_never_shows_the_key(
    llmost_bare: Runner, server: fs.FakeServer, isolated_env: Path, key: str, source: str
) -> None:
    env = {"LLMOST_BASE_URL": server.base_url}
    if source == "env":
        env["LLMOST_API_KEY"] = key
    else:
        escaped = key.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        escaped = escaped.replace("\x1b", "\\u001b")
        write_config(isolated_env, f'[profiles.default]\napi_key = "{escaped}"\n')
    for args in (["ask", "q"], ["--debug", "ask", "q"], ["ask", "-o", "json", "q"]):
        r = llmost_bare(*args, env=env)
        assert r.rc == 3, r
        assert "API key" in r.stderr and "printable ASCII" in r.stderr
        for shown in (r.stdout, r.stderr):
            assert "secret" not in shown and "value123" not in shown
    assert server.chat_requests() == []  # nothing was sent


def test_localhost_subdomains_are_not_trusted_with_the_key(llmost_bare: Runner) -> None:
    env = {"LLMOST_BASE_URL": "http://evil.localhost:9/v1", "LLMOST_API_KEY": "k-1234567890"}
    r = llmost_bare("ask", "q", env=env)
    assert r.rc == 3 and "refusing to send the API key over plain http" in r.stderr


def test_ctrl_c_while_api_key_cmd_runs(server: fs.FakeServer, isolated_env: Path) -> None:
    started = isolated_env / "started"
    write_config(isolated_env, f'[profiles.default]\napi_key_cmd = "touch {started}; sleep 30"\n')
    env = dict(os.environ) | {"LLMOST_BASE_URL": server.base_url}
    proc = subprocess.Popen(
        [llmost_executable(), "ask", "q"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 30
    while not started.exists():  # api_key_cmd is running: now press Ctrl-C
        assert time.monotonic() < deadline and proc.poll() is None, "api_key_cmd never ran"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and b"interrupted" in err and b"Traceback" not in err


def test_a_plain_ask_answers_while_another_process_holds_the_store(
    llmost: Runner, server: fs.FakeServer
) -> None:
    Store(paths.database_file()).close()  # the store exists
    holder = sqlite3.connect(paths.database_file(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another llmost writing, for longer than we wait
    try:
        start = time.monotonic()
        r = llmost("ask", "question")
        took = time.monotonic() - start
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (r.rc, r.stdout) == (0, "Hello!\n"), r
    assert "locked by another process" in r.stderr and "not saved" in r.stderr
    assert took < 5  # a bounded wait, not the 10 s of a conversation that must be stored


def test_a_damaged_conversation_is_reported_and_the_others_stay_usable(
    llmost: Runner, server: fs.FakeServer
) -> None:
    assert llmost("ask", "--session", "good", "q1").rc == 0
    assert llmost("ask", "--session", "bad", "q2").rc == 0
    db = sqlite3.connect(paths.database_file())
    with db:
        db.execute(
            "UPDATE messages SET content = '{not json' WHERE conversation_id = "
            "(SELECT id FROM conversations WHERE name = 'bad') AND seq = 1"
        )
    db.close()
    r = llmost("ask", "-c", "more")
    assert r.rc == 3 and "damaged" in r.stderr and "Traceback" not in r.stderr
    assert llmost("ask", "--session", "good", "q3").rc == 0
    with Store(paths.database_file()) as store:
        conv = store.get("good")
        assert conv is not None
        assert [m.content for m in store.messages(conv.id) if m.role == "user"] == ["q1", "q3"]
