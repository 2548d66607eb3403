"""Stored conversations on the screen: the list, one conversation, search hits, and the
question before deleting.

On a terminal everything that came from a server or a model (content, names, model ids,
titles) goes through ``printable`` (control characters and escape sequences made visible,
newline and tab kept) into rich ``Text`` objects, never markup strings, so ``[bold]`` in a
message prints as it is. Piped, the list and the hits are tab-separated lines, one per entry.
rich is imported inside the functions that draw.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmost_cli.core.transcript import Hit, Summary, first_words, one_line, printable, text_of
from llmost_cli.core.transcript import timestamp as utc_time

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from llmost_cli.core.messages import Conversation, Message
    from llmost_cli.env import Environment
    from llmost_cli.ui.output import UI

_SPACES = re.compile(r"\s+")


def _text(value: str, style: str = "") -> Text:
    from rich.text import Text

    return Text(printable(value), style=style)


def _dim(value: str) -> Text:
    return _text(value, "dim")


def iso(seconds: float) -> str:
    """``2024-03-09T16:00:00Z``: for scripts."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "-"


def ago(seconds: float, now: float) -> str:
    """``5 min ago``, ``3 h ago``, ``6 d ago``, else the date: for people."""
    delta = now - seconds
    if delta < 0:
        return utc_time(seconds)[:10]
    for limit, unit, size in ((60, "", 1), (3600, "min", 60), (86400, "h", 3600)):
        if delta < limit:
            return "just now" if not unit else f"{int(delta // size)} {unit} ago"
    if delta < 7 * 86400:
        return f"{int(delta // 86400)} d ago"
    return utc_time(seconds)[:10]


# -- conversations list -----------------------------------------------------------------------


def conversation_list(ui: UI, summaries: Sequence[Summary], now: float) -> None:
    """Newest first. Piped: id, name, model, updated, turns, first words; tab-separated."""
    if not ui.out_tty:
        lines = [
            "\t".join(
                [
                    s.conversation.id,
                    one_line(s.conversation.name or "") or "-",
                    one_line(s.conversation.model or "") or "-",
                    iso(s.conversation.updated),
                    str(s.turns),
                    first_words(s.first_text, 80),
                ]
            )
            + "\n"
            for s in summaries
        ]
        ui.write("".join(lines))
        return
    console = ui.console("out")
    console.print(_list_table(summaries, now, console.width))


