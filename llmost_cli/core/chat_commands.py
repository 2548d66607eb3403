"""The slash commands of ``llmost chat``: one registered handler each, in /help order.

A handler parses its argument and calls one intention-named method of ``Session``; adding a
command is one function here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llmost_cli.core import inputs, params
from llmost_cli.core.chat import Command, Session
from llmost_cli.core.events import Usage
from llmost_cli.core.text import format_cost
from llmost_cli.errors import UsageError

COMMANDS: dict[str, Command] = {}  # in /help order

Handler = Callable[[Session, str], Any]


def command(name: str, usage: str, help: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, help, handler)
        return handler

    return register


def command_names() -> tuple[str, ...]:
    return tuple(COMMANDS)


@command("/help", "", "list these commands")
def _help(session: Session, arg: str) -> None:
    commands = session.commands.values()
    width = max(len(f"{c.name} {c.usage}".strip()) for c in commands)
    lines = [f"{f'{c.name} {c.usage}'.strip().ljust(width)}  {c.help}" for c in commands]
    lines.append("Start a message with // to send it with a leading slash.")
    session.view.say("\n".join(lines))


@command("/exit", "", "leave the chat (also /quit, Ctrl-D)")
def _exit(session: Session, arg: str) -> bool:
    return False


@command("/quit", "", "leave the chat")
def _quit(session: Session, arg: str) -> bool:
    return False


@command("/clear", "", "start a new conversation (the system prompt stays; nothing is deleted)")
def _clear(session: Session, arg: str) -> None:
    session.clear()
    session.view.note("new conversation; the previous one stays saved")


@command("/model", "[ID]", "show the model, or switch to model ID")
def _model(session: Session, arg: str) -> None:
    if not arg:
        session.view.note(f"model: {session.settings.model or 'the account default'}")
        return
    from llmost_cli.core import models

    known = models.cached_model_ids(session.settings.base_url)
    if known and arg not in known:  # the list is cached: an id not in it is a typo, or new
        close = models.suggestions(arg, known)
        hint = f"did you mean {', '.join(close)}?" if close else "llmost models --refresh"
        raise UsageError(f"/model: {arg!r} is not in the model list", hint=hint)
    session.switch_model(arg)
    session.view.note(f"model: {arg}")


@command("/system", "[TEXT]", "show the system prompt, or set it (@path reads a file)")
def _system(session: Session, arg: str) -> None:
    if not arg:
        session.view.say(session.effective_system() or "(no system prompt)")
        return
    session.set_system(inputs.read_text_arg(arg, "/system"))
    session.view.note("system prompt set")


@command("/image", "PATH_OR_URL", "attach an image to your next message")
def _image(session: Session, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /image PATH_OR_URL")
    session.attach_image(inputs.image_url(arg))
    session.view.note(f"{len(session.images)} image(s) attached to your next message")


@command("/prefill", "TEXT", "start the next answer with TEXT")
def _prefill(session: Session, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /prefill TEXT")
    session.set_prefill(arg)
    session.view.note("the next answer will start with your prefill")


@command("/retry", "", "ask for the last answer again")
def _retry(session: Session, arg: str) -> None:
    if not session.retry():
        session.view.note("nothing to retry")


@command("/undo", "", "drop your last message and its answer")
def _undo(session: Session, arg: str) -> None:
    if session.drop_last_exchange() is None:
        session.view.note("nothing to undo")
    else:
        session.view.note("dropped your last message and its answer")


@command("/history", "", "show the conversation")
def _history(session: Session, arg: str) -> None:
    from llmost_cli.core.messages import Message
    from llmost_cli.core.turn import last_system

    shown = list(session.history)
    system = session.effective_system()
    if system and system != last_system(shown):
        shown.insert(0, Message(role="system", content=system))
    if not shown:
        session.view.say("(the conversation is empty)")
        return
    session.view.history(shown)


@command("/usage", "", "tokens (and cost) of this session")
def _usage(session: Session, arg: str) -> None:
    from llmost_cli.core.models import session_cost

    n = session.answers
    text = f"this session: {n} answer{'s' if n != 1 else ''}"
    if n and len(session.usages) < n:
        session.view.note(f"{text}, tokens unknown (the server sent no usage for some answers)")
        return
    usages = [u for u, _ in session.usages]
    total = sum(usages[1:], usages[0]) if usages else Usage(0, 0, 0)

    def count(value: int | None) -> str:
        return "unknown" if value is None else str(value)

    text += (
        f", {count(total.prompt_tokens)} prompt + {count(total.completion_tokens)} completion"
        f" = {count(total.total_tokens)} tokens"
    )
    if total.reasoning_tokens is not None:
        text += f" ({total.reasoning_tokens} reasoning)"
    cost = session_cost(session.usages, session.settings.base_url) if usages else None
    if cost is not None:
        text += f", cost {format_cost(cost)}"
    session.view.note(text)


@command("/set", "KEY VALUE", "set a sampling parameter: " + ", ".join(params.SAMPLING))
def _set(session: Session, arg: str) -> None:
    key, _, value = arg.partition(" ")
    if not key:
        shown = ", ".join(f"{k}={v!r}" for k, v in session.settings.sampling.items())
        session.view.note(f"sampling: {shown or 'server defaults'}")
        return
    if key not in params.SAMPLING:
        known = ", ".join(params.SAMPLING)
        raise UsageError(f"/set: unknown parameter {key!r}; known: {known}")
    if not value.strip():
        raise UsageError(f"usage: /set {key} VALUE")
    checked = params.parse_text_value(key, value.strip(), source=f"/set {key}")
    session.set_sampling(key, checked)
    session.view.note(f"{key} = {json.dumps(checked, ensure_ascii=False)}")


@command("/save", "NAME", "name this conversation (resume it with: llmost chat --session NAME)")
def _save(session: Session, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /save NAME")
    session.save(arg)
    session.view.note(f"saved as {arg!r}; resume it with: llmost chat --session {arg}")


@command("/load", "NAME", "switch to a saved conversation")
def _load(session: Session, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /load NAME")
    session.load(arg)
    session.view.note(f"loaded {arg!r}: {len(session.history)} messages")


@command("/edit", "", "compose the next message in $VISUAL/$EDITOR (also Ctrl-X Ctrl-E)")
def _edit(session: Session, arg: str) -> None:
    text = session.view.compose()
    if text is None or not text.strip():
        session.view.note("nothing to send")
        return
    session.send(text)


@command("/copy", "[N]", "copy the last answer, or its Nth code block, to the clipboard")
def _copy(session: Session, arg: str) -> None:
    from llmost_cli.core.ask import extract_block

    answer = session.last_answer()
    if answer is None:
        raise UsageError("/copy: there is no answer yet")
    if arg:
        if not arg.isdigit() or int(arg) < 1:
            raise UsageError(f"usage: /copy [N] (N a code block number, got {arg!r})")
        text = extract_block(answer, int(arg))
        what = f"code block {arg}"
    else:
        text, what = answer, "the last answer"
    session.view.copy(text)
    session.view.note(f"copied {what} ({len(text)} characters) to the clipboard")


@command("/fork", "[NAME]", "continue in a copy of this conversation (the original stays)")
def _fork(session: Session, arg: str) -> None:
    conv = session.fork(arg or None)
    session.view.note(f"forked into {conv.name or conv.id}; the original is unchanged")


@command("/file", "PATH_OR_URL", "attach a file, directory, PDF, image or URL to the next message")
def _file(session: Session, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /file PATH_OR_URL")
    session.attach(arg)
    session.view.note(pending_note(session))


@command("/template", "[NAME [KEY=VALUE]...]", "list templates, or apply one to what follows")
def _template(session: Session, arg: str) -> None:
    import shlex

    from llmost_cli.core import templates

    folder = templates.directory(session.settings.config_path)
    if not arg:
        found = templates.names(folder)
        session.view.say("\n".join(found) if found else f"no templates in {folder}")
        return
    try:
        name, *items = shlex.split(arg)
    except ValueError as exc:
        raise UsageError(f"/template: {exc}") from None
    filled = templates.fill(templates.load(folder, name), items)
    session.use_template(filled)
    then = "; your next message goes through its prompt" if session.template else ""
    session.view.note(f"template {filled.template.name} applied{then}")


def pending_note(session: Session) -> str:
    from llmost_cli.core.inputs import size_text

    context = session.context
    parts = []
    if context.blocks:
        parts.append(f"{len(context.blocks)} text(s), {size_text(context.text_bytes)}")
    if context.images:
        parts.append(f"{len(context.images)} image(s)")
    return f"attached to your next message: {', '.join(parts)}" if parts else "nothing attached"
