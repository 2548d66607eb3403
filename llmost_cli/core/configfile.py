"""The config file: read, validate, and write atomically (DESIGN §3).

The file is only ever replaced atomically, and never when it could not be read. Every change
is a read-modify-write under a lock (``transaction``), so parallel ``config set`` runs all
keep their keys. A symlinked file (dotfiles) is written through the link, in the target's
directory; existing directories are never chmod-ed (``paths.ensure_private_dir``).
"""

from __future__ import annotations

import copy
import errno
import os
import stat
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmost_cli import paths
from llmost_cli.core import params
from llmost_cli.errors import ConfigError, UsageError

TOP_LEVEL_KEYS = ("profile", "profiles", "tools")
SECRET_KEYS = params.SECRET_KEYS
TEMP_PREFIX, TEMP_SUFFIX = ".config-", ".toml"
STALE_TEMP_AGE = 60.0  # seconds: no write of ours takes this long
LOCK_TIMEOUT = 10.0  # seconds to wait for another llmost that is changing the file


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


@contextmanager
def transaction(path: Path | None = None) -> Iterator[ConfigFile]:
    """Lock the file, read it afresh, let the caller change ``data``, then save if it changed.

    The lock (``flock`` on ``.NAME.lock`` beside the path the user named, 0600) covers the
    whole read-modify-write: ten ``config set`` at once keep all ten keys. Nothing is saved
    when the block raises or leaves the data as it was.
    """
    path = path or paths.config_file()
    _ensure_dir(path, path.parent)
    with _locked(path):
        config = load_file(path)
        before = copy.deepcopy(config.data)
        yield config
        if config.data != before:
            save_file(config)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    lock = path.parent / f".{path.name}.lock"
    try:
        # O_NOFOLLOW: in a shared directory, a planted symlink must not make us create files
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _write_error(path, exc, f"cannot create its lock file {lock}: ") from None
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"config file {path} is being changed by another process "
                        f"(lock file {lock} held for {LOCK_TIMEOUT:g} s)",
                        hint="try again",
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_target(path: Path) -> Path:
    """The file that is really written: the target of a symlinked config (dotfiles).

    Replacing the link itself would turn it into a plain file behind the user's back.
    """
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def save_file(config: ConfigFile) -> None:
    """Atomic write (temp file + rename in the target's directory), file 0600.

    Any failure (disk full, read-only file system) is a ConfigError naming the file and the
    reason; the old file is left as it was and the temp file removed.
    """
    import tomli_w

    data = tomli_w.dumps(config.data).encode("utf-8")
    target = write_target(config.path)
    directory = _ensure_dir(config.path, target.parent)
    _remove_stale_temp_files(directory)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise _write_error(config.path, exc) from None
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(config.path, exc) from None
        raise
    _sync_dir(directory)
    config.exists = True


def _ensure_dir(path: Path, directory: Path) -> Path:
    try:
        return paths.ensure_private_dir(directory)
    except OSError as exc:
        raise _write_error(path, exc, f"cannot create directory {directory}: ") from None


def _write_error(path: Path, exc: OSError, what: str = "") -> ConfigError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    reason = reason[:1].lower() + reason[1:]
    return ConfigError(f"cannot write config file {path}: {what}{reason}")


def _remove_stale_temp_files(directory: Path) -> None:
    """Remove our temp files that a killed write left behind (older than a minute).

    SIGKILL (or a power cut) between the temp file and the rename cannot be caught, so the
    next write cleans up. The alternative, an unnamed O_TMPFILE linked into place, is
    Linux-only and cannot replace the old file atomically (``linkat`` refuses an existing
    name), so it would still need a named temp file. Only regular files that we own and
    that are older than any write of ours are removed: another llmost writing a different
    config in the same directory right now holds a younger one.
    """
    now = time.time()
    try:
        candidates = list(directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))
    except OSError:
        return
    for candidate in candidates:
        try:
            st = candidate.lstat()
            if (
                stat.S_ISREG(st.st_mode)
                and st.st_uid == os.geteuid()
                and now - st.st_mtime > STALE_TEMP_AGE
            ):
                candidate.unlink()
        except OSError:
            continue


def _sync_dir(directory: Path) -> None:
    """Make the rename itself durable; best effort (some file systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def set_value(config: ConfigFile, profile: str, key: str, value: Any) -> Any:
    """Set ``key`` in ``profile`` (created if needed); call inside ``transaction``."""
    checked = params.check(key, value, source=key)
    profiles = config.data.setdefault("profiles", {})
    profiles.setdefault(profile, {})[key] = checked
    return checked


def unset_value(config: ConfigFile, profile: str, key: str) -> bool:
    """Remove ``key`` from ``profile``; False when it was not set. Call inside ``transaction``."""
    if key not in params.CONFIG_KEYS:
        params.check(key, None)  # raises the "unknown key" message
    table = config.data.get("profiles", {}).get(profile, {})
    if key not in table:
        return False
    del table[key]
    return True


def profile_choice(
    config: ConfigFile, cli_profile: str | None, environ: Mapping[str, str], default: str
) -> tuple[str, str]:
    """The active profile and what chose it (the same order as ``settings``)."""
    if cli_profile:
        return cli_profile, "--profile"
    if environ.get("LLMOST_PROFILE"):
        return environ["LLMOST_PROFILE"], "LLMOST_PROFILE"
    if config.data.get("profile"):
        return str(config.data["profile"]), "the config file"
    return default, "default"
