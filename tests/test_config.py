"""Config file loading, precedence and the key (no subprocess)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from llmost_cli.core import settings as config
from llmost_cli.errors import ConfigError


def load(tmp_path: Path, text: str) -> config.ConfigFile:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return config.load_file(path)


def test_missing_file_is_empty(tmp_path: Path) -> None:
    cfg = config.load_file(tmp_path / "none.toml")
    assert (cfg.exists, cfg.data) == (False, {})
    s = config.resolve(cfg, None, {})
    assert (s.base_url, s.model, s.timeout, s.retries) == (config.DEFAULT_BASE_URL, None, 600, 3)


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({}, {}, "profile/m"),
        ({"LLMOST_MODEL": "env/m"}, {}, "env/m"),
        ({"LLMOST_MODEL": "env/m"}, {"model": "flag/m"}, "flag/m"),
        ({}, {"model": "flag/m"}, "flag/m"),
    ],
)
def test_precedence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    flags: dict[str, str],
    expected: str,
) -> None:
    cfg = load(tmp_path, '[profiles.default]\nmodel = "profile/m"\n')
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = config.resolve(cfg, None, flags)
    assert s.model == expected
    assert s.sources["model"] in ("profile default", "env LLMOST_MODEL", "command line")


def test_profile_selection_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(
        tmp_path,
        'profile = "b"\n[profiles.a]\nmodel = "a"\n[profiles.b]\nmodel = "b"\n'
        '[profiles.c]\nmodel = "c"\n',
    )
    assert config.resolve(cfg, None, {}).model == "b"
    monkeypatch.setenv("LLMOST_PROFILE", "c")
    assert config.resolve(cfg, None, {}).model == "c"
    assert config.resolve(cfg, "a", {}).model == "a"
    with pytest.raises(ConfigError, match="profile 'zz' is not defined"):
        config.resolve(cfg, "zz", {})


def test_env_key_beats_profile_key_cmd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(tmp_path, '[profiles.default]\napi_key_cmd = "exit 1"\n')
    monkeypatch.setenv("LLMOST_API_KEY", "from-env-123456")
    assert config.resolve(cfg, None, {}).api_key() == "from-env-123456"


def test_key_not_required_for_other_servers(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[profiles.default]\nbase_url = "http://127.0.0.1:8080/v1"\n')
    assert config.resolve(cfg, None, {}).api_key() is None
    with pytest.raises(ConfigError, match="no API key"):
        config.resolve(config.load_file(tmp_path / "x.toml"), None, {}).api_key()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("127.0.0.1", True), ("127.9.9.9", True), ("[::1]", True),
     ("app.localhost", True), ("10.0.0.1", False), ("example.com", False), ("", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert config.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("secret", "shown"),
    [("llmost_abcdefghijklmnop9f2", "llmo…p9f2"), ("short", "****"), ("12345678", "…78")],
)
def test_mask(secret: str, shown: str) -> None:
    assert config.mask(secret) == shown


def test_save_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "config.toml"
    cfg = config.load_file(path)
    config.set_value(cfg, "default", "model", "a/b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.load_file(path).profile("default") == {"model": "a/b"}
    assert config.unset_value(cfg, "default", "model") is True
    assert config.unset_value(cfg, "default", "model") is False


def test_tools_table_must_hold_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[tools.NAME\]"):
        load(tmp_path, "[tools]\nx = 1\n")
