"""``llmost conversations`` (and ``llmost conv``) end to end, in-process through main.run.

The store is filled directly with ``Store(paths.database_file())``; XDG_DATA_HOME is per test
(conftest). "On a terminal" is a UI whose stdout claims to be a terminal, drawing into the
captured stdout: rich then writes plain text, which is what the escaping checks need.
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmost_cli import main, paths
from llmost_cli.core import transcript_md
from llmost_cli.core.messages import Conversation, Message
from llmost_cli.env import Environment
from llmost_cli.store.store import Store
from tests.conftest import Result, Runner

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)
ESC = "\x1b"
DATA_ESCAPES = ("\x1b[31m", "\x1b]", "\x9b", "\x07")  # what the model's text carried


def clean(text: str) -> bool:
    """No escape sequence of the data reached the output (the renderer's own styles may)."""
    return not any(seq in text for seq in DATA_ESCAPES)


CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Москва"}'},
    }
]


Run = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run llmost in-process: ``cli(*args, input=b"", tty=False, stdin_tty=False)``."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")  # rich's own styles stay; the data's colours must not

    def run(*args: str, input: bytes = b"", tty: bool = False, stdin_tty: bool = False) -> Result:
        out, err = io.BytesIO(), io.StringIO()
        env = Environment(
            stdin=io.BytesIO(input),
            stdout=out,
            stderr=err,
            stdin_isatty=stdin_tty,
            stdout_isatty=tty,
            stderr_isatty=stdin_tty,
            environ=os.environ,
        )
        rc = main.run(list(args), env)
        raw = out.getvalue()
        return Result(rc, raw.decode("utf-8", "replace"), err.getvalue(), raw)

    return run


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(paths.database_file()) as s:
        yield s


def populate(store: Store) -> dict[str, Conversation]:
    """weather (named; images, tool calls, a partial answer), evil (control characters and
    markup from the model), plain (oldest, unnamed)."""
    plain = store.create(model="meta/llama-3")
    store.append(
        plain.id, [Message("user", "How do I rebase?"), Message("assistant", "git rebase")]
    )
    evil = store.create(model=f"evil/{ESC}[31mmodel")
    store.append(
        evil.id,
        [
            Message("user", f"Colour {ESC}[31mred{ESC}[0m and [bold]markup[/bold]?"),
            Message("assistant", f"Sure: {ESC}]52;c;aGk={ESC}\\ [red]not red[/red] \x9b2J done"),
        ],
    )
    weather = store.create(name="weather", model="openai/gpt-4o")
    store.set_tools(weather.id, [{"type": "function", "function": {"name": "get_weather"}}])
    store.append(
        weather.id,
        [
            Message("system", "You are terse."),
            Message(
                "user",
                [
                    {"type": "text", "text": "What is this? And the weather in Moscow?"},
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                ],
            ),
            Message("assistant", None, tool_calls=CALLS, finish_reason="tool_calls"),
            Message("tool", '{"temp_c": -3}', tool_call_id="call_1", name="get_weather"),
            Message("assistant", "A white pixel.\nIt is **-3 °C** in Moscow", partial=True),
        ],
    )
    return {"plain": plain, "evil": evil, "weather": weather}


