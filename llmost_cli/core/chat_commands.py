"""The slash commands of ``llmost chat``: each ``cmd_NAME`` handles ``/NAME ARG`` for a session.

Kept apart from ``chat.Session`` so the session reads as "turns and storage", and so adding a
command is one function plus one line in ``COMMANDS``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from llmost_cli.core import inputs as conversation
from llmost_cli.core import params
from llmost_cli.core.messages import Message
from llmost_cli.errors import StoreError, UsageError

if TYPE_CHECKING:
    from llmost_cli.core.chat import Session
    from llmost_cli.store.store import Store

# name, arguments, one line of help; the order of /help
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("/help", "", "list these commands"),
    ("/exit", "", "leave the chat (also /quit, Ctrl-D)"),
    ("/quit", "", "leave the chat"),
    ("/clear", "", "forget the conversation so far (the system prompt stays)"),
    ("/model", "[ID]", "show the model, or switch to model ID"),
    ("/system", "[TEXT]", "show the system prompt, or set it (@path reads a file)"),
    ("/image", "PATH_OR_URL", "attach an image to your next message"),
    ("/prefill", "TEXT", "start the next answer with TEXT"),
    ("/retry", "", "ask for the last answer again"),
    ("/undo", "", "drop your last message and its answer"),
    ("/history", "", "show the conversation"),
    ("/usage", "", "tokens (and cost) of this session"),
    ("/set", "KEY VALUE", "set a sampling parameter: " + ", ".join(params.SAMPLING)),
    ("/save", "NAME", "name this conversation (resume it with: llmost chat --session NAME)"),
    ("/load", "NAME", "switch to a saved conversation"),
)
COMMAND_NAMES = tuple(name for name, _, _ in COMMANDS)


def cmd_help(session: Session, arg: str) -> None:
    width = max(len(f"{n} {a}") for n, a, _ in COMMANDS)
    lines = [f"  {f'{n} {a}'.ljust(width)}  {h}" for n, a, h in COMMANDS]
    lines.append("  Start a message with // to send it with a leading slash.")
    session.say("\n".join(lines))


def cmd_clear(session: Session, arg: str) -> None:
    if session.store is not None and session.conv is not None:
        session.store.clear(session.conv.id)
    session.history, session.system_stored = [], None
    session.images, session.prefill = [], None
    session.ui.note("conversation cleared")


def cmd_model(session: Session, arg: str) -> None:
    model = arg.strip()
    if not model:
        session.ui.note(f"model: {session.settings.model or 'the account default'}")
        return
    session.settings.model = model
    if session.store is not None and session.conv is not None:
        session.store.set_model(session.conv.id, model)
    session.ui.note(f"model: {model}")


def cmd_system(session: Session, arg: str) -> None:
    if not arg.strip():
        session.say(session.system if session.system else "(no system prompt)")
        return
    session.system = conversation.read_text_arg(arg.strip(), "/system")
    session.ui.note("system prompt set")


def cmd_image(session: Session, arg: str) -> None:
    if not arg.strip():
        raise UsageError("usage: /image PATH_OR_URL")
    session.images.append(conversation.image_url(arg.strip()))
    session.ui.note(f"{len(session.images)} image(s) attached to your next message")


def cmd_prefill(session: Session, arg: str) -> None:
    if not arg:
        raise UsageError("usage: /prefill TEXT")
    session.prefill = arg
    session.ui.note("the next answer will start with your prefill")


def cmd_retry(session: Session, arg: str) -> None:
    last = _last_user_index(session)
    if last is None:
        session.ui.note("nothing to retry")
        return
    content = session.history[last].content
    _drop_from(session, last)
    session.turn(content if content is not None else "")


def cmd_undo(session: Session, arg: str) -> None:
    last = _last_user_index(session)
    if last is None:
        session.ui.note("nothing to undo")
        return
    _drop_from(session, last)
    session.ui.note("dropped your last message and its answer")


def _last_user_index(session: Session) -> int | None:
    users = [i for i, m in enumerate(session.history) if m.role == "user"]
    return users[-1] if users else None


def _drop_from(session: Session, index: int) -> None:
    if session.store is not None and session.conv is not None:
        session.store.drop_last_exchange(session.conv.id)
    del session.history[index:]


def cmd_history(session: Session, arg: str) -> None:
    if not session.history and not session.system:
        session.say("(the conversation is empty)")
        return
    shown = list(session.history)
    if session.system and session.system != session.system_stored:
        shown.insert(0, Message(role="system", content=session.system))
    session.say("\n\n".join(describe(m) for m in shown))


def cmd_usage(session: Session, arg: str) -> None:
    from llmost_cli.ui.output import format_cost

    def total(name: str) -> int:
        return sum(getattr(u, name) or 0 for u, _ in session.usages)

    n = len(session.usages)
    text = (
        f"this session: {n} answer{'s' if n != 1 else ''}, {total('prompt_tokens')} prompt"
        f" + {total('completion_tokens')} completion = {total('total_tokens')} tokens"
    )
    cost = _cost(session)
    if cost is not None:
        text += f", cost {format_cost(cost)}"
    session.ui.note(text)


def _cost(session: Session) -> float | None:
    try:
        from llmost_cli.core.models import session_cost
    except ImportError:
        return None
    return session_cost(session.usages, session.settings.base_url)


def cmd_set(session: Session, arg: str) -> None:
    key, _, value = arg.strip().partition(" ")
    if not key:
        shown = ", ".join(f"{k}={v!r}" for k, v in session.settings.sampling.items())
        session.ui.note(f"sampling: {shown or 'server defaults'}")
        return
    if key not in params.SAMPLING:
        known = ", ".join(params.SAMPLING)
        raise UsageError(f"/set: unknown parameter {key!r}; known: {known}")
    if not value.strip():
        raise UsageError(f"usage: /set {key} VALUE")
    checked = params.parse_text_value(key, value.strip(), source=f"/set {key}")
    session.settings.sampling[key] = checked
    session.ui.note(f"{key} = {json.dumps(checked, ensure_ascii=False)}")


def cmd_save(session: Session, arg: str) -> None:
    name = arg.strip()
    if not name:
        raise UsageError("usage: /save NAME")
    store = _need_store(session)
    if session.conv is None:
        session.conv = store.create(name=name, model=session.settings.model)
        store.append(session.conv.id, session.history)
    else:
        store.rename(session.conv.id, name)
        session.conv.name = name
    session.ui.note(f"saved as {name!r}; resume it with: llmost chat --session {name}")


def cmd_load(session: Session, arg: str) -> None:
    name = arg.strip()
    if not name:
        raise UsageError("usage: /load NAME")
    conv = _need_store(session).get(name)
    if conv is None:
        raise UsageError(f"no saved conversation {name!r}")
    session.enter(conv)
    session.images, session.prefill = [], None
    session.ui.note(f"loaded {name!r}: {len(session.history)} messages")


def _need_store(session: Session) -> Store:
    if session.store is None:
        raise StoreError("the conversation store is not available in this session")
    return session.store


def describe(message: Message) -> str:
    """A message as /history shows it."""
    label = {"user": "you", "assistant": "assistant", "system": "system"}.get(
        message.role, message.role
    )
    content = message.content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                parts.append("[image]")
        text = "\n".join(parts)
    else:
        text = content or ""
    for call in message.tool_calls or []:
        fn = call.get("function", {})
        text += f"\n[tool call {fn.get('name')}({fn.get('arguments', '')})]"
    if message.partial:
        text += " [cut off]"
    return f"{label}: {text.strip()}"
