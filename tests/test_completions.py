"""Shell completion: the generated scripts in completions/, and ``llmost --complete-values``.

The scripts must match the command tree (a new option fails here until they are regenerated
with ``python completions/generate.py``), and they are run in the real shells that this
machine has: bash always; zsh and fish when installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest
import typer

from llmost_cli import paths
from llmost_cli.core import models, params
from llmost_cli.store.store import Store
from tests import fakeserver as fs
from tests.conftest import Runner, llmost_executable, write_config

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
GENERATOR = COMPLETIONS / "generate.py"
SCRIPTS = ("llmost.bash", "llmost.zsh", "llmost.fish")

MAIN_URL = "http://127.0.0.1:9/main/v1"
WORK_URL = "http://127.0.0.1:9/work/v1"
MAIN_MODELS = ["openai/gpt-4o", "meta/llama-3:free", "anthropic/claude"]
WORK_MODELS = ["work/model-a", "work/model-b:free"]
CONFIG = f"""\
profile = "main"

[profiles.main]
base_url = "{MAIN_URL}"

[profiles.work]
base_url = "{WORK_URL}/"

[tools.get_weather]
command = ["true"]
"""


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llmost_completions_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return load_generator()


@pytest.fixture
def configured(isolated_env: Path) -> Path:
    """A config file with two profiles, a declared tool, and a model cache for each profile."""
    write_config(isolated_env, CONFIG)
    old = time.time() - 30 * 86400  # completion takes the cache whatever its age
    models.write_cache(MAIN_URL, [{"id": m} for m in MAIN_MODELS], now=old)
    models.write_cache(WORK_URL, [{"id": m, "name": "W"} for m in WORK_MODELS])
    return isolated_env


# --- the generated files match the app --------------------------------------------------------


def test_committed_scripts_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), (
        "completions/ is stale: run python completions/generate.py"
    )


def test_check_reports_a_stale_script(gen: ModuleType, tmp_path: Path) -> None:
    for name in SCRIPTS:
        shutil.copy(COMPLETIONS / name, tmp_path / name)
    assert gen.stale(tmp_path) == []
    (tmp_path / "llmost.zsh").write_text("# edited by hand\n")
    (tmp_path / "llmost.fish").unlink()
    assert gen.stale(tmp_path) == ["llmost.zsh", "llmost.fish"]


def live_tree() -> Iterator[tuple[tuple[str, ...], list[str], list[str]]]:
    """(path, subcommand names, option names) of every command, read straight from click."""
    from llmost_cli.cli.app import command

    def visit(cmd: Any, ctx: Any, path: tuple[str, ...]) -> Iterator[Any]:
        options = [
            name
            for p in cmd.get_params(ctx)
            if p.param_type_name == "option" and not p.hidden
            for name in [*p.opts, *p.secondary_opts]
        ]
        subs = list(getattr(cmd, "commands", {}))
        yield path, subs, options
        for name in subs:
            sub = cmd.commands[name]
            yield from visit(sub, typer.Context(sub, info_name=name, parent=ctx), (*path, name))

    root = command()
    yield from visit(root, typer.Context(root, info_name="llmost", **root.context_settings), ())


def test_generator_covers_every_command_and_option(gen: ModuleType) -> None:
    tree = {node.path: node for node in gen.read_tree()}
    scripts = gen.render_all()
    seen = 0
    for path, subs, options in live_tree():
        node = tree[path]
        assert [s for s, _ in node.subcommands] == subs
        assert sorted(node.option_names()) == sorted(options)
        for script in scripts.values():
            for name in [*subs, *options]:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", script), name
        seen += len(options)
    paths = {" ".join(p) for p in tree}
    assert {"", "ask", "chat", "config get", "config set", "models", "models show"} <= paths
    assert seen > 60  # ask and chat alone have about thirty each


def test_tree_values_come_from_the_parameters(gen: ModuleType) -> None:
    tree = {" ".join(node.path): node for node in gen.read_tree()}
    ask = {n: o for o in tree["ask"].options for n in o.names}
    assert ask["-o"].values.words == ("text", "json")  # the enum's choices
    assert ask["--model"].values.dynamic == "models"
    assert ask["--image"].values.files and ask["--tools"].values.files
    assert not ask["--json-mode"].takes_value and ask["--seed"].takes_value
    assert ask["--no-markdown"] is ask["--markdown"]
    assert tree["models"].default == "list"
    keys = tree["config get"].slots[0].values.words
    assert keys == tuple(params.CONFIG_KEYS)


def test_a_typer_path_option_completes_files(gen: ModuleType) -> None:
    toy = typer.Typer()

    @toy.command()
    def cmd(out: Annotated[Path, typer.Option("--out")], n: int = 1) -> None:
        """A toy command."""

    [node] = gen.read_tree(typer.main.get_command(toy))
    values = {name: o.values for o in node.options for name in o.names}
    assert values["--out"].files and not values["--n"]


# --- llmost --complete-values -----------------------------------------------------------------


def values(runner: Runner, *args: str, env: dict[str, str | None] | None = None) -> list[str]:
    r = runner("--complete-values", *args, env=env)
    assert (r.rc, r.stderr) == (0, ""), r
    return r.stdout.splitlines()


def test_complete_values_profiles_keys_tools(llmost_bare: Runner, configured: Path) -> None:
    assert values(llmost_bare, "profiles") == ["main", "work"]
    assert values(llmost_bare, "keys") == list(params.CONFIG_KEYS)
    assert values(llmost_bare, "tools") == ["get_weather"]


def test_complete_values_models_follow_the_profile(llmost_bare: Runner, configured: Path) -> None:
    assert values(llmost_bare, "models") == sorted(MAIN_MODELS)  # the file's active profile
    assert values(llmost_bare, "models", "work") == WORK_MODELS  # --profile on the line
    assert values(llmost_bare, "models", env={"LLMOST_PROFILE": "work"}) == WORK_MODELS
    assert values(llmost_bare, "models", "nosuch") == []  # an error for llmost: nothing here


def test_complete_values_models_from_base_url_env_never_fetch(
    llmost: Runner, server: fs.FakeServer, configured: Path
) -> None:
    assert values(llmost, "models") == []  # LLMOST_BASE_URL wins; no cache there yet
    models.write_cache(server.base_url, [{"id": "served/one"}], now=0)
    assert values(llmost, "models", "work") == ["served/one"]
    assert server.requests == []  # a Tab never waits for the network


def test_complete_values_config_path_from_env(llmost_bare: Runner, configured: Path) -> None:
    other = configured / "other.toml"
    other.write_text('[profiles.solo]\nmodel = "x"\n')
    assert values(llmost_bare, "profiles", env={"LLMOST_CONFIG": str(other)}) == ["solo"]


@pytest.mark.parametrize(
    "text",
    [
        "profile = [",  # not TOML
        "colour = 1\n",  # unknown key
        '[profiles.main]\ntemperature = "hot"\n',  # invalid value
    ],
)
def test_complete_values_bad_config_prints_nothing(
    llmost_bare: Runner, isolated_env: Path, text: str
) -> None:
    write_config(isolated_env, text)
    for kind in ("profiles", "models", "tools"):
        assert values(llmost_bare, kind) == []
    assert values(llmost_bare, "keys") == list(params.CONFIG_KEYS)  # needs no config


def test_complete_values_odd_requests(llmost_bare: Runner, isolated_env: Path) -> None:
    assert values(llmost_bare, "models") == []  # no config, no cache
    assert values(llmost_bare, "profiles") == []
    assert values(llmost_bare, "nonsense") == []
    assert values(llmost_bare) == []
    cache = models.write_cache("https://llmost.ru/api/v1", [{"id": "a"}])
    cache.write_text("{broken")
    assert values(llmost_bare, "models") == []


def test_complete_values_imports_no_cli_machinery(configured: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", llmost_executable(), "--complete-values", "models"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0 and proc.stdout.splitlines() == sorted(MAIN_MODELS)
    modules = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, re.M))
    assert "llmost_cli.cli.complete" in modules
    heavy = ("typer", "click", "httpx", "rich", "prompt_toolkit", "llmost_cli.cli.app")
    assert sorted(m for m in modules if m.split(".")[0] in heavy or m in heavy) == []


@pytest.fixture
def stored(isolated_env: Path) -> list[str]:
    """Three conversations, oldest first: unnamed, named with a space, named "notes"."""
    with Store(paths.database_file()) as store:
        plain = store.create()
        spaced = store.create(name="two words")
        store.create(name="notes")
    return [plain.id, spaced.id, "notes"]


def test_complete_values_conversations(llmost_bare: Runner, stored: list[str]) -> None:
    plain, spaced, notes = stored
    # newest first; a name a shell would split is completed as the id
    assert values(llmost_bare, "conversations") == ["last", notes, spaced, plain]
    with Store(paths.database_file()) as store:
        for i in range(60):
            store.create(name=f"n{i}")
    got = values(llmost_bare, "conversations")
    assert got[:3] == ["last", "n59", "n58"] and len(got) == 51


def test_complete_values_conversations_never_create_a_store(
    llmost_bare: Runner, isolated_env: Path
) -> None:
    assert values(llmost_bare, "conversations") == []
    assert not paths.data_dir().exists()
    paths.data_dir().mkdir(parents=True)
    paths.database_file().write_bytes(b"not a database" * 100)
    assert values(llmost_bare, "conversations") == []


def test_complete_values_conversations_imports_no_cli_machinery(stored: list[str]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            llmost_executable(),
            "--complete-values",
            "conversations",
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0 and proc.stdout.split()[0] == "last"
    modules = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, re.M))
    heavy = ("typer", "click", "httpx", "rich", "prompt_toolkit", "llmost_cli.cli.app")
    assert sorted(m for m in modules if m.split(".")[0] in heavy or m in heavy) == []


def test_bash_completes_conversation_refs(stored: list[str], tmp_path: Path) -> None:
    plain, spaced, notes = stored
    every = sorted(["last", notes, spaced, plain])
    assert bash_complete("llmost conv show ", tmp_path) == every
    assert bash_complete("llmost conversations show n", tmp_path) == ["notes"]
    assert bash_complete("llmost conv rm notes ", tmp_path) == every  # REF... takes more
    assert bash_complete("llmost conv export --all --format ", tmp_path) == ["json", "markdown"]
    assert bash_complete("llmost conv fork l", tmp_path) == ["last"]
    assert bash_complete("llmost conv rename notes ", tmp_path) == []  # NAME: new text
    assert bash_complete("llmost chat --session n", tmp_path) == ["notes"]
    assert bash_complete("llmost conv ", tmp_path) == sorted(
        ["list", "show", "search", "export", "import", "rm", "rename", "fork"]
    )


# --- typer's own completion still passes through main.py --------------------------------------


def test_typer_completion_protocol_passes_the_boundary(llmost_bare: Runner) -> None:
    env: dict[str, str | None] = {
        "_LLMOST_COMPLETE": "complete_bash",
        "COMP_WORDS": "llmost config ",
        "COMP_CWORD": "2",
    }
    r = llmost_bare(env=env)
    assert r.rc == 0
    assert r.stdout.split() == ["path", "list", "get", "set", "unset", "edit", "profiles"]


def test_show_and_install_completion_work_or_refuse_cleanly(
    llmost_bare: Runner, isolated_env: Path
) -> None:
    # Typer completes for the shell it detects among the parent processes (bash under CI).
    shown = llmost_bare("--show-completion")
    installed = llmost_bare("--install-completion", "bash")
    for r in (shown, installed):
        assert "Traceback" not in r.stdout + r.stderr
        assert r.rc == 0 or (r.rc == 1 and "not supported" in r.stdout + r.stderr), r
    if shown.rc == 0:
        assert "_LLMOST_COMPLETE" in shown.stdout
    if installed.rc == 0:
        written = [p for p in isolated_env.rglob("*llmost*") if p.is_file()]
        assert written and "_LLMOST_COMPLETE" in written[0].read_text()


# --- real shells ------------------------------------------------------------------------------


def shell_env() -> dict[str, str]:
    """The test's environment, with the installed llmost first on PATH."""
    bindir = str(Path(llmost_executable()).parent)
    return dict(os.environ) | {"PATH": bindir + os.pathsep + os.environ.get("PATH", "")}


