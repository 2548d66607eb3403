"""``llmost ask``: one question, answered and stored."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from llmost_cli.cli import services
from llmost_cli.cli.flags import OutputFormat
from llmost_cli.core.turn import run_turn
from llmost_cli.ui.turnview import TurnScreen

if TYPE_CHECKING:
    from llmost_cli.cli.state import State
    from llmost_cli.core.ask import AskOptions
    from llmost_cli.core.messages import Thread
    from llmost_cli.core.settings import Settings
    from llmost_cli.core.turn import TurnResult

ASK_HELP = """Ask one question and print the answer.

Standard input, when it is not a terminal, is added after the prompt. The message reads:
the prompt, then each -f attachment as a fenced block headed by its path or URL, then stdin.

\b
Examples:
  git diff | llmost ask "review this change"
  llmost ask -f src/ -f https://example.com/api.html "where is the config read?"
  git diff | llmost ask -T review -v focus=security
  llmost ask -i screenshot.png "what does this error mean?"
  llmost ask --prefill '{"' -o json "three colours as JSON" | jq -r .content
"""


def ask(state: State, values: dict[str, Any]) -> int:
    """Run ``ask`` with the values of its options (cli/flags.py), as typer would pass them."""
    from llmost_cli.core.ask import AskOptions

    output = values.get("output") or OutputFormat.text
    state.json_errors = output is OutputFormat.json
    given = {k: v for k, v in values.items() if v is not None}
    return run_ask(state, AskOptions.build(given | {"output": output.value}))


def run_ask(state: State, opts: AskOptions) -> int:
    """Check everything, read the conversation, ask, then store and report by one rule."""
    from llmost_cli.api.fetch import make_fetch
    from llmost_cli.core import ask as core
    from llmost_cli.core import templates

    env, ui = state.env, state.ui
    settings = services.settings_for(state, opts.overrides())
    opts, settings, template = templates.prepare(opts, settings)
    stdin = env.stdin if not env.stdin_isatty else None
    fetch = make_fetch(settings.timeout, log=services.debug_log(state))
    question = core.read_question(
        opts, settings, stdin, ui.warn, fetch=fetch, template=template, note=ui.note
    )
    key = None if opts.dry_run else services.api_key(settings)
    continues = opts.continue_ or bool(opts.session)
    with services.store_for(
        state, continue_=opts.continue_, session=opts.session, enabled=continues or not opts.dry_run
    ) as store:
        thread = services.load_thread(store, continue_=opts.continue_, session=opts.session)
        settings = services.keep_model(settings, thread)
        if opts.tool_result and store is not None and thread.conversation and not question.offered:
            question = replace(question, offered=tuple(store.tools(thread.conversation.id) or ()))
        turn = core.compose_turn(opts, settings, question, thread.messages)
        if opts.dry_run:
            ui.json(turn.first_body(), pretty=True)
            return 0
        announce(state, thread)
        recorder = services.StoreRecorder(
            store, thread, model=lambda: settings.model, warn=ui.warn, tools=turn.offered
        )
        screen = TurnScreen(
            ui,
            markdown=use_markdown(settings),
            quiet=opts.json_output or opts.extracts,
            reasoning=opts.show_reasoning is not False,
        )
        with services.make_client(state, settings, key) as client:
            result = run_turn(turn, client, screen, recorder)
    return report(state, opts, settings, result)


def announce(state: State, thread: Thread) -> None:
    """``-c``/``--session`` say which conversation goes on, by name or first words."""
    conv = thread.conversation
    if conv is not None and state.env.stderr_isatty:
        state.ui.note(f"continuing {services.title(conv, thread.messages)}")


def use_markdown(settings: Settings) -> bool:
    return settings.markdown if settings.markdown is not None else True


def report(state: State, opts: AskOptions, settings: Settings, result: TurnResult) -> int:
    """Print the outcome of a finished (or cut off) ask; raise its error for the boundary."""
    from llmost_cli.core import ask as core

    ui = state.ui
    reply = result.reply
    cost = answer_cost(result, settings) if (opts.usage or opts.json_output) else None
    error = core.outcome_error(result, opts)
    if error is not None:
        if opts.json_output and (reply.text or reply.tool_calls or result.conversation):
            error.details = core.result_json(result, cost)
        if opts.usage:
            ui.usage(result.usage, cost)
        raise error
    if opts.json_output:
        ui.json(core.result_json(result, cost))
    elif opts.extracts:
        ui.write(core.extract_block(reply.text, opts.block or 1))
    if reply.finish_reason in ("length", "content_filter"):
        why = "max_tokens reached" if reply.finish_reason == "length" else "content filter"
        ui.warn(f"the answer was cut off ({reply.finish_reason}: {why})")
    elif reply.empty and not reply.prefill:
        ui.warn("the model returned an empty answer")
    if opts.usage:
        ui.usage(result.usage, cost)
    return 0


def answer_cost(result: TurnResult, settings: Settings) -> float | None:
    """From ``usage.cost`` or the cached prices; the model that answered may carry a dated id
    that is not in the list, so the requested model is the fallback."""
    from llmost_cli.core.models import session_cost

    if not result.usages:
        return None
    cost = session_cost(result.usages, settings.base_url)
    if cost is None and settings.model:
        cost = session_cost([(u, settings.model) for u, _ in result.usages], settings.base_url)
    return cost
