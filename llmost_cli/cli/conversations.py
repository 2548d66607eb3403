"""``llmost conversations`` (alias ``llmost conv``): list, show, search, export, import, rm,
rename, fork.

``llmost conversations [OPTIONS]`` is short for ``llmost conversations list [OPTIONS]``: the
group routes an empty command line, or one that starts with an option, to ``list`` (as
``llmost models`` does). Each command parses, calls the store and core/transcript.py, and hands
the result to ui/transcript.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from llmost_cli.errors import StoreError, UsageError

if TYPE_CHECKING:
    from llmost_cli.core.messages import Conversation
    from llmost_cli.store.store import Store
    from llmost_cli.ui.output import UI


class _ListByDefault(TyperGroup):
    default_command = "list"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        help_names = ctx.help_option_names if ctx is not None else ()
        if not args or (args[0].startswith("-") and args[0] not in help_names):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


HELP = """Stored conversations: list, show, search, export, import, delete, rename, fork.

Every exchange of ask and chat is stored. REF names a conversation: its id, the start of its
id (any case, when only one id starts so), its name, or 'last' (the one updated last). The
messages are numbered from 1 (the system prompt counts), as 'show' prints them.

\b
Examples:
  llmost conv                              # the 20 most recent ('conv' is short)
  llmost conv show last | less
  llmost conv search connection pool
  llmost conv export --all -o backup.json
