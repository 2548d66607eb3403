"""Settings: profiles and precedence, resolved once into a frozen ``Settings``.

Precedence, highest first: command-line option > environment > active profile > default.
Every value remembers where it came from (``config list`` shows it). The API key is resolved
apart (``resolve_key``): running ``api_key_cmd`` is work that only a request needs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmost_cli.core import params
from llmost_cli.core.configfile import ConfigFile
from llmost_cli.errors import ConfigError

DEFAULT_BASE_URL = "https://llmost.ru/api/v1"
DEFAULT_PROFILE = "default"
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 3
DEFAULT_TOOL_ROUNDS = 8
KEY_COMMAND_TIMEOUT = 30.0
MAX_KEY_COMMAND_OUTPUT = 64 * 1024

DEFAULTS: dict[str, Any] = {
    "base_url": DEFAULT_BASE_URL,
    "timeout": DEFAULT_TIMEOUT,
    "retries": DEFAULT_RETRIES,
    "max_tool_rounds": DEFAULT_TOOL_ROUNDS,
}
ENV_VARS = {
    "api_key": "LLMOST_API_KEY",
    "base_url": "LLMOST_BASE_URL",
    "model": "LLMOST_MODEL",
}
COMMAND_LINE = "command line"
DEFAULT_SOURCE = "default"


def active_profile_name(
    config: ConfigFile, cli_profile: str | None, environ: Mapping[str, str]
) -> str:
    return (
        cli_profile
        or environ.get("LLMOST_PROFILE")
        or config.data.get("profile")
        or DEFAULT_PROFILE
    )


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one run; change one with ``with_values`` (a new object)."""

    profile: str
    config_path: Path
    base_url: str = DEFAULT_BASE_URL
    model: str | None = None
    system: str | None = None
    sampling: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    markdown: bool | None = None
    max_tool_rounds: int = DEFAULT_TOOL_ROUNDS
    tools: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)  # every key that has a value
    sources: Mapping[str, str] = field(default_factory=dict)  # key -> where the value came from
    api_key: str | None = field(default=None, repr=False)
    api_key_cmd: str | None = field(default=None, repr=False)

    def source(self, key: str) -> str | None:
        return self.sources.get(key)

    def given_on_command_line(self, key: str) -> bool:
        return self.sources.get(key) == COMMAND_LINE

    def with_values(self, source: str = COMMAND_LINE, **changes: Any) -> Settings:
        """A copy with checked values changed (``/model``, ``/set``, a stored model)."""
        sampling = dict(self.sampling)
        direct: dict[str, Any] = {}
        for key, value in changes.items():
            if key in params.SAMPLING:
                if value is None:
                    sampling.pop(key, None)
                else:
                    sampling[key] = value
            else:
                direct[key] = value
        values = {**self.values, **changes}
        sources = {**self.sources, **dict.fromkeys(changes, source)}
        return replace(self, sampling=sampling, values=values, sources=sources, **direct)

    @property
    def has_key(self) -> bool:
        return self.api_key is not None or bool(self.api_key_cmd)


