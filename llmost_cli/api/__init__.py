"""HTTP to the API: the only package that imports httpx (see client.py)."""

from __future__ import annotations

import sys

# Start-up: httpx imports its own command-line tool (click, rich, pygments) and httpcore imports
# trio whenever they are installed. llmost uses neither; together they cost more than 60 ms of
# every `ask`. Marking them absent makes both libraries take their documented fallbacks.
for _name in ("httpx._main", "trio"):
    sys.modules.setdefault(_name, None)  # type: ignore[arg-type]  # None: "not installed"