def _list_table(summaries: Sequence[Summary], now: float, width: int) -> RenderableType:
    """The table, fitted to ``width``: names and models cut at 20 and 24 cells, the first
    words get the rest (the model column goes first when that is too little)."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table

    rows = [
        (
            s.conversation.id,
            one_line(s.conversation.name or ""),
            one_line(s.conversation.model or ""),
            ago(s.conversation.updated, now),
            str(s.turns),
            s.first_text,
        )
        for s in summaries
    ]
    headers = ("ID", "NAME", "MODEL", "UPDATED", "TURNS", "FIRST WORDS")
    caps = (26, 20, 24, 16, 8)
    widths = [
        min(cap, max(cell_len(printable(row[i]) or "-") for row in [headers, *rows]))
        for i, cap in enumerate(caps)
    ]
    show = [True] * 6
    rest = width - sum(widths) - 3 * 5  # columns are three cells apart
    if rest < 20:
        show[2], rest = False, rest + widths[2] + 3
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, header in enumerate(headers):
        if show[i]:
            cell = widths[i] if i < 5 else max(rest, 11)
            table.add_column(header, width=cell, no_wrap=True, overflow="ellipsis")
    table.columns[-2].justify = "right"  # turns
    for row in rows:
        cells = [_text(v) if v else _dim("-") for v in row[:5]]
        cells.append(_text(first_words(row[5], max(rest, 11))) if row[5] else _dim("-"))
        table.add_row(*(cell for i, cell in enumerate(cells) if show[i]))
    return table


# -- one conversation -------------------------------------------------------------------------


def conversation(ui: UI, conv: Conversation, messages: Sequence[Message], title: str) -> None:
    """The whole conversation on a terminal: answers rendered as markdown."""
    from rich.rule import Rule
    from rich.text import Text

    console = ui.console("out")
    console.print(_text(title, "bold"))
    about = [conv.id, conv.model or "default model"]
    about += [f"{len(messages)} message{'s' * (len(messages) != 1)}"]
    about += [f"{utc_time(conv.created)} → {utc_time(conv.updated)}"]
    console.print(_dim(" · ".join(about)))
    for n, m in enumerate(messages, 1):
        console.print()
        heading = Text(f"{n} · ", style="bold")
        heading.append(_text(_role_label(m), _ROLE_STYLE.get(m.role, "bold")))
        console.print(Rule(heading, align="left", style="dim"))
        for block in _blocks(m):
            console.print(block)


_ROLE_STYLE = {
    "system": "bold magenta",
    "user": "bold cyan",
    "assistant": "bold green",
    "tool": "bold yellow",
}


def _role_label(m: Message) -> str:
    label = m.role
    if m.role == "tool" and (m.name or m.tool_call_id):
        label += " · " + " ".join(
            x for x in (m.name, m.tool_call_id and f"({m.tool_call_id})") if x
        )
    if m.role == "assistant" and m.model:
        label += f" · {m.model}"
    if m.partial:
        label += " (partial answer)"
    return one_line(label)


def _blocks(m: Message) -> list[RenderableType]:
    out: list[RenderableType] = []
    parts = m.content if isinstance(m.content, list) else [m.content]
    for part in parts:
        if part is None:
            continue
        if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text"):
            text = part if isinstance(part, str) else text_of([part])
            if m.role == "assistant":
                out.append(_markdown(text))
            else:
                out.append(_text(text, "dim" if m.role in ("system", "tool") else ""))
        else:
            out.append(_dim(f"[{_describe_part(part)}]"))
    for call in m.tool_calls or []:
        out.append(_tool_call(call))
    return out


def _describe_part(part: Any) -> str:
    if not isinstance(part, dict):
        return "part"
    kind = str(part.get("type", "part"))
    if kind == "image_url":
        inner = part.get("image_url")
        url = inner.get("url") if isinstance(inner, dict) else inner
        if isinstance(url, str) and url.startswith("data:"):
            head, _, data = url.partition(",")
            mime = head[5:].split(";")[0] or "image"
            size = len(data)
            if head.endswith(";base64"):
                size = size * 3 // 4 - (size - len(data.rstrip("=")))
            return f"image: {one_line(mime)}, {_size(size)}"
        return f"image: {one_line(str(url))}"
    return one_line(kind)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def _tool_call(call: Any) -> Text:
    from rich.text import Text

    function = call.get("function") if isinstance(call, dict) else None
    function = function if isinstance(function, dict) else {}
    line = Text("→ tool call ", style="yellow")
    line.append(_text(one_line(str(function.get("name") or "?")), "bold"))
    line.append(" ")
    line.append(_text(str(function.get("arguments") or "")))
    call_id = call.get("id") if isinstance(call, dict) else None
    if call_id:
        line.append(_dim(f"  ({one_line(str(call_id))})"))
    return line


def _markdown(text: str) -> RenderableType:
    """Markdown of (escaped) model text; a single newline stays a line break, links show
    their address instead of hiding it behind the text."""
    from rich.markdown import Markdown

    md = Markdown(printable(text), hyperlinks=False)
    stack = list(md.parsed)
    while stack:
        token = stack.pop()
        if token.type == "softbreak":
            token.type = "hardbreak"
        stack.extend(token.children or ())
    return md


# -- search hits ------------------------------------------------------------------------------


def hits(ui: UI, found: Sequence[Hit]) -> None:
    """Newest first. Piped: conversation id, message number, role, snippet; tab-separated."""
    if not ui.out_tty:
        ui.write(
            "".join(
                f"{h.conversation.id}\t{h.message}\t{h.role}\t{one_line(h.snippet)}\n"
                for h in found
            )
        )
        return
    from rich.text import Text

    console = ui.console("out")
    for i, h in enumerate(found):
        if i:
            console.print()
        line = Text()
        line.append(_text(h.title, "bold"))
        about = f"  {h.conversation.id} · message {h.message} · {h.role}"
        about += " (partial)" * h.partial + f" · {utc_time(h.created)}"
        line.append(_dim(about))
        console.print(line)
        snippet = Text("  ")
        start = 0
        for a, b in (*h.highlights, (len(h.snippet), len(h.snippet))):
            snippet.append(_text(_SPACES.sub(" ", h.snippet[start:a])))
            snippet.append(_text(_SPACES.sub(" ", h.snippet[a:b]), "bold yellow"))
            start = b
        console.print(snippet)


# -- asking -----------------------------------------------------------------------------------


def can_ask(ui: UI, env: Environment) -> bool:
    """Whether a question can be put to a person: stdin and stderr are terminals."""
    return ui.err_tty and env.stdin_isatty and env.stdin is not None


def confirm(ui: UI, env: Environment, question: str, items: Sequence[str]) -> bool:
    """List ``items`` (escaped) and ask ``question [y/N]`` on stderr; True for y or yes."""
    from rich.text import Text

    console = ui.console("err")
    for item in items:
        console.print(Text("  ") + _text(item))
    console.print(Text(f"{question} [y/N] "), end="")
    raw = env.stdin.readline(4096) if env.stdin is not None else b""
    answer = raw.decode("utf-8", "replace")
    if not answer.endswith("\n"):
        console.print()
    return answer.strip().lower() in ("y", "yes")