def readline_words(line: str) -> list[str]:
    """COMP_WORDS as bash builds them: split at blanks, with ':' and '=' words of their own."""
    words = re.findall(r"[=:]+|[^\s=:]+", line)
    if not line or line[-1].isspace():
        words.append("")
    return words


def bash_complete(line: str, cwd: Path) -> list[str]:
    words = readline_words(line)
    script = "\n".join(
        [
            f"source {shlex.quote(str(COMPLETIONS / 'llmost.bash'))}",
            "COMP_WORDBREAKS=$' \\t\\n\"\\'><=;|&(:'",
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
            f"COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}",
            f"COMP_POINT={len(line)}",
            "_llmost",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=shell_env(),
        check=False,
        timeout=30,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc
    return sorted(w for w in proc.stdout.splitlines() if w)


def ask_options() -> list[str]:
    return next(sorted(opts) for path, _, opts in live_tree() if path == ("ask",))


KEYS = sorted(params.CONFIG_KEYS)
BASH_CASES = [
    ("llmost ", ["ask", "batch", "chat", "config", "conv", "conversations", "models", "templates"]),
    ("llmost co", ["config", "conv", "conversations"]),
    (
        "llmost --",
        [
            "--debug",
            "--help",
            "--install-completion",
            "--profile",
            "--show-completion",
            "--version",
        ],
    ),
    ("llmost --profile ", ["main", "work"]),
    ("llmost --profile=w", ["work"]),
    ("llmost config ", ["edit", "get", "list", "path", "profiles", "set", "unset"]),
    ("llmost config get ", KEYS),
    ("llmost config unset max_", ["max_tokens", "max_tool_rounds"]),
    ("llmost config set markdown ", ["false", "true"]),
    ("llmost config set model open", ["openai/gpt-4o"]),
    ("llmost ask -", ask_options()),
    ("llmost ask --tem", ["--temperature", "--template"]),
    ("llmost chat --no-", ["--no-markdown", "--no-stream"]),
    ("llmost ask -o ", ["json", "text"]),
    ("llmost ask --output=j", ["json"]),
    ("llmost ask --tool-choice ", ["auto", "get_weather", "none", "required"]),
    ("llmost ask -m ", sorted(MAIN_MODELS)),
    ("llmost ask -m meta/", ["meta/llama-3:free"]),
    ("llmost ask -m meta/llama-3:", ["free"]),  # bash replaces only the text after ':'
    ("llmost --profile work chat --model=work/model-b:f", ["free"]),
    ("llmost --profile work ask -t 1 -m ", WORK_MODELS),
    ("llmost models ", ["list", "show"]),
    ("llmost models show ", sorted(MAIN_MODELS)),
    ("llmost models claude --v", ["--vision"]),
    ("llmost models show --", ["--help", "--json"]),
    ("llmost ask -i pic", ["picture.png"]),
    ("llmost chat --system ./no", ["@./notes.txt"]),  # the text is literal: offer @file
    ("llmost ask -s @./no", ["@./notes.txt"]),
    ("llmost ask -s @./pic", ["@./picture.png"]),
    ("llmost ask what is -- -", []),
    ("llmost ask -t ", []),
]


@pytest.mark.parametrize(("line", "expected"), BASH_CASES, ids=[c[0] for c in BASH_CASES])
def test_bash(configured: Path, tmp_path: Path, line: str, expected: list[str]) -> None:
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes.txt").write_text("be terse")
    assert bash_complete(line, tmp_path) == sorted(expected)


def typed(child: Any, line: str, prompt: str) -> str:
    """Type ``line``, press Tab, and return the edited line as the shell ran it."""
    child.send(line + "\t")
    # Ctrl-A, then print the line between markers instead of running it.
    child.send("\x01printf '<<%s>>\\n' '\x05'\r")
    child.expect(r"\r\n<<(.*)>>\r\n")
    text = child.match.group(1)
    child.expect_exact(prompt)
    return str(text).rstrip()


INTERACTIVE = [
    ("llmost conf", "llmost config"),
    ("llmost config get temp", "llmost config get temperature"),
    ("llmost ask -m meta/ll", "llmost ask -m meta/llama-3:free"),
    ("llmost ask -m meta/llama-3:", "llmost ask -m meta/llama-3:free"),
    (
        "llmost --profile work ask --model=work/model-b",
        "llmost --profile work ask --model=work/model-b:free",
    ),
    ("llmost models sh", "llmost models show"),
]


@pytest.mark.pty
def test_bash_interactive(configured: Path, tmp_path: Path) -> None:
    import pexpect

    prompt = "READY> "
    child = pexpect.spawn(
        "bash",
        ["--norc", "--noprofile", "-i"],
        env=shell_env() | {"PS1": prompt, "TERM": "dumb", "INPUTRC": "/dev/null"},
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=20,
    )
    child.expect_exact(prompt)
    child.sendline(f"source {shlex.quote(str(COMPLETIONS / 'llmost.bash'))}")
    child.expect_exact(prompt)
    got = [typed(child, line, prompt) for line, _ in INTERACTIVE]
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert got == [want for _, want in INTERACTIVE]


@pytest.mark.pty
def test_zsh_interactive(configured: Path, tmp_path: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed on this machine")
    import pexpect

    prompt = "READY> "
    child = pexpect.spawn(
        "zsh",
        ["-f", "-i"],
        env=shell_env() | {"TERM": "dumb", "ZDOTDIR": str(tmp_path)},
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=20,
    )
    script = shlex.quote(str(COMPLETIONS / "llmost.zsh"))
    child.sendline(
        f"bindkey -e; PROMPT='{prompt}'; autoload -Uz compinit; compinit -u -D; source {script}"
    )
    child.expect_exact(prompt)
    child.expect_exact(prompt)  # the command line echoed by the first prompt, then the new one
    lines = [*INTERACTIVE, ("llmost ask --tool-ch", "llmost ask --tool-choice")]
    got = [typed(child, line, prompt) for line, _ in lines]
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert got == [want for _, want in lines]


FISH_CASES = [
    ("llmost ", ["ask", "batch", "chat", "config", "conv", "conversations", "models", "templates"]),
    ("llmost config get te", ["temperature"]),
    ("llmost ask --tem", ["--temperature", "--template"]),
    ("llmost ask -o ", ["json", "text"]),
    ("llmost ask -m ", sorted(MAIN_MODELS)),
    ("llmost --profile work ask --model=work/", [f"--model={m}" for m in WORK_MODELS]),
    ("llmost --profile ", ["main", "work"]),
    ("llmost models show ", sorted(MAIN_MODELS)),
    ("llmost models claude --v", ["--vision"]),
    ("llmost ask -i pic", ["picture.png"]),
]


def test_fish(configured: Path, tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed on this machine")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    script = str(COMPLETIONS / "llmost.fish")
    commands = [f"source '{script}'"]
    for line, _ in FISH_CASES:
        commands += ["echo '<<'", f"complete -C '{line}'"]
    proc = subprocess.run(
        ["fish", "-c", "; ".join(commands)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=shell_env(),
        check=False,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc
    blocks = proc.stdout.split("<<\n")[1:]
    got = [sorted(w.split("\t")[0] for w in block.splitlines()) for block in blocks]
    assert got == [sorted(want) for _, want in FISH_CASES]