"""

conversations_app = typer.Typer(
    rich_markup_mode=None,
    cls=_ListByDefault,
    help=HELP,
    subcommand_metavar="COMMAND [ARGS]...",
)

Ref = Annotated[str, typer.Argument(metavar="REF", help="An id, id prefix, name, or 'last'.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (strict) instead.")]


class Format(StrEnum):
    markdown = "markdown"
    json = "json"


def _open() -> Store:
    from llmost_cli import paths
    from llmost_cli.store.store import Store

    return Store(paths.database_file())


def _ui() -> UI:
    from llmost_cli.cli.state import current

    return current().ui


def _text(ui: UI, text: str) -> None:
    """Markdown on stdout: exact when piped, control characters made visible on a terminal."""
    from llmost_cli.core import transcript

    ui.write(transcript.printable(text) if ui.out_tty else text)


def _json(ui: UI, value: Any) -> None:
    from llmost_cli.core import transcript

    ui.write(transcript.dumps(value, pretty=ui.out_tty) + "\n")


@conversations_app.command("list")
def list_cmd(
    limit: Annotated[
        int, typer.Option("-n", "--limit", metavar="N", min=0, help="How many; 0: all.")
    ] = 20,
    json_: Json = False,
) -> None:
    """List conversations, most recently updated first.

    On a terminal: a table. Piped: one per line, tab-separated: id, name, model, updated
    (UTC, ISO 8601), turns (questions asked), first words; "-" for no name or model.

    \b
    Examples:
      llmost conv list -n 5
      llmost conv list -n 0 | grep -i invoice | cut -f1
      llmost conv list --json | jq -r '.[] | select(.turns > 10) | .id'
    """
    with _open() as store:
        summaries = store.summaries(limit or None)
    from llmost_cli.ui import transcript as render

    ui = _ui()
    if json_:
        _json(ui, [s.to_json() for s in summaries])
    elif summaries:
        render.conversation_list(ui, summaries, time.time())
    else:
        ui.note("no conversations yet")


@conversations_app.command("show")
def show_cmd(
    ref: Ref,
    json_: Json = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the markdown export, even on a terminal.")
    ] = False,
) -> None:
    """Show one conversation: rendered on a terminal, as markdown when piped.

    The markdown is the export format (see 'export --help'); --json prints the export object.

    \b
    Examples:
      llmost conv show last
      llmost conv show refactor --markdown > refactor.md
      llmost conv show 01J0V3 --json | jq -r '.messages[-1].content'
    """
    from llmost_cli.core import transcript, transcript_md

    if json_ and markdown:
        raise UsageError("--json and --markdown cannot be used together")
    with _open() as store:
        conv = store.resolve(ref)
        messages, tools = store.messages(conv.id), store.tools(conv.id)
    ui = _ui()
    if json_:
        _json(ui, transcript.to_json(conv, messages, tools))
    elif markdown or not ui.out_tty:
        _text(ui, transcript_md.to_markdown(conv, messages, tools))
    else:
        from llmost_cli.ui import transcript as render

        render.conversation(ui, conv, messages, transcript.title_of(conv, messages))


@conversations_app.command("search")
def search_cmd(
    text: Annotated[list[str], typer.Argument(metavar="TEXT...", help="Words to find.")],
    limit: Annotated[
        int, typer.Option("-n", "--limit", metavar="N", min=1, help="At most N hits.")
    ] = 20,
    json_: Json = False,
) -> None:
    """Find questions and answers (partial ones too) that contain every word, newest first.

    Words match whole words in any case and without accents; "a phrase in quotes" must
    appear as such; a word ending in * matches words that start with it. On a terminal the
    matches are highlighted; piped, each hit is one line, tab-separated: conversation id,
    message number, role, snippet.

    \b
    Examples:
      llmost conv search postgres timeout
      llmost conv search '"connection pool"' 'retr*'
      llmost conv search invoice --json | jq -r '.[].conversation' | sort -u
    """
    with _open() as store:
        found = store.search(" ".join(text), limit)
    from llmost_cli.ui import transcript as render

    ui = _ui()
    if json_:
        _json(ui, [h.to_json() for h in found])
    elif found:
        render.hits(ui, found)
    else:
        ui.note("no message contains all of that")


@conversations_app.command("export")
def export_cmd(
    refs: Annotated[
        list[str] | None, typer.Argument(metavar="[REF]...", help="What to export.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every conversation, oldest first.")] = False,
    format_: Annotated[
        Format | None,
        typer.Option(
            "--format",
            metavar="markdown|json",
            help="Default: json when FILE ends in .json or .jsonl, else markdown.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE", help="Write FILE (whole, mode 0600)."),
    ] = None,
) -> None:
    """Export conversations as markdown or JSON, which 'import' reads back.

    Markdown: headings per message and the text as it was written, for people; the exact
    data (roles, model, times, tool calls and results, partial answers, names) sits in
    <!-- llmost:... --> comments that renderers hide. Images are written as references
    (llmost-image:sha256:...) with their data once at the end of each conversation, so the
    file is self-contained. JSON: one object per conversation per line, with "format":
    "llmost-conversation", "version": 1, id, name, model, created, updated (seconds since
    the epoch), tools, and messages (role, content, tool_calls, tool_call_id, name, prefill,
    finish_reason, usage, partial, model, created); images inline as data: URLs.

    \b
    Examples:
      llmost conv export last > chat.md
      llmost conv export --all -o backup.json
      llmost conv export refactor 01J0V3 --format json | jq .name
    """
    if bool(refs) == all_:
        raise UsageError("give the conversations to export (REF...) or --all, not both")
    if format_ is None:
        suffix = output.suffix.lower() if output else ""
        format_ = Format.json if suffix in (".json", ".jsonl") else Format.markdown
    with _open() as store:
        ids = store.ids() if all_ else list(dict.fromkeys(store.resolve(r).id for r in refs or []))
        damaged: list[str] = []
        chunks = _export(store, ids, format_, damaged)
        if output is None:
            ui = _ui()
            for chunk in chunks:
                _text(ui, chunk)
        else:
            from llmost_cli.store import files

            files.write(output, chunks)
    if damaged:
        raise StoreError(
            f"{len(damaged)} damaged conversation{'s' * (len(damaged) > 1)} left out: "
            + ", ".join(damaged),
            hint="'llmost conversations show ID' says what is wrong",
        )


def _export(store: Store, ids: list[str], format_: Format, damaged: list[str]) -> Iterator[str]:
    from llmost_cli.core import transcript, transcript_md

    first = True
    for conversation_id in ids:
        conv = store.get(conversation_id)
        if conv is None:
            continue  # deleted meanwhile
        try:
            messages = store.messages(conv.id)
        except StoreError as exc:
            _ui().warn(str(exc))
            damaged.append(conv.id)
            continue
        tools = store.tools(conv.id)
        if format_ is Format.json:
            yield transcript.dumps(transcript.to_json(conv, messages, tools)) + "\n"
        else:
            yield ("" if first else "\n---\n\n") + transcript_md.to_markdown(conv, messages, tools)
        first = False


@conversations_app.command("import")
def import_cmd(
    file: Annotated[str, typer.Argument(metavar="FILE", help="An export; - reads stdin.")],
) -> None:
    """Import conversations from a file written by 'export' (markdown or JSON).

    Ids, names and times are kept. A conversation that is already in the store with the same
    messages is skipped; an id in use by a different one gets a new id, and a name in use gets
    " (2)". The ids of the imported conversations are printed, one per line.

    \b
    Examples:
      llmost conv import backup.json
      llmost conv export last | ssh laptop llmost conv import -
    """
    from llmost_cli.core import transcript_md
    from llmost_cli.store import files

    stdin = _stdin_bytes() if file == "-" else None
    docs = transcript_md.parse(files.read(file, stdin), "standard input" if file == "-" else file)
    ui = _ui()
    with _open() as store:
        _resolve_images(store, docs, file)
        results = [store.add(d.conversation, d.messages, d.tools) for d in docs]
    ui.write("".join(r.conversation.id + "\n" for r in results))
    for r, d in zip(results, docs, strict=True):
        if r.status == "copied" and d.conversation.id:
            ui.note(f"id {d.conversation.id} was taken: imported as {r.conversation.id}")
        if r.renamed_from is not None:
            ui.note(f"name {r.renamed_from!r} was taken: imported as {r.conversation.name!r}")
    present = sum(r.status == "present" for r in results)
    ui.note(
        f"imported {len(results) - present} conversation{'s' * (len(results) - present != 1)}"
        + (f"; {present} already in the store" if present else "")
    )


def _stdin_bytes() -> bytes:
    from llmost_cli.cli.state import current
    from llmost_cli.core.inputs import MAX_STDIN_BYTES, TooLarge, read_limited

    stdin = current().env.stdin
    try:
        return read_limited(stdin, MAX_STDIN_BYTES) if stdin is not None else b""
    except TooLarge:
        raise UsageError("standard input is larger than 64 MiB, the limit for import") from None


def _resolve_images(store: Store, docs: list[Any], file: str) -> None:
    """Image references of a markdown file: its own data, else images already stored."""
    from llmost_cli.store import images

    missing = set().union(*(d.missing_images() for d in docs))
    known = store.image_urls(sorted(missing)) if missing else {}
    try:
        for d in docs:
            d.resolve(known)
    except images.MissingImage as exc:
        raise UsageError(
            f"{file} refers to image sha256:{exc.digest} but does not hold its data"
        ) from None


@conversations_app.command("rm")
def rm_cmd(
    refs: Annotated[
        list[str] | None, typer.Argument(metavar="[REF]...", help="What to delete.")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", metavar="AGE", help="Not updated for AGE: 12h, 30d, 2w."),
    ] = None,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask (for scripts).")] = False,
) -> None:
    """Delete conversations (asks first on a terminal; scripts pass --yes).

    A fork keeps its messages when the conversation it came from is deleted; images are
    deleted when no message uses them any more.

    \b
    Examples:
      llmost conv rm last
      llmost conv rm --older-than 90d
      llmost conv rm scratch 01J0V3 --yes
    """
    from llmost_cli.core import transcript

    if bool(refs) == (older_than is not None):
        raise UsageError("give the conversations to delete (REF...) or --older-than, not both")
    ui = _ui()
    with _open() as store:
        if older_than is not None:
            targets = store.older_than(time.time() - transcript.duration(older_than))
        else:
            targets = list({c.id: c for c in (store.resolve(r) for r in refs or [])}.values())
        if not targets:
            ui.note(f"no conversation was updated more than {older_than} ago")
            return
        if not yes and not _confirmed(ui, store, targets):
            return
        deleted = store.delete_many([c.id for c in targets])
    ui.note(f"deleted {deleted} conversation{'s' * (deleted != 1)}")


def _confirmed(ui: UI, store: Store, targets: list[Conversation]) -> bool:
    from llmost_cli.ui import transcript as render

    count = f"{len(targets)} conversation{'s' * (len(targets) != 1)}"
    from llmost_cli.cli.state import current

    env = current().env
    if not render.can_ask(ui, env):
        raise UsageError(
            f"not deleting {count} without --yes: standard input is not a terminal to ask on"
        )
    shown = [f"{c.id}  {store.title(c)}" for c in targets[:10]]
    if len(targets) > 10:
        shown.append(f"… and {len(targets) - 10} more")
    if render.confirm(ui, env, f"Delete {count}?", shown):
        return True
    ui.note("nothing deleted")
    return False


@conversations_app.command("rename")
def rename_cmd(
    ref: Ref,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new name.")],
) -> None:
    """Give a conversation a name (a REF from then on, and what --session NAME resumes).

    \b
    Examples:
      llmost conv rename last refactor
      llmost chat --session refactor
    """
    from llmost_cli.core import transcript

    transcript.check_name(name)
    with _open() as store:
        conv = store.resolve(ref)
        if conv.name != name and store.name_taken(name):
            raise UsageError(f"a conversation named {name!r} already exists")
        store.rename(conv.id, name)
    _ui().note(f"{conv.id} is named {transcript.printable(name)!r}")


@conversations_app.command("fork")
def fork_cmd(
    ref: Ref,
    at: Annotated[
        int | None,
        typer.Option("--at", metavar="N", min=0, help="Keep the first N messages (default: all)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Name the new conversation.")
    ] = None,
) -> None:
    """Start a new conversation from the first N messages of another; print its id.

    The fork owns a copy of those messages: deleting either conversation leaves the other
    whole. It keeps the model and the tools offered.

    \b
    Examples:
      llmost conv show last                     # the messages, numbered
      llmost conv fork last --at 3 --name try2  # keep 1-3, then answer differently:
      llmost ask --session try2 "shorter, please"
    """
    from llmost_cli.core import transcript

    if name is not None:
        transcript.check_name(name)
    with _open() as store:
        conv = store.resolve(ref)
        if name is not None and store.name_taken(name):
            raise UsageError(f"a conversation named {name!r} already exists")
        new = store.fork(conv.id, at, name=name)
        title = store.title(conv)
    ui = _ui()
    ui.write(new.id + "\n")
    where = f" at message {at}" if at is not None else ""
    ui.note(f"forked '{transcript.printable(title)}'{where}")


def register(app: typer.Typer) -> None:
    """Add the group to ``app`` as ``conversations`` and ``conv``."""
    app.add_typer(conversations_app, name="conversations")
    app.add_typer(conversations_app, name="conv", help="Short for 'llmost conversations'. " + HELP)
