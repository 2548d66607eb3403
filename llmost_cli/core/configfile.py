"""The config file: read, validate, and write atomically (DESIGN §3).

The file is only ever replaced atomically, and never when it could not be read.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmost_cli import paths
from llmost_cli.core import params
from llmost_cli.errors import ConfigError, UsageError

TOP_LEVEL_KEYS = ("profile", "profiles", "tools")
SECRET_KEYS = frozenset({"api_key"})


@dataclass
class ConfigFile:
    """The parsed file; ``data`` is the whole TOML document."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    exists: bool = False

    def profile_names(self) -> list[str]:
        return list(self.data.get("profiles", {}))

    def profile(self, name: str) -> dict[str, Any]:
        profiles: dict[str, Any] = self.data.get("profiles", {})
        return dict(profiles.get(name, {}))

    @property
    def tools(self) -> dict[str, Any]:
        return dict(self.data.get("tools", {}))


def load_file(path: Path | None = None) -> ConfigFile:
    """Read and validate the config file; a missing file is an empty config."""
    path = path or paths.config_file()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ConfigFile(path)
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is a directory", hint="set LLMOST_CONFIG to a file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"invalid config file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid config file {path}: {exc}", hint="fix it with: llmost config edit"
        ) from None
    validate(data, path)
    return ConfigFile(path, data, exists=True)


def validate(data: Mapping[str, Any], path: Path) -> None:
    """Reject unknown keys and bad values, naming the key and the file."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(
                f"invalid config file {path}: unknown top-level key {key!r} "
                f"(settings belong in a [profiles.NAME] table)"
            )
    if "profile" in data and not isinstance(data["profile"], str):
        raise ConfigError(f"invalid config file {path}: 'profile' must be a string")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"invalid config file {path}: 'profiles' must be a table")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(f"invalid config file {path}: [profiles.{name}] must be a table")
        for key, value in table.items():
            try:
                params.check(key, value, source=f"profiles.{name}.{key}")
            except UsageError as exc:
                raise ConfigError(f"invalid config file {path}: {exc.message}") from None
    tools = data.get("tools", {})
    if not isinstance(tools, dict) or not all(isinstance(t, dict) for t in tools.values()):
        raise ConfigError(f"invalid config file {path}: [tools.NAME] entries must be tables")


def save_file(config: ConfigFile) -> None:
    """Atomic write (temp file + rename), file 0600 in a 0700 directory."""
    import tomli_w

    text = tomli_w.dumps(config.data)
    directory = paths.ensure_private_dir(config.path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, config.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    config.exists = True


def mask(secret: str) -> str:
    if len(secret) < 12:
        return "…" + secret[-2:] if len(secret) > 6 else "****"
    return f"{secret[:4]}…{secret[-4:]}"


def display_value(key: str, value: Any) -> str:
    if key in SECRET_KEYS and isinstance(value, str):
        return mask(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


def set_value(config: ConfigFile, profile: str, key: str, value: Any) -> None:
    checked = params.check(key, value, source=key)
    profiles = config.data.setdefault("profiles", {})
    profiles.setdefault(profile, {})[key] = checked
    save_file(config)


def unset_value(config: ConfigFile, profile: str, key: str) -> bool:
    if key not in params.CONFIG_KEYS:
        params.check(key, None)  # raises the "unknown key" message
    table = config.data.get("profiles", {}).get(profile, {})
    if key not in table:
        return False
    del table[key]
    save_file(config)
    return True
