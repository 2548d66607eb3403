"""File locations. Computed in functions, never at import, so tests can move them with env vars."""

from __future__ import annotations

import contextlib
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
    """Create ``path`` (and parents) with mode 0700; tighten it if it already exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        # Not ours to change (e.g. a shared dir): the files inside stay 0600 anyway.
        with contextlib.suppress(OSError):
            path.chmod(0o700)
    return path
