"""The state of one run, shared by the commands (click's ``ctx.obj``) and the error boundary."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmost_cli.env import Environment

if TYPE_CHECKING:
    from llmost_cli.ui.output import UI


@dataclass
class State:
    """The Environment, the global options, and the UI built from them on first use."""

    env: Environment
    profile: str | None = None
    debug: bool = False
    json_errors: bool = False  # `ask -o json`: errors go to stdout as JSON too
    _ui: UI | None = field(default=None, repr=False)

    @property
    def ui(self) -> UI:
        if self._ui is None:
            from llmost_cli.ui.output import make_ui

            self._ui = make_ui(self.env)
        return self._ui


# The run in progress, for helpers that are not handed the click context (set by main.run).
CURRENT: ContextVar[State] = ContextVar("llmost_state")


def current() -> State:
    return CURRENT.get()
