"""Config file loading, precedence and the key (no subprocess)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from llmost_cli.core import configfile, settings
from llmost_cli.errors import ConfigError


def load(tmp_path: Path, text: str) -> configfile.ConfigFile:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return configfile.load_file(path)


def test_missing_file_is_empty(tmp_path: Path) -> None:
    cfg = configfile.load_file(tmp_path / "none.toml")
    assert (cfg.exists, cfg.data) == (False, {})
    s = settings.resolve(cfg, None, {}, {})
    assert (s.base_url, s.model, s.timeout, s.retries) == (settings.DEFAULT_BASE_URL, None, 600, 3)
    assert s.sources["base_url"] == "default"


@pytest.mark.parametrize(
    ("env", "flags", "expected", "source"),
    [
        ({}, {}, "profile/m", "profile default"),
        ({"LLMOST_MODEL": "env/m"}, {}, "env/m", "env LLMOST_MODEL"),
        ({"LLMOST_MODEL": "env/m"}, {"model": "flag/m"}, "flag/m", "command line"),
        ({}, {"model": "flag/m"}, "flag/m", "command line"),
    ],
)
def test_precedence(
    tmp_path: Path, env: dict[str, str], flags: dict[str, str], expected: str, source: str
) -> None:
    cfg = load(tmp_path, '[profiles.default]\nmodel = "profile/m"\n')
    s = settings.resolve(cfg, None, flags, env)
    assert (s.model, s.sources["model"]) == (expected, source)


def test_profile_selection_order(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        'profile = "b"\n[profiles.a]\nmodel = "a"\n[profiles.b]\nmodel = "b"\n'
        '[profiles.c]\nmodel = "c"\n',
    )
    assert settings.resolve(cfg, None, {}, {}).model == "b"
    env = {"LLMOST_PROFILE": "c"}
    assert settings.resolve(cfg, None, {}, env).model == "c"
    assert settings.resolve(cfg, "a", {}, env).model == "a"
    with pytest.raises(ConfigError, match=r"profile 'zz' is not defined .* \(profiles: a, b, c\)"):
        settings.resolve(cfg, "zz", {}, {})


def test_profile_choice_says_what_chose_it(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'profile = "b"\n[profiles.a]\n[profiles.b]\n')
    choice = configfile.profile_choice
    assert choice(cfg, "a", {"LLMOST_PROFILE": "b"}, "default") == ("a", "--profile")
    assert choice(cfg, None, {"LLMOST_PROFILE": "a"}, "default") == ("a", "LLMOST_PROFILE")
    assert choice(cfg, None, {}, "default") == ("b", "the config file")
    empty = configfile.load_file(tmp_path / "none.toml")
    assert choice(empty, None, {}, "default") == ("default", "default")


def test_env_key_beats_profile_key_cmd(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[profiles.default]\napi_key_cmd = "exit 1"\n')
    s = settings.resolve(cfg, None, {}, {"LLMOST_API_KEY": "from-env-123456"})
    assert settings.resolve_key(s) == "from-env-123456"


def test_key_not_required_for_other_servers(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[profiles.default]\nbase_url = "http://127.0.0.1:8080/v1"\n')
    assert settings.resolve_key(settings.resolve(cfg, None, {}, {})) is None
    empty = configfile.load_file(tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="no API key"):
        settings.resolve_key(settings.resolve(empty, None, {}, {}))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("127.0.0.1", True), ("127.9.9.9", True), ("[::1]", True),
     ("app.localhost", False), ("10.0.0.1", False), ("example.com", False), ("", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert settings.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("secret", "shown"),
    [("llmost_abcdefghijklmnop9f2", "llmo…p9f2"), ("short", "****"), ("12345678", "…78")],
)
def test_mask(secret: str, shown: str) -> None:
    assert configfile.mask(secret) == shown


def test_save_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "config.toml"
    with configfile.transaction(path) as cfg:
        configfile.set_value(cfg, "default", "model", "a/b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert configfile.load_file(path).profile("default") == {"model": "a/b"}
    with configfile.transaction(path) as cfg:
        assert configfile.unset_value(cfg, "default", "model") is True
    with configfile.transaction(path) as cfg:
        assert configfile.unset_value(cfg, "default", "model") is False


def test_transaction_saves_nothing_when_the_change_fails(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.default]\nmodel = "a/b"\n')
    before = path.stat().st_mtime_ns, path.stat().st_ino
    with pytest.raises(RuntimeError), configfile.transaction(path) as cfg:
        configfile.set_value(cfg, "default", "model", "c/d")
        raise RuntimeError("boom")
    with configfile.transaction(path):
        pass  # unchanged data: not rewritten either
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_tools_table_must_hold_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[tools.NAME\]"):
        load(tmp_path, "[tools]\nx = 1\n")


@pytest.mark.parametrize(
    ("key", "kind"),
    [("sk-abc def", "a space"), ("sk-\x1b[31m", "a control character"),
     ("sk-ключ", "a non-ASCII character")],
)  # fmt: skip
def test_bad_key_in_the_file_is_a_config_error_naming_file_and_key(
    tmp_path: Path, key: str, kind: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[profiles.default]\napi_key = {json.dumps(key)}\n")  # TOML escapes
    with pytest.raises(ConfigError) as info:
        configfile.load_file(path)
    assert str(path) in str(info.value) and "profiles.default.api_key" in str(info.value)
    assert kind in str(info.value) and key not in str(info.value)
