"""``llmost --complete-values KIND [PROFILE]``: the dynamic words of the completion scripts.

The scripts in ``completions/`` call this on Tab, so it is answered before typer is imported
(see main.py) and reads only local files: the config file and the model-list cache, of any
age (completion must not wait for the network). It prints one value per line and always exits
0: a broken config or cache completes nothing rather than spilling errors into the prompt.

KIND is ``profiles``, ``models`` (ids in the cache for the base URL the profile resolves to),
``keys`` (config keys), ``tools`` (``[tools.NAME]`` declared in the config file) or
``conversations`` (``last``, then the names, or ids, of the 50 most recently updated stored
conversations, read from the store without creating or migrating it). PROFILE is the
``--profile`` already typed on the command line, if any.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmost_cli.env import Environment

KINDS = ("profiles", "models", "keys", "tools", "templates", "conversations")


def values(kind: str, profile: str | None = None) -> list[str]:
    """The words for ``kind``; raises on a broken config (the caller swallows it)."""
    if kind == "keys":
        from llmost_cli.core import params

        return [str(k) for k in params.CONFIG_KEYS]
    if kind == "conversations":
        from llmost_cli import paths
        from llmost_cli.store.store import recent_refs

        return recent_refs(paths.database_file())
    if kind not in KINDS:
        return []
    if kind == "templates":
        from llmost_cli import paths
        from llmost_cli.core import templates

        return templates.names(templates.directory(paths.config_file()))
    # config and models are core modules: stdlib only, no typer, rich or httpx.
    from llmost_cli.core import configfile, settings

    cfg = configfile.load_file()
    if kind == "profiles":
        return [str(n) for n in cfg.profile_names()]
    if kind == "tools":
        return list(cfg.tools)
    from llmost_cli.core import models

    # Same precedence as a real run: --profile, LLMOST_PROFILE, the file's profile;
    # LLMOST_BASE_URL over the profile's base_url.
    base_url = settings.resolve(cfg, profile, {}, os.environ).base_url
    return sorted(set(models.cached_model_ids(base_url)))


def main(args: Sequence[str], env: Environment) -> int:
    kind = args[0] if args else ""
    profile = args[1] if len(args) > 1 and args[1] else None
    try:
        words = values(kind, profile)
    except Exception:  # anything wrong: no completions, never a traceback
        return 0
    # A value with a newline would split into two bogus words: leave it out.
    text = "".join(f"{word}\n" for word in words if word and "\n" not in word)
    try:
        if env.stdout is not None:
            env.stdout.write(text.encode("utf-8", "replace"))
            env.stdout.flush()
    except (OSError, ValueError):  # the shell stopped reading (another Tab): nothing to do
        pass
    return 0
