"""Configuration: the TOML file, profiles, precedence and the API key.

Precedence, highest first: command-line option > environment > active profile > default.
The file is only ever replaced atomically, and never when it could not be read.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmost_cli import paths
from llmost_cli.core import params
from llmost_cli.errors import ConfigError, UsageError

DEFAULT_BASE_URL = "https://llmost.ru/api/v1"
DEFAULT_PROFILE = "default"
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 3
DEFAULT_TOOL_ROUNDS = 8

ENV_VARS = {
    "api_key": "LLMOST_API_KEY",
    "base_url": "LLMOST_BASE_URL",
    "model": "LLMOST_MODEL",
}
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


def active_profile_name(config: ConfigFile, cli_profile: str | None) -> str:
    return (
        cli_profile
        or os.environ.get("LLMOST_PROFILE")
        or config.data.get("profile")
        or DEFAULT_PROFILE
    )


@dataclass
class Settings:
    """Resolved settings for one run. ``api_key`` stays unresolved until a request needs it."""

    profile: str
    config_path: Path
    base_url: str = DEFAULT_BASE_URL
    model: str | None = None
    system: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    markdown: bool | None = None
    max_tool_rounds: int = DEFAULT_TOOL_ROUNDS
    tools: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    _api_key: str | None = None
    _api_key_cmd: str | None = None
    _key_source: str = ""

    def api_key(self, *, required: bool = True) -> str | None:
        """The key, running ``api_key_cmd`` if that is where it comes from."""
        if self._api_key is None and self._api_key_cmd:
            self._api_key = run_key_command(self._api_key_cmd)
            self._key_source = "api_key_cmd"
        if self._api_key is None and required and needs_key(self.base_url):
            raise ConfigError(
                "no API key is set",
                hint="run 'llmost config set api_key' or set LLMOST_API_KEY",
            )
        if self._api_key is not None:
            check_secure_url(self.base_url)
        return self._api_key

    @property
    def has_key(self) -> bool:
        return self._api_key is not None or bool(self._api_key_cmd)


def resolve(config: ConfigFile, cli_profile: str | None, overrides: Mapping[str, Any]) -> Settings:
    """Layer default < profile < environment < command line (``overrides``, already checked)."""
    name = active_profile_name(config, cli_profile)
    if name not in config.profile_names() and name != DEFAULT_PROFILE:
        known = ", ".join(config.profile_names()) or "none"
        raise ConfigError(
            f"profile {name!r} is not defined in {config.path} (profiles: {known})",
            hint=f"create it with: llmost --profile {name} config set KEY VALUE",
        )
    layered: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, value in config.profile(name).items():
        layered[key], sources[key] = value, f"profile {name}"
    for key, var in ENV_VARS.items():
        env_value = os.environ.get(var)
        if env_value:
            layered[key], sources[key] = env_value, f"env {var}"
            if key == "api_key":
                layered.pop("api_key_cmd", None)
    for key, value in overrides.items():
        if value is not None:
            layered[key], sources[key] = value, "command line"
    settings = Settings(profile=name, config_path=config.path, sources=sources)
    settings.base_url = str(layered.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    settings.model = layered.get("model") or None
    settings.system = layered.get("system")
    settings.timeout = float(layered.get("timeout", DEFAULT_TIMEOUT))
    settings.retries = int(layered.get("retries", DEFAULT_RETRIES))
    settings.markdown = layered.get("markdown")
    settings.max_tool_rounds = int(layered.get("max_tool_rounds", DEFAULT_TOOL_ROUNDS))
    settings.sampling = {k: layered[k] for k in params.SAMPLING if k in layered}
    settings.tools = config.tools
    settings._api_key = layered.get("api_key") or None
    settings._api_key_cmd = layered.get("api_key_cmd") or None
    settings._key_source = sources.get("api_key", "")
    check_url_shape(settings.base_url)
    return settings


def run_key_command(command: str) -> str:
    """Run ``api_key_cmd`` through the shell; its first line of output is the key."""
    try:
        proc = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        raise ConfigError("api_key_cmd did not finish within 30 s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or [""])[0][:200]
        raise ConfigError(
            f"api_key_cmd failed with exit code {proc.returncode}"
            + (f": {detail}" if detail else "")
        )
    key = (proc.stdout.strip().splitlines() or [""])[0].strip()
    if not key:
        raise ConfigError("api_key_cmd printed nothing; expected the API key on stdout")
    return key


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url_shape(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base_url {url!r} is not an http(s) URL", hint="e.g. https://llmost.ru/api/v1"
        )


def check_secure_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ConfigError(
            f"refusing to send the API key over plain http to {parts.hostname}",
            hint="use https, or a loopback address for a local server",
        )


def needs_key(base_url: str) -> bool:
    """LLMost itself always needs a key; a local or self-hosted server may not."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "llmost.ru" or host.endswith(".llmost.ru")


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
