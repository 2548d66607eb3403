"""``llmost models``: list and search the server's models, show one in full.

``llmost models [SEARCH]...`` is short for ``llmost models list [SEARCH]...``. A group callback
cannot take the positional SEARCH: click parses a group's own arguments before it looks for a
subcommand, so ``models show X`` would read ``show`` as the search term and fail on ``X``.
Instead the group routes any first word that is not a subcommand (or help) to ``list``: the
"default command" pattern of click-default-group, as simonw/llm uses for ``llm models``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from llmost_cli.cli.state import State

from llmost_cli.cli import services
from llmost_cli.cli.options import state_of
from llmost_cli.core import catalog, models
from llmost_cli.core.settings import Settings


class _ListByDefault(TyperGroup):
    default_command = "list"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        help_names = ctx.help_option_names if ctx is not None else ()
        if not args or (args[0] not in self.commands and args[0] not in help_names):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """``llmost models --help`` lists what ``llmost models [SEARCH]...`` takes: the
        arguments and options of ``list`` (the group's own option is only --help), then the
        commands."""
        listing = self.commands.get(self.default_command)
        if listing is None:
            super().format_options(ctx, formatter)
            return
        listing.format_options(type(ctx)(listing, parent=ctx, info_name="list"), formatter)
        self.format_commands(ctx, formatter)


MODELS_HELP = """List the server's models, or show one in full.

'llmost models [SEARCH]... [OPTIONS]' is short for 'llmost models list ...' (say 'list'
explicitly to search for the word "show" or "list"). The list is cached for an hour per
base URL.

\b
Examples:
  llmost models claude                 # ids and names containing "claude"
  llmost models --vision --tools       # models that read images and call tools
  llmost models show openai/gpt-4o
"""

LIST_HELP = """List models; each word of SEARCH must appear in the id or the name (any case).

On a terminal: a table, sorted by id. Piped: one model per line, tab-separated, with no
header line: id, context length, prompt price and completion price per million tokens, input
modalities (comma-separated). "-" marks an unknown value, "0" a free model. The list is
cached for an hour per base URL; --refresh fetches it again.

\b
Examples:
  llmost models llama --tools
  llmost models | cut -f1 | grep :free
  llmost models --json --vision | jq -r '.[].id'
"""

SHOW_HELP = """Show every field of one model, with prices per token and per million tokens.

MODEL_ID is an id, or a part of one that only one id contains ('gemma'). An unknown
MODEL_ID is an error (exit 2) that suggests close ids; one that several ids contain is an
error (exit 2) that lists them.

\b
Examples:
  llmost models show anthropic/claude-3.5-sonnet
  llmost models show openai/gpt-4o --json | jq .pricing
"""

models_app = typer.Typer(
    rich_markup_mode=None,
    cls=_ListByDefault,
    help=MODELS_HELP,
    subcommand_metavar="[SEARCH]... | COMMAND [ARGS]...",
)


def _context(ctx: typer.Context) -> tuple[Settings, models.Fetcher, State]:
    """Settings, a fetcher for GET /models (the key is sent when there is one), the state."""
    state = state_of(ctx)
    settings = services.settings_for(state)

    def fetch() -> Iterator[Any]:
        key = services.api_key(settings, required=False)
        with services.make_client(state, settings, key) as client:
            yield from client.model_entries()

    return settings, fetch, state


@models_app.command("list", help=LIST_HELP)
def list_cmd(
    ctx: typer.Context,
    search: Annotated[
        list[str] | None,
        typer.Argument(metavar="SEARCH", help="Words to look for in the id or name."),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the model objects as a JSON array.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Fetch the list again instead of the cache.")
    ] = False,
    vision: Annotated[
        bool, typer.Option("--vision", help="Only models that take images as input.")
    ] = False,
    tools: Annotated[
        bool, typer.Option("--tools", help="Only models that support tool calling.")
    ] = False,
) -> None:
    from llmost_cli.ui import tables as render_tables

    settings, fetch, state = _context(ctx)
    log = services.debug_log(state)
    ui = state.ui
    with models.load(settings, refresh=refresh, log=log, fetcher=fetch) as listing:
        gc.freeze()  # a long list lives until exit: the cyclic GC need not scan it again
        if listing.dropped:
            ui.warn(
                f"{listing.dropped:,} models of the list at {settings.base_url} were left "
                f"out: llmost keeps at most {catalog.MAX_MODELS:,} models (and "
                f"{catalog.KEPT_LIMIT >> 20} MiB of their ids and names), with ids of up to "
                f"{catalog.ID_LIMIT} bytes"
            )
        chosen = models.select(listing.records, " ".join(search or []), vision=vision, tools=tools)
        if json_:
            ui.json_array(listing.texts(chosen), pretty=ui.out_tty)
        elif chosen:
            render_tables.models_table(ui, (models.Summary.of(m) for m in chosen))
        if not chosen:
            ui.note(f"no models match (of {len(listing.records)} at {settings.base_url})")


@models_app.command("show", help=SHOW_HELP)
def show_cmd(
    ctx: typer.Context,
    model_id: Annotated[
        str, typer.Argument(metavar="MODEL_ID", help="A model id, e.g. openai/gpt-4o.")
    ],
    json_: Annotated[bool, typer.Option("--json", help="Print the model object as JSON.")] = False,
) -> None:
    from llmost_cli.ui import tables as render_tables

    settings, fetch, state = _context(ctx)
    model = models.lookup(settings, model_id, log=services.debug_log(state), fetcher=fetch)
    ui = state.ui
    if json_:
        ui.json(model, pretty=ui.out_tty)
    else:
        render_tables.model_detail(ui, models.detail_fields(model), models.description(model))