def resolve(
    config: ConfigFile,
    cli_profile: str | None,
    overrides: Mapping[str, Any],
    environ: Mapping[str, str],
) -> Settings:
    """Layer default < profile < environment < command line (``overrides``, already checked)."""
    name = active_profile_name(config, cli_profile, environ)
    if name not in config.profile_names() and name != DEFAULT_PROFILE:
        known = ", ".join(config.profile_names()) or "none"
        raise ConfigError(
            f"profile {name!r} is not defined in {config.path} (profiles: {known})",
            hint=f"create it with: llmost --profile {name} config set KEY VALUE",
        )
    layered: dict[str, Any] = dict(DEFAULTS)
    sources: dict[str, str] = dict.fromkeys(DEFAULTS, DEFAULT_SOURCE)
    for key, value in config.profile(name).items():
        layered[key], sources[key] = value, f"profile {name}"
    for key, var in ENV_VARS.items():
        env_value = environ.get(var)
        if env_value:
            layered[key], sources[key] = env_value, f"env {var}"
            if key == "api_key":
                layered.pop("api_key_cmd", None)
                sources.pop("api_key_cmd", None)
    for key, value in overrides.items():
        if value is not None:
            layered[key], sources[key] = value, COMMAND_LINE
    base_url = str(layered.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    check_url_shape(base_url)
    return Settings(
        profile=name,
        config_path=config.path,
        base_url=base_url,
        model=layered.get("model") or None,
        system=layered.get("system"),
        sampling={k: layered[k] for k in params.SAMPLING if k in layered},
        timeout=float(layered["timeout"]),
        retries=int(layered["retries"]),
        markdown=layered.get("markdown"),
        max_tool_rounds=int(layered["max_tool_rounds"]),
        tools=config.tools,
        values=layered,
        sources=sources,
        api_key=layered.get("api_key") or None,
        api_key_cmd=layered.get("api_key_cmd") or None,
    )


def resolve_key(settings: Settings, *, required: bool = True) -> str | None:
    """The key, running ``api_key_cmd`` if that is where it comes from, checked.

    Missing (for LLMost itself), malformed, or bound for a plain-http remote host: ConfigError.
    """
    key = settings.api_key
    where = _key_source(settings)
    if key is None and settings.api_key_cmd:
        key, where = run_key_command(settings.api_key_cmd), "the output of api_key_cmd"
    if key is None:
        if required and needs_key(settings.base_url):
            raise ConfigError(
                "no API key is set",
                hint="run 'llmost config set api_key' or set LLMOST_API_KEY",
            )
        return None
    check_key(key, where)
    check_secure_url(settings.base_url)
    return key


def _key_source(settings: Settings) -> str:
    source = settings.sources.get("api_key", "")
    if source.startswith("env "):
        return source[4:]
    if source.startswith("profile "):
        return f"api_key in {source} of {settings.config_path}"
    return "the API key"


def check_key(key: str, where: str) -> None:
    """An HTTP header carries printable ASCII only; never echo the key, even in part."""
    from llmost_cli.errors import UsageError

    try:
        params.check_secret(key, f"the API key from {where}")
    except UsageError as exc:
        raise ConfigError(exc.message) from None


def run_key_command(command: str) -> str:
    """Run ``api_key_cmd`` through the shell; its first line of output is the key."""
    import os
    import signal

    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(f"api_key_cmd could not be started: {exc.strerror}") from None
    try:
        out, err = proc.communicate(timeout=KEY_COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(proc, os, signal)
        raise ConfigError(f"api_key_cmd did not finish within {KEY_COMMAND_TIMEOUT:g} s") from None
    except BaseException:
        _kill_group(proc, os, signal)
        raise
    if proc.returncode != 0:
        from llmost_cli.core.text import one_line

        detail = one_line(err.decode("utf-8", "replace")[:2000])[:200]
        raise ConfigError(
            f"api_key_cmd failed with exit code {proc.returncode}"
            + (f": {detail}" if detail else "")
        )
    text = out[:MAX_KEY_COMMAND_OUTPUT].decode("utf-8", "replace")
    key = (text.strip().splitlines() or [""])[0].strip()
    if not key:
        raise ConfigError("api_key_cmd printed nothing; expected the API key on stdout")
    return key


def _kill_group(proc: subprocess.Popen[bytes], os: Any, signal: Any) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def is_loopback(host: str) -> bool:
    """Loopback by address: 127.0.0.0/8, ::1, and the name localhost itself.

    ``*.localhost`` names are not trusted: a resolver may send them anywhere.
    """
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url_shape(url: str) -> None:
    parts = urlsplit(url)
    try:
        hostname = parts.hostname
        parts.port  # noqa: B018  # a bad port raises here rather than at request time
    except ValueError:
        hostname = None
    if parts.scheme not in ("http", "https") or not hostname:
        raise ConfigError(
            f"base_url {url!r} is not an http(s) URL", hint="e.g. https://llmost.ru/api/v1"
        )


def check_secure_url(url: str, what: str = "the API key") -> None:
    """Plain http only to loopback: nothing else may see the key in clear."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ConfigError(
            f"refusing to send {what} over plain http to {parts.hostname}",
            hint="use https, or a loopback address for a local server",
        )


def needs_key(base_url: str) -> bool:
    """LLMost itself always needs a key; a local or self-hosted server may not."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "llmost.ru" or host.endswith(".llmost.ru")
