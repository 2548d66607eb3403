"""``-f``/``-T`` in ``llmost chat``, and the ``/file`` and ``/template`` slash commands.

``ContextSession`` is a ``Session`` whose next message can carry attachments and go through a
template's prompt. Importing this module registers the two commands after the built-in ones
(so ``/help`` keeps its order); ``cli/chat.py`` imports it and builds a ``ContextSession``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import llmost_cli.core.chat_commands  # noqa: F401  # the built-in commands first (/help order)
from llmost_cli.core import attachments, templates
from llmost_cli.core.chat import Session, command
from llmost_cli.core.inputs import size_text
from llmost_cli.core.messages import Conversation, Message
from llmost_cli.errors import UsageError


@dataclass
class ContextSession(Session):
    """A chat session whose next message carries ``context`` and goes through ``template``."""

    context: attachments.Context = field(default_factory=attachments.Context)
    template: templates.Filled | None = None  # its prompt wraps the next message only
    fetch: attachments.Fetch | None = None  # for /file URL

    def send(self, text: str) -> None:
        composed = attachments.compose_text(text, self.context, None)
        if self.template is not None:
            composed = self.template.prompt(composed)  # a missing value fails before clearing
        self.images.extend(self.context.images)
        self.context, self.template = attachments.Context(), None
        super().send(composed)

    def enter(self, conversation: Conversation | None, messages: Sequence[Message] = ()) -> None:
        super().enter(conversation, messages)
        self.context, self.template = attachments.Context(), None

    def attach(self, spec: str) -> attachments.Context:
        """``/file PATH_OR_URL``: checked and read now, sent with the next message."""
        added = attachments.load(
            [spec],
            stdin=None,
            fetch=self.fetch,
            warn=self.view.warn,
            note=self.view.note,
            used=self.context.text_bytes,
        )
        self.context.extend(added)
        return added

    def use_template(self, filled: templates.Filled) -> None:
        """``/template NAME``: its system prompt, model, sampling, schema and tools from now on;
        its prompt for the next message."""
        from llmost_cli.core.ask import offered_tools

        template = filled.template
        system = filled.system()
        if system is not None:
            self.set_system(system)
        if template.model:
            self.switch_model(template.model)
        for key, value in template.sampling.items():
            self.set_sampling(key, value)
        changes: dict[str, Any] = {}
        if template.schema:
            changes |= {"schema": template.schema, "json_mode": False}
        if template.tools:
            changes |= {"tool": list(template.tools), "tools_all": False, "tools": None}
        if changes:
            options = replace(self.options, **changes)
            offered, local = offered_tools(options, self.settings)  # undeclared: a usage error
            self.options, self.offered, self.local = options, tuple(offered), local
            confirmed = bool(getattr(options, "yes", False)) or self.interactive
            self.run_tools = bool(local) and confirmed
        self.template = filled if template.prompt is not None else None


def pending_note(session: ContextSession) -> str:
    context = session.context
    parts = []
    if context.blocks:
        parts.append(f"{len(context.blocks)} text(s), {size_text(context.text_bytes)}")
    if context.images:
        parts.append(f"{len(context.images)} image(s)")
    return f"attached to your next message: {', '.join(parts)}" if parts else "nothing attached"


@command("/file", "PATH_OR_URL", "attach a file, directory, PDF, image or URL to the next message")
def _file(session: Session, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /file PATH_OR_URL")
    if not isinstance(session, ContextSession):
        raise UsageError("/file is not available in this session")
    session.attach(arg)
    session.view.note(pending_note(session))


@command("/template", "[NAME [KEY=VALUE]...]", "list templates, or apply one to what follows")
def _template(session: Session, arg: str) -> None:
    folder = templates.directory(session.settings.config_path)
    if not arg:
        found = templates.names(folder)
        session.view.say("\n".join(found) if found else f"no templates in {folder}")
        return
    if not isinstance(session, ContextSession):
        raise UsageError("/template is not available in this session")
    import shlex

    try:
        name, *items = shlex.split(arg)
    except ValueError as exc:
        raise UsageError(f"/template: {exc}") from None
    filled = templates.fill(templates.load(folder, name), items)
    session.use_template(filled)
    then = "; your next message goes through its prompt" if session.template else ""
    session.view.note(f"template {filled.template.name} applied{then}")
