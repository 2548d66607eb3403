"""File locations. Computed in functions, never at import, so tests can move them with env vars."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

APP = "llmost"


def config_file() -> Path:
    override = os.environ.get("LLMOST_CONFIG")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP)) / "config.toml"


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP))


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP))


def database_file() -> Path:
    return data_dir() / "conversations.db"


def history_file() -> Path:
    return data_dir() / "history"


def models_cache_file(base_url: str) -> Path:
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]
    return cache_dir() / f"models-{digest}.json"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each with mode 0700 whatever the umask.

    An existing directory is never chmod-ed: it may be shared (a 1777 ``/tmp``-like dir that
    ``LLMOST_CONFIG`` points into) or the user's own choice; the files we put in it are 0600.
    Only the levels created here are made 0700 (``mkdir(parents=True)`` would create the
    parents with ``0777 & ~umask``, world-writable under ``umask 000``).
    """
    missing: list[Path] = []
    level = path
    while not level.is_dir():
        missing.append(level)
        if level.parent == level:
            break
        level = level.parent
    for level in reversed(missing):
        try:
            os.mkdir(level, 0o700)
        except FileExistsError:
            if level.is_dir():  # another process made it first: not ours to change
                continue
            raise NotADirectoryError(
                errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(level)
            ) from None
        os.chmod(level, 0o700)  # ours, just made: the umask may have removed our own bits
    return path
