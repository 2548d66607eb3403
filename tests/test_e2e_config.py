"""End-to-end: ``llmost config`` and how the config reaches requests."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner, write_config


def config_path(home: Path) -> Path:
    return home / ".config" / "llmost" / "config.toml"


def test_path_honours_xdg_and_override(llmost_bare: Runner, isolated_env: Path) -> None:
    assert llmost_bare("config", "path").stdout == f"{config_path(isolated_env)}\n"
    r = llmost_bare("config", "path", env={"LLMOST_CONFIG": "/tmp/elsewhere.toml"})
    assert r.stdout == "/tmp/elsewhere.toml\n"


def test_set_get_list_unset(llmost_bare: Runner, isolated_env: Path) -> None:
    assert llmost_bare("config", "set", "model", "openai/gpt-4o").rc == 0
    assert llmost_bare("config", "set", "temperature", "0.3").rc == 0
    assert llmost_bare("config", "set", "stop", '["END", "STOP"]').rc == 0
    assert llmost_bare("config", "set", "markdown", "false").rc == 0
    assert llmost_bare("config", "get", "model").stdout == "openai/gpt-4o\n"
    assert llmost_bare("config", "get", "temperature").stdout == "0.3\n"
    data = tomllib.loads(config_path(isolated_env).read_text())
    assert data["profiles"]["default"] == {
        "model": "openai/gpt-4o",
        "temperature": 0.3,
        "stop": ["END", "STOP"],
        "markdown": False,
    }
    listed = llmost_bare("config", "list").stdout.splitlines()
    assert "model = openai/gpt-4o  # profile default" in listed
    assert 'stop = ["END", "STOP"]  # profile default' in listed
    assert llmost_bare("config", "unset", "temperature").rc == 0
    assert llmost_bare("config", "get", "temperature").stdout == ""
    assert llmost_bare("config", "get", "base_url").stdout == "https://llmost.ru/api/v1\n"


def test_file_and_dir_modes(llmost_bare: Runner, isolated_env: Path) -> None:
    llmost_bare("config", "set", "model", "a/b")
    path = config_path(isolated_env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # no temp file left; the lock file of read-modify-write stays, private too
    assert sorted(p.name for p in path.parent.iterdir()) == [".config.toml.lock", "config.toml"]
    assert stat.S_IMODE((path.parent / ".config.toml.lock").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "rc", "message"),
    [
        (["set", "temprature", "1"], 2, "unknown key 'temprature'"),
        (["set", "temperature", "3"], 2, "temperature must be in [0, 2], got 3"),
        (["set", "temperature", "warm"], 2, "temperature must be a number"),
        (["set", "max_tokens", "1.5"], 2, "max_tokens must be a whole number"),
        (["set", "markdown", "perhaps"], 2, "markdown must be true or false"),
        (["set", "model"], 2, "config set model needs a VALUE"),
        (["get", "nope"], 2, "unknown key 'nope'"),
        (["unset", "nope"], 2, "unknown key 'nope'"),
    ],
)
def test_validation_names_the_key(
    llmost_bare: Runner, isolated_env: Path, args: list[str], rc: int, message: str
) -> None:
    r = llmost_bare("config", *args)
    assert r.rc == rc
    assert message in r.stderr
    assert r.stderr.count("\n") == 1
    assert not config_path(isolated_env).exists()


def test_api_key_from_stdin_is_masked_everywhere(llmost_bare: Runner, isolated_env: Path) -> None:
    r = llmost_bare("config", "set", "api_key", input=TEST_KEY + "\n")
    assert r.rc == 0
    assert TEST_KEY not in r.stdout + r.stderr
    data = tomllib.loads(config_path(isolated_env).read_text())
    assert data["profiles"]["default"]["api_key"] == TEST_KEY
    masked = f"{TEST_KEY[:4]}…{TEST_KEY[-4:]}"
    assert llmost_bare("config", "get", "api_key").stdout == masked + "\n"
    listed = llmost_bare("config", "list").stdout
    assert masked in listed and TEST_KEY not in listed
    r = llmost_bare("config", "set", "api_key", input="")
    assert r.rc == 2 and "no API key given" in r.stderr


def test_api_key_hidden_prompt_in_terminal(isolated_env: Path) -> None:
    import pexpect

    from tests.conftest import llmost_executable

    child = pexpect.spawn(
        llmost_executable(), ["config", "set", "api_key"], env=dict(os.environ), timeout=10
    )
    child.expect("API key \\(input hidden\\): ")
    child.sendline(TEST_KEY)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert TEST_KEY.encode() not in (child.before or b"")
    assert TEST_KEY in config_path(isolated_env).read_text()


def test_profiles(llmost: Runner, server: fs.FakeServer, isolated_env: Path) -> None:
    r = llmost("--profile", "work", "config", "set", "model", "work/model")
    assert r.rc == 0
    llmost("config", "set", "model", "default/model")
    llmost("ask", "hi")
    assert server.chat_requests()[-1].json["model"] == "default/model"
    llmost("--profile", "work", "ask", "hi")
    assert server.chat_requests()[-1].json["model"] == "work/model"
    llmost("ask", "hi", env={"LLMOST_PROFILE": "work"})
    assert server.chat_requests()[-1].json["model"] == "work/model"
    r = llmost("--profile", "nope", "ask", "hi")
    assert r.rc == 3 and "profile 'nope' is not defined" in r.stderr
    path = config_path(isolated_env)
    path.write_text('profile = "work"\n' + path.read_text())
    llmost("ask", "hi")
    assert server.chat_requests()[-1].json["model"] == "work/model"


def test_precedence_flag_env_profile_default(
    llmost_bare: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    write_config(
        isolated_env,
        f'[profiles.default]\nbase_url = "http://127.0.0.1:9/nowhere"\napi_key = "{TEST_KEY}"\n'
        'model = "p/m"\ntemperature = 0.2\n',
    )
    env = {"LLMOST_BASE_URL": server.base_url}
    r = llmost_bare("ask", "hi", env=env)
    assert r.rc == 0, r
    body = server.chat_requests()[-1].json
    assert (body["model"], body["temperature"]) == ("p/m", 0.2)
    llmost_bare("ask", "-t", "1.5", "hi", env=env | {"LLMOST_MODEL": "e/m"})
    body = server.chat_requests()[-1].json
    assert (body["model"], body["temperature"]) == ("e/m", 1.5)
    r = llmost_bare("ask", "hi", env=env | {"LLMOST_API_KEY": "other-key-123456"})
    assert server.chat_requests()[-1].headers["authorization"] == "Bearer other-key-123456"


def test_api_key_cmd(llmost_bare: Runner, server: fs.FakeServer, isolated_env: Path) -> None:
    write_config(
        isolated_env,
        f'[profiles.default]\nbase_url = "{server.base_url}"\napi_key_cmd = "echo {TEST_KEY}"\n',
    )
    r = llmost_bare("ask", "hi")
    assert r.rc == 0, r
    assert server.chat_requests()[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
    write_config(
        isolated_env,
        f'[profiles.default]\nbase_url = "{server.base_url}"\n'
        'api_key_cmd = "echo vault locked >&2; exit 3"\n',
    )
    r = llmost_bare("ask", "hi")
    assert r.rc == 3
    assert "api_key_cmd failed with exit code 3: vault locked" in r.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profiles.default\n", "invalid config file"),
        ('[profiles.default]\ntemperature = "hot"\n', "profiles.default.temperature must be"),
        ("[profiles.default]\ntemperature = 7\n", "must be in [0, 2]"),
        ('[profiles.default]\nmodle = "x"\n', "unknown key 'modle'"),
        ('model = "x"\n', "unknown top-level key 'model'"),
        ("profiles = 3\n", "'profiles' must be a table"),
        (b"\xff\xfe".decode("latin-1"), "invalid config file"),
    ],
)
def test_invalid_file_named_and_never_overwritten(
    llmost_bare: Runner, isolated_env: Path, text: str, message: str
) -> None:
    path = write_config(isolated_env, text)
    before = path.read_bytes()
    for args in (["ask", "hi"], ["config", "list"], ["config", "set", "model", "a/b"]):
        r = llmost_bare(*args)
        assert r.rc == 3, (args, r)
        assert str(path) in r.stderr and message in r.stderr
        assert r.stderr.count("\n") == 1
    assert path.read_bytes() == before


def test_config_file_is_a_directory(llmost_bare: Runner, isolated_env: Path) -> None:
    config_path(isolated_env).mkdir(parents=True)
    r = llmost_bare("ask", "hi")
    assert r.rc == 3 and "is a directory" in r.stderr


def test_insecure_base_url_refused_but_loopback_allowed(
    llmost: Runner, server: fs.FakeServer
) -> None:
    for host in ("localhost", "127.0.0.2", "[::1]"):
        r = llmost("ask", "--retries", "0", "hi", env={"LLMOST_BASE_URL": f"http://{host}:9/v1"})
        assert r.rc == 8, (host, r)  # allowed, then nothing listens there
    r = llmost("ask", "hi", env={"LLMOST_BASE_URL": "http://10.1.2.3/v1"})
    assert r.rc == 3 and "refusing to send the API key over plain http" in r.stderr
    r = llmost("ask", "hi", env={"LLMOST_BASE_URL": "ftp://example.com"})
    assert r.rc == 3 and "not an http(s) URL" in r.stderr


def test_edit_creates_template_then_validates(llmost_bare: Runner, isolated_env: Path) -> None:
    r = llmost_bare("config", "edit", env={"EDITOR": "true"})
    assert r.rc == 0
    path = config_path(isolated_env)
    assert "[profiles.default]" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    script = isolated_env / "bad-editor.sh"
    script.write_text('#!/bin/sh\necho "temperature = 9" >> "$1"\n')
    script.chmod(0o755)
    r = llmost_bare("config", "edit", env={"EDITOR": str(script)})
    assert r.rc == 3 and "must be in [0, 2]" in r.stderr
    assert "temperature = 9" in path.read_text()  # the user's edit is kept for fixing


def test_edit_again_in_a_terminal(isolated_env: Path) -> None:
    """`config edit` in a real pty: an invalid result offers another round, until it is valid."""
    import sys

    import pexpect

    from tests.conftest import llmost_executable

    script = isolated_env / "editor.py"
    counter = isolated_env / "rounds"
    script.write_text(
        "import pathlib, sys\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "n = int(counter.read_text()) if counter.exists() else 0\n"
        "counter.write_text(str(n + 1))\n"
        "text = 'temperature = 9' if n == 0 else 'temperature = 1'\n"
        "pathlib.Path(sys.argv[1]).write_text('[profiles.default]\\n' + text + '\\n')\n"
    )
    env = dict(os.environ) | {"EDITOR": f"{sys.executable} {script}"}
    child = pexpect.spawn(llmost_executable(), ["config", "edit"], env=env, timeout=20)
    child.expect("must be in \\[0, 2\\], got 9")
    child.expect("edit again\\? \\[Y/n\\] ")
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert counter.read_text() == "2"
    assert "temperature = 1" in config_path(isolated_env).read_text()
