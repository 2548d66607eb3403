"""The terminal side of ``llmost chat``: the only module that imports prompt_toolkit.

Enter sends, Alt-Enter (Esc Enter) inserts a newline, a bracketed paste keeps its newlines,
Ctrl-R searches the persistent history, Tab completes slash commands (and model ids after
``/model`` when a model list is cached). Ctrl-C clears the line; Ctrl-D on an empty line ends
the input. What the lines mean is ``chat.Session``'s business.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output.defaults import create_output

from llmost_cli import paths

PROMPT = "> "
CONTINUATION = ". "


def read_lines(
    commands: Sequence[str], base_url: str, *, warn: Callable[[str], None]
) -> Iterator[str]:
    """What is typed at the prompt, one input at a time, until Ctrl-D."""
    session: PromptSession[str] = PromptSession(
        history=open_history(warn),
        completer=SlashCompleter(commands, lambda: cached_model_ids(base_url)),
        complete_while_typing=False,
        key_bindings=key_bindings(),
        multiline=False,  # Enter sends; Esc Enter and pastes still give several lines
        prompt_continuation=CONTINUATION,
        enable_suspend=True,  # Ctrl-Z suspends, as in a shell
        enable_open_in_editor=True,  # Ctrl-X Ctrl-E: compose in $VISUAL/$EDITOR
        # The prompt belongs on the terminal even when stdout is redirected to a file.
        output=create_output(always_prefer_tty=True),
    )
    while True:
        try:
            yield session.prompt(PROMPT)
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            return


def key_bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("escape", "enter")  # also what terminals send for Alt-Enter
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return kb


def open_history(warn: Callable[[str], None]) -> History:
    """The input history file (0600: it holds everything typed), or memory when unusable."""
    path = paths.history_file()
    try:
        paths.ensure_private_dir(path.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        return _KeptHistory(str(path), warn)
    except OSError as exc:
        warn(f"cannot use the history file {path}: {exc.strerror}; history is not kept")
        return InMemoryHistory()


class _KeptHistory(FileHistory):
    """The history file; when it cannot be written (disk full), one warning, then memory."""

    def __init__(self, filename: str, warn: Callable[[str], None]) -> None:
        super().__init__(filename)
        self._warn = warn
        self._broken = False

    def store_string(self, string: str) -> None:
        if self._broken:
            return
        try:
            super().store_string(string)
        except OSError as exc:
            self._broken = True
            self._warn(
                f"cannot write the history file {self.filename!r}: {exc.strerror}; "
                "this session's input is kept in memory only"
            )


class SlashCompleter(Completer):
    def __init__(self, commands: Sequence[str], model_ids: Callable[[], Sequence[str]]) -> None:
        self._commands = commands
        self._model_ids = model_ids

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        for replacement, start in completions(text, self._commands, self._model_ids):
            yield Completion(replacement, start_position=start)


def completions(
    text: str, commands: Sequence[str], model_ids: Callable[[], Sequence[str]]
) -> list[tuple[str, int]]:
    """Slash commands, and model ids after ``/model ``: (replacement, start offset <= 0)."""
    if not text.startswith("/"):
        return []
    name, space, rest = text.partition(" ")
    if not space:
        return [(c, -len(text)) for c in commands if c.startswith(text.lower())]
    if name.lower() != "/model" or " " in rest:
        return []
    ids = model_ids()
    ranked = [i for i in ids if i.startswith(rest)]
    ranked += [i for i in ids if rest in i and not i.startswith(rest)]
    return [(i, -len(rest)) for i in ranked]


def cached_model_ids(base_url: str) -> list[str]:
    """Read on each completion: another llmost (``models``) may refresh the cache meanwhile."""
    from llmost_cli.core import models

    try:
        return models.cached_model_ids(base_url)
    except Exception:  # a broken cache completes nothing; it must never end the REPL
        return []


def yes_no(question: str) -> bool | None:
    """Ask on the terminal: only y or yes says yes, Enter says no; Ctrl-C or Ctrl-D cancel
    (None): the whole turn stops, not just this call."""
    session: PromptSession[str] = PromptSession(output=create_output(always_prefer_tty=True))
    try:
        answer = session.prompt(f"{question} [y/N] ")
    except (KeyboardInterrupt, EOFError):
        return None
    return answer.strip().lower() in ("y", "yes")