def _common(a: str, b: str) -> int:
    """The length of the prefix two ids share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))


def strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def one_error(r: Result, code: int, *needles: str) -> None:
    assert r.rc == code, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmost: error: "), r
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in r.stderr, r


# -- list ---------------------------------------------------------------------------------------


def test_list_piped_is_tab_separated_newest_first(cli: Run, store: Store) -> None:
    c = populate(store)
    r = cli("conversations", "list")
    assert r.rc == 0 and r.stderr == ""
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == [c["weather"].id, c["evil"].id, c["plain"].id]
    assert rows[0][1:3] == ["weather", "openai/gpt-4o"]
    assert rows[0][4:] == ["1", "What is this? And the weather in Moscow?"]
    assert rows[2][1] == "-" and rows[2][3].endswith("Z") and rows[2][4] == "1"
    assert all(len(row) == 6 for row in rows)
    # the default command, the alias, and the limit
    assert cli("conversations").stdout == r.stdout
    assert cli("conv").stdout == r.stdout
    assert cli("conv", "-n", "1").stdout.splitlines() == r.stdout.splitlines()[:1]
    assert cli("conv", "list", "--limit", "0").stdout == r.stdout


def test_list_json_is_strict(cli: Run, store: Store) -> None:
    c = populate(store)
    conn = sqlite3.connect(paths.database_file())
    conn.execute("UPDATE conversations SET updated = 1e999 WHERE id = ?", (c["plain"].id,))
    conn.commit()
    conn.close()
    r = cli("conv", "--json")
    got = strict(r.stdout)
    assert [e["id"] for e in got][:2] == [c["plain"].id, c["weather"].id]
    assert got[0]["updated"] is None  # infinity is not JSON
    assert set(got[1]) == {
        "id",
        "name",
        "title",
        "model",
        "created",
        "updated",
        "turns",
        "messages",
        "first_words",
    }
    assert (got[1]["turns"], got[1]["messages"]) == (1, 5)


def test_list_empty(cli: Run) -> None:
    r = cli("conv")
    assert (r.rc, r.stdout, r.stderr) == (0, "", "llmost: no conversations yet\n")
    assert strict(cli("conv", "--json").stdout) == []


def test_list_on_a_terminal_escapes_what_came_from_the_model(cli: Run, store: Store) -> None:
    c = populate(store)
    r = cli("conv", tty=True)
    assert r.rc == 0 and clean(r.stdout)
    assert "ID" in r.stdout and "FIRST WORDS" in r.stdout
    assert c["weather"].id in r.stdout and "weather" in r.stdout
    assert "evil/\\x1b[31mmodel" in r.stdout
    assert "Colour \\x1b[31mred\\x1b[0m and [bold]markup[/bold]?" in r.stdout
    assert "just now" in r.stdout


# -- show ---------------------------------------------------------------------------------------


def test_show_every_ref_form(cli: Run, store: Store) -> None:
    c = populate(store)
    weather = c["weather"].id
    md = cli("conv", "show", weather)
    assert md.rc == 0 and md.stdout.startswith("# weather\n")
    for ref in ("weather", "last", weather.lower(), weather[:-1], weather[:20].lower()):
        assert cli("conv", "show", ref).stdout == md.stdout, ref
    assert cli("conversations", "show", "--markdown", weather, tty=True).stdout == md.stdout
    # piped markdown is the export, which imports back
    (doc,) = transcript_md.parse(md.stdout, "show")
    doc.resolve({})
    assert doc.messages == store.messages(weather)


def test_show_json(cli: Run, store: Store) -> None:
    c = populate(store)
    obj = strict(cli("conv", "show", "weather", "--json").stdout)
    assert obj["id"] == c["weather"].id and obj["format"] == "llmost-conversation"
    assert obj["tools"] == [{"type": "function", "function": {"name": "get_weather"}}]
    assert obj["messages"][1]["content"][1]["image_url"]["url"] == PNG
    assert obj["messages"][4]["partial"] is True
    one_error(cli("conv", "show", "last", "--json", "--markdown"), 2, "cannot be used together")


def test_show_on_a_terminal(cli: Run, store: Store) -> None:
    c = populate(store)
    r = cli("conv", "show", "weather", tty=True)
    assert r.rc == 0 and r.stderr == ""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)  # the renderer's own styles
    out = "\n".join(line.rstrip() for line in plain.split("\n"))
    assert out.startswith("weather\n") and c["weather"].id in out
    for piece in (
        "1 · system",
        "You are terse.",
        "2 · user",
        "[image: image/png, 70 B]",
        "3 · assistant",
        '→ tool call get_weather {"city": "Москва"}  (call_1)',
        "4 · tool · get_weather (call_1)",
        "5 · assistant (partial answer)",
        "A white pixel.\nIt is -3 °C in Moscow",  # markdown rendered, the line break kept
    ):
        assert piece in out, piece
    assert "<!--" not in out


def test_show_on_a_terminal_escapes_and_prints_markup_literally(cli: Run, store: Store) -> None:
    evil = populate(store)["evil"].id
    r = cli("conv", "show", evil, "--json")
    assert ESC in json.loads(r.stdout)["messages"][1]["content"]  # stored as received
    out = cli("conv", "show", evil, tty=True).stdout
    assert clean(out)
    assert "Colour \\x1b[31mred\\x1b[0m and [bold]markup[/bold]?" in out
    assert "\\x1b]52;c;aGk=\\x1b\\ [red]not red[/red] \\x9b2J done" in out
    assert "evil/\\x1b[31mmodel" in out
    # piped, the markdown keeps the bytes as they were sent: the user's explicit choice
    assert ESC in cli("conv", "show", evil).stdout
    assert ESC in cli("conv", "export", evil).stdout
    # asked for on a terminal, markdown and JSON carry no raw control character either
    for args in (("show", evil, "--markdown"), ("show", evil, "--json"), ("export", evil)):
        out = cli("conv", *args, tty=True).stdout
        assert clean(out), args
    assert "[red]not red[/red]" in cli("conv", "show", evil, "--markdown", tty=True).stdout


# -- bad references and stores --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("show", "{ref}"),
        ("export", "{ref}"),
        ("rm", "--yes", "{ref}"),
        ("rename", "{ref}", "new"),
        ("fork", "{ref}"),
    ],
)
def test_bad_refs_are_usage_errors(cli: Run, store: Store, args: tuple[str, ...]) -> None:
    c = populate(store)
    unknown = cli("conv", *(a.format(ref="nope") for a in args))
    one_error(unknown, 2, "no conversation 'nope'", "llmost conversations list")
    ids = [x.id for x in c.values()]
    common = ids[0][: min(_common(ids[0], i) for i in ids[1:])]
    ambiguous = cli("conv", *(a.format(ref=common) for a in args))
    one_error(ambiguous, 2, f"{common!r} matches 3 conversations", c["weather"].id, "(weather)")
    assert ESC not in ambiguous.stderr and "(Colour \\x1b[31mred" in ambiguous.stderr
    assert len(store.list()) == 3


def test_last_in_an_empty_store(cli: Run) -> None:
    one_error(cli("conv", "show", "last"), 2, "no last conversation")


@pytest.mark.parametrize(
    "args",
    [
        ("conv",),
        ("conv", "show", "last"),
        ("conv", "search", "x"),
        ("conv", "export", "--all"),
        ("conv", "rm", "--yes", "x"),
        ("conv", "rename", "x", "y"),
        ("conv", "fork", "x"),
    ],
)
def test_a_store_that_cannot_be_opened_exits_3(
    cli: Run, isolated_env: Path, args: tuple[str, ...]
) -> None:
    data = paths.data_dir()
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("a file where the data directory should be")
    one_error(cli(*args), 3, "cannot open conversation store")


def test_a_damaged_conversation(cli: Run, store: Store, tmp_path: Path) -> None:
    c = populate(store)
    conn = sqlite3.connect(paths.database_file())
    conn.execute(
        "UPDATE messages SET content = '{oops' WHERE conversation_id = ? AND seq = 2",
        (c["evil"].id,),
    )
    conn.commit()
    conn.close()
    one_error(cli("conv", "show", c["evil"].id), 3, "is damaged: message 2 has unreadable content")
    assert len(cli("conv").stdout.splitlines()) == 3
    assert cli("conv", "search", "rebase").stdout.startswith(c["plain"].id)
    r = cli("conv", "export", "--all", "-o", str(tmp_path / "all.md"))
    assert r.rc == 3 and f"1 damaged conversation left out: {c['evil'].id}" in r.stderr
    assert "warning" in r.stderr
    docs = transcript_md.parse((tmp_path / "all.md").read_text(), "all.md")
    assert [d.conversation.id for d in docs] == [c["plain"].id, c["weather"].id]
    assert cli("conv", "rm", "--yes", c["evil"].id).rc == 0


# -- search ---------------------------------------------------------------------------------------


def test_search_piped_json_and_terminal(cli: Run, store: Store) -> None:
    c = populate(store)
    r = cli("conv", "search", "moscow")
    assert r.rc == 0
    assert r.stdout.splitlines() == [
        f"{c['weather'].id}\t5\tassistant\tA white pixel. It is **-3 °C** in Moscow",
        f"{c['weather'].id}\t2\tuser\tWhat is this? And the weather in Moscow?",
    ]
    hits = strict(cli("conv", "search", "MOSCOW", "weather", "--json").stdout)
    assert [(h["conversation"], h["message"], h["role"]) for h in hits] == [
        (c["weather"].id, 2, "user")
    ]
    snippet = hits[0]["snippet"]
    assert [snippet[a:b] for a, b in hits[0]["highlights"]] == ["weather", "Moscow"]
    assert cli("conv", "search", "moscow", "-n", "1").stdout == r.stdout.splitlines()[0] + "\n"
    tty = cli("conv", "search", "markup", tty=True).stdout
    assert clean(tty) and "[bold]markup[/bold]" in tty and c["evil"].id in tty
    assert "message 1 · user" in tty
    partial = strict(cli("conv", "search", "pixel", "--json").stdout)
    assert [h["partial"] for h in partial] == [True]


def test_search_nothing(cli: Run, store: Store) -> None:
    populate(store)
    r = cli("conv", "search", "zebra")
    assert (r.rc, r.stdout) == (0, "") and "no message contains" in r.stderr
    assert strict(cli("conv", "search", "zebra", "--json").stdout) == []
    one_error(cli("conv", "search", "--", "-- ::"), 2, "nothing to search for")
    assert cli("conv", "search").rc == 2


# -- export and import ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_export_import_round_trip_into_another_store(
    cli: Run, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    c = populate(store)
    before = {k: (store.messages(v.id), store.tools(v.id)) for k, v in c.items()}
    out = tmp_path / f"all.{'md' if fmt == 'markdown' else 'txt'}"
    r = cli("conv", "export", "--all", "--format", fmt, "-o", str(out))
    assert (r.rc, r.stdout, r.stderr) == (0, "", "")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))
    r = cli("conv", "import", str(out))
    assert r.rc == 0 and r.stdout.split() == [c["plain"].id, c["evil"].id, c["weather"].id]
    assert "imported 3 conversations" in r.stderr
    with Store(paths.database_file()) as other:
        for key, conv in c.items():
            assert other.get(conv.id) == store.get(conv.id)
            assert (other.messages(conv.id), other.tools(conv.id)) == before[key]
        assert len(other.search("moscow")) == 2
    again = cli("conv", "import", str(out))
    assert again.rc == 0 and "imported 0 conversations; 3 already in the store" in again.stderr


def test_export_to_stdout_and_format_from_the_file_name(
    cli: Run, store: Store, tmp_path: Path
) -> None:
    c = populate(store)
    md = cli("conv", "export", "weather", "last")
    assert md.rc == 0 and md.stdout.count("<!-- llmost:conversation") == 1
    both = cli("conv", "export", "weather", c["plain"].id)
    assert both.stdout.count("<!-- llmost:conversation") == 2 and "\n---\n" in both.stdout
    js = cli("conv", "export", "weather", "--format", "json")
    assert strict(js.stdout)["name"] == "weather"
    cli("conv", "export", "weather", "-o", str(tmp_path / "w.json"))
    assert strict((tmp_path / "w.json").read_text())["id"] == c["weather"].id
    existing = tmp_path / "mine.md"
    existing.write_text("old")
    existing.chmod(0o644)
    cli("conv", "export", "weather", "-o", str(existing))
    assert stat.S_IMODE(existing.stat().st_mode) == 0o644  # an existing file keeps its mode
    assert existing.read_text() == md.stdout


def test_export_usage_errors(cli: Run, store: Store, tmp_path: Path) -> None:
    populate(store)
    one_error(cli("conv", "export"), 2, "REF...) or --all")
    one_error(cli("conv", "export", "last", "--all"), 2, "not both")
    one_error(cli("conv", "export", "last", "--format", "pdf"), 2, "pdf")
    one_error(
        cli("conv", "export", "last", "-o", str(tmp_path / "no" / "dir.md")), 2, "cannot write"
    )


def test_import_from_stdin_with_taken_ids_and_names(cli: Run, store: Store) -> None:
    c = populate(store)
    md = cli("conv", "export", "weather").stdout
    changed = md.replace("A white pixel.", "A grey pixel.")
    r = cli("conv", "import", "-", input=changed.encode())
    assert r.rc == 0
    (new_id,) = r.stdout.split()
    assert new_id != c["weather"].id
    assert f"id {c['weather'].id} was taken: imported as {new_id}" in r.stderr
    assert "name 'weather' was taken: imported as 'weather (2)'" in r.stderr
    assert store.messages(new_id)[4].content == "A grey pixel.\nIt is **-3 °C** in Moscow"


def test_import_problems(cli: Run, store: Store, tmp_path: Path) -> None:
    populate(store)
    bad = tmp_path / "bad.md"
    bad.write_text("# just notes\n")
    one_error(cli("conv", "import", str(bad)), 2, "holds no conversation")
    one_error(cli("conv", "import", str(tmp_path / "missing.md")), 2, "cannot read")
    bad.write_bytes(b"\xff\xfe")
    one_error(cli("conv", "import", str(bad)), 2, "is not UTF-8 text")
    md = cli("conv", "export", "weather").stdout
    no_data = md[: md.index("<!-- llmost:image")]
    no_data = no_data.replace(
        "624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19", "ab" * 32
    )
    bad.write_text(no_data)
    one_error(cli("conv", "import", str(bad)), 2, f"refers to image sha256:{'ab' * 32}")
    # without its data but with the image already in the store: fine
    bad.write_text(md[: md.index("<!-- llmost:image")])
    assert cli("conv", "import", str(bad)).rc == 0


# -- rm, rename, fork -----------------------------------------------------------------------------


def test_rm_asks_on_a_terminal(cli: Run, store: Store) -> None:
    c = populate(store)
    no = cli("conv", "rm", "weather", input=b"n\n", stdin_tty=True)
    assert no.rc == 0 and "Delete 1 conversation? [y/N]" in no.stderr
    assert f"{c['weather'].id}  weather" in no.stderr and "nothing deleted" in no.stderr
    assert store.get(c["weather"].id) is not None
    evil = cli("conv", "rm", c["evil"].id, "plain", input=b"", stdin_tty=True)  # EOF: no
    assert "no conversation 'plain'" in evil.stderr and evil.rc == 2
    both = cli("conv", "rm", c["evil"].id, c["plain"].id, input=b"yes\n", stdin_tty=True)
    assert both.rc == 0 and "Delete 2 conversations?" in both.stderr
    assert "Colour \\x1b[31mred" in both.stderr and ESC not in both.stderr
    assert "deleted 2 conversations" in both.stderr
    assert [x.id for x in store.list()] == [c["weather"].id]


def test_rm_without_a_terminal_needs_yes(cli: Run, store: Store) -> None:
    c = populate(store)
    one_error(cli("conv", "rm", "weather"), 2, "without --yes", "not a terminal")
    assert store.get(c["weather"].id) is not None
    r = cli("conv", "rm", "weather", "last", "--yes")  # the same one twice: deleted once
    assert (r.rc, r.stdout) == (0, "") and "deleted 1 conversation" in r.stderr
    assert store.get(c["weather"].id) is None


def test_rm_older_than(cli: Run, store: Store) -> None:
    c = populate(store)
    conn = sqlite3.connect(paths.database_file())
    conn.execute("UPDATE conversations SET updated = 1000 WHERE id = ?", (c["plain"].id,))
    conn.commit()
    conn.close()
    r = cli("conv", "rm", "--older-than", "30d", "-y")
    assert r.rc == 0 and "deleted 1 conversation" in r.stderr
    assert store.get(c["plain"].id) is None and len(store.list()) == 2
    r = cli("conv", "rm", "--older-than", "30d", "-y")
    assert r.rc == 0 and "no conversation was updated more than 30d ago" in r.stderr
    one_error(cli("conv", "rm", "--older-than", "soon", "-y"), 2, "not a duration")
    one_error(cli("conv", "rm", "last", "--older-than", "1d"), 2, "not both")
    one_error(cli("conv", "rm"), 2, "--older-than")


def test_rename(cli: Run, store: Store) -> None:
    c = populate(store)
    r = cli("conv", "rename", c["plain"].id, "git help")
    assert (r.rc, r.stdout) == (0, "") and "is named 'git help'" in r.stderr
    assert store.resolve("git help").id == c["plain"].id
    assert cli("conv", "rename", "git help", "git help").rc == 0  # its own name: fine
    one_error(cli("conv", "rename", "weather", "git help"), 2, "'git help' already exists")
    for bad in ("last", "two\nlines", "", c["evil"].id):
        assert cli("conv", "rename", "weather", bad).rc == 2, bad
    assert store.get("weather") is not None


def test_fork(cli: Run, store: Store) -> None:
    c = populate(store)
    r = cli("conv", "fork", "weather", "--at", "2", "--name", "try2")
    assert r.rc == 0 and "forked 'weather' at message 2" in r.stderr
    (new,) = r.stdout.split()
    assert store.resolve("try2").id == new
    assert store.messages(new) == store.messages(c["weather"].id)[:2]
    whole = cli("conv", "fork", "weather").stdout.strip()
    assert store.messages(whole) == store.messages(c["weather"].id)
    one_error(cli("conv", "fork", "weather", "--at", "9"), 2, "the conversation has 5 messages")
    one_error(cli("conv", "fork", "weather", "--name", "try2"), 2, "already exists")
    one_error(cli("conv", "fork", "weather", "--name", "last"), 2, "cannot be a name")
    assert cli("conv", "rm", "-y", "weather").rc == 0
    assert len(store.messages(new)) == 2 and len(store.messages(whole)) == 5
    assert cli("conv", "show", new, tty=True).stdout.count("[image: image/png") == 1


# -- help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["", "list", "show", "search", "export", "import", "rm", "rename", "fork"]
)
def test_help_has_examples(cli: Run, command: str) -> None:
    r = cli("conversations", *([command] if command else []), "--help")
    assert r.rc == 0 and "Examples:" in r.stdout and "llmost conv" in r.stdout


def test_the_installed_command(llmost_bare: Runner, isolated_env: Path) -> None:
    with Store(paths.database_file()) as s:
        s.create(name="only")
    r = llmost_bare("conv", "list")
    assert r.rc == 0 and "\tonly\t" in r.stdout
    r = llmost_bare("conv", "show", "nope")
    assert r.rc == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert "conversations" in llmost_bare("--help").stdout
