"""Templates (DESIGN §1b): ``-T NAME``, ``-v KEY=VALUE``, ``llmost templates``, ``/template``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from llmost_cli.core import templates as tpl
from llmost_cli.errors import ConfigError, UsageError
from tests import fakeserver as fs
from tests.conftest import Runner, write_config

REVIEW = """\
description = "Review a change"
system = "You review {language} code."
prompt = "Review this, focusing on {focus}:\\n\\n{input}"
model = "review/model"
temperature = 0.2
max_tokens = 300

[defaults]
language = "Python"
"""


def folder(home: Path) -> Path:
    path = home / ".config" / "llmost" / "templates"
    path.mkdir(parents=True, exist_ok=True)
    return path


def add_template(home: Path, name: str, text: str) -> Path:
    path = folder(home) / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def dry(llmost: Runner, *args: str, input: str = "") -> Any:
    r = llmost("ask", "--dry-run", *args, input=input)
    assert r.rc == 0, r
    return json.loads(r.stdout)


# --- unit: rendering --------------------------------------------------------------------------


def test_render_fills_names_keeps_doubled_braces_and_reads_values_once() -> None:
    text = 'JSON like {{"a": {n}}} or { lone, {x}'
    assert tpl.render(text, {"n": "1", "x": "{n}"}) == 'JSON like {"a": 1} or { lone, {n}'
    assert tpl.placeholders(text) == ["n", "x"]
    with pytest.raises(UsageError, match=r"needs a value for \{missing\}"):
        tpl.render("{missing}", {})


def test_prompt_without_input_gets_the_text_after_it() -> None:
    template = tpl.Template("t", Path("t.toml"), prompt="Be brief.")
    filled = tpl.Filled(template, {})
    assert filled.prompt("the question") == "Be brief.\n\nthe question"
    assert filled.prompt("") == "Be brief."
    assert tpl.Filled(tpl.Template("t", Path("t.toml")), {}).prompt("as is") == "as is"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"promt": "typo"}, "promt: unknown key"),
        ({"temperature": 5}, "temperature: must be in [0, 2], got 5"),
        ({"max_tokens": "many"}, "max_tokens: must be a number"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop: at most 4 stop sequences"),
        ({"system": "about {input}"}, "system: {input} belongs in prompt"),
        ({"prompt": 3}, "prompt: must be a string"),
        ({"tools": "get_weather"}, "tools: must be a list"),
        ({"defaults": ["x"]}, "defaults: must be a table"),
        ({"defaults": {"x": [1]}}, "defaults.x: must be text"),
        ({"schema": 7}, "schema: must be a table"),
        ({"schema": "{not json"}, "schema: --schema is not valid JSON"),
    ],
)
def test_bad_keys_and_values_name_the_file_and_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        tpl.from_data(data, Path("/t/review.toml"))
    assert info.value.message.startswith("invalid template /t/review.toml: ")
    assert message in info.value.message


# --- end to end: what a template sets, and what wins -------------------------------------------


def test_template_sets_system_prompt_model_and_sampling(llmost: Runner, isolated_env: Path) -> None:
    add_template(isolated_env, "review", REVIEW)
    body = dry(llmost, "-T", "review", "-v", "focus=naming", "see below", input="def f(): pass")
    assert body["model"] == "review/model"
    assert (body["temperature"], body["max_tokens"]) == (0.2, 300)
    assert body["messages"] == [
        {"role": "system", "content": "You review Python code."},
        {
            "role": "user",
            "content": "Review this, focusing on naming:\n\nsee below\n\ndef f(): pass",
        },
    ]


def test_command_line_beats_the_template(llmost: Runner, isolated_env: Path) -> None:
    add_template(isolated_env, "review", REVIEW)
    body = dry(
        llmost,
        *("-T", "review", "-v", "focus=x", "-m", "cli/model", "-t", "1.5"),
        *("-s", "cli system", "--max-tokens", "9", "q"),
    )
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("cli/model", 1.5, 9)
    assert body["messages"][0] == {"role": "system", "content": "cli system"}


def test_template_beats_profile_and_environment(llmost: Runner, isolated_env: Path) -> None:
    write_config(
        isolated_env,
        '[profiles.default]\nmodel = "profile/model"\nsystem = "profile system"\n'
        "temperature = 0.9\ntop_p = 0.5\n",
    )
    add_template(isolated_env, "review", REVIEW)
    r = llmost(
        "ask", "--dry-run", "-T", "review", "-v", "focus=x", "q", env={"LLMOST_MODEL": "env/model"}
    )
    body = json.loads(r.stdout)
    assert (body["model"], body["temperature"]) == ("review/model", 0.2)
    assert body["top_p"] == 0.5  # not in the template: the profile's stays
    assert body["messages"][0]["content"] == "You review Python code."


def test_variables_defaults_and_overrides(llmost: Runner, isolated_env: Path) -> None:
    add_template(isolated_env, "review", REVIEW)
    body = dry(llmost, "-T", "review", "-v", "focus=a=b", "-v", "language=Rust", "q")
    assert body["messages"][0]["content"] == "You review Rust code."
    assert body["messages"][1]["content"].startswith("Review this, focusing on a=b:")


def test_input_is_prompt_files_and_stdin_in_order(
    llmost: Runner, isolated_env: Path, tmp_path: Path
) -> None:
    add_template(isolated_env, "wrap", 'prompt = "<<{input}>> {{literal}}"\n')
    f = tmp_path / "f.txt"
    f.write_text("file\n")
    body = dry(llmost, "-T", "wrap", "-f", str(f), "words", input="piped")
    assert (
        body["messages"][-1]["content"] == f"<<words\n\n{f}\n```\nfile\n```\n\npiped>> {{literal}}"
    )


def test_template_prompt_alone_needs_no_input(llmost: Runner, isolated_env: Path) -> None:
    add_template(isolated_env, "joke", 'prompt = "A joke about {topic}."\n')
    body = dry(llmost, "-T", "joke", "-v", "topic=cats")
    assert body["messages"] == [{"role": "user", "content": "A joke about cats."}]


def test_template_without_prompt_still_needs_one(llmost: Runner, isolated_env: Path) -> None:
    add_template(isolated_env, "terse", 'system = "Be terse."\n')
    r = llmost("ask", "--dry-run", "-T", "terse")
    assert r.rc == 2 and "no prompt given" in r.stderr


def test_schema_and_tools_from_the_template(llmost: Runner, isolated_env: Path) -> None:
    write_config(isolated_env, '[tools.get_weather]\ncommand = ["true"]\n')
    add_template(
        isolated_env,
        "weather",
        'schema = "city, temp_c float"\ntools = ["get_weather"]\nprompt = "{input}"\n',
    )
    body = dry(llmost, "-T", "weather", "q")
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]) == {"city", "temp_c"}
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    body = dry(llmost, "-T", "weather", "--json-mode", "q")  # the command line wins
    assert body["response_format"] == {"type": "json_object"}


def test_schema_as_a_table(llmost: Runner, isolated_env: Path) -> None:
    add_template(
        isolated_env,
        "s",
        '[schema]\ntype = "object"\nrequired = ["x"]\n[schema.properties.x]\ntype = "integer"\n',
    )
    body = dry(llmost, "-T", "s", "q")
    assert body["response_format"]["json_schema"]["schema"]["properties"] == {
        "x": {"type": "integer"}
    }


# --- end to end: errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-T", "review", "q"], "template 'review' needs a value for focus (add -v focus=...)"),
        (["-T", "review", "-v", "focus=x", "-v", "colour=red", "q"], "has no variable 'colour'"),
        (["-T", "review", "-v", "focus", "q"], "-v expects KEY=VALUE, got 'focus'"),
        (["-T", "review", "-v", "input=x", "q"], "-v input=... is not allowed"),
        (["-v", "focus=x", "q"], "-v/--var sets a template variable: give -T NAME too"),
        (["-T", "nope", "q"], "no template 'nope' in "),
        (["-T", "../config", "q"], "'../config' is not a template name"),
    ],
)
def test_usage_errors(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path, args: list[str], message: str
) -> None:
    add_template(isolated_env, "review", REVIEW)
    add_template(isolated_env, "commit", 'prompt = "{input}"\n')
    r = llmost("ask", *args)
    assert (r.rc, server.chat_requests()) == (2, []), r
    assert message in " ".join(r.stderr.split())
    if "nope" in args:
        assert "(templates: commit, review)" in r.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('prompt = "x"\nmodle = "m"\n', "modle: unknown key"),
        ("temperature = 3\n", "temperature: must be in [0, 2], got 3"),
        ('prompt = "unterminated\n', "invalid template"),
        ('tools = ["undeclared"]\n', "tools: no tool 'undeclared' is declared"),
        (b"\xff\xfe not utf-8", "not UTF-8 text"),
    ],
)
def test_invalid_template_is_a_config_error(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path, text: str | bytes, message: str
) -> None:
    path = folder(isolated_env) / "bad.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    r = llmost("ask", "-T", "bad", "q")
    assert (r.rc, server.chat_requests()) == (3, []), r
    assert f"invalid template {path}" in r.stderr
    assert message in r.stderr


def test_readme_example_templates_are_valid(llmost: Runner, isolated_env: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"```toml\n# (\w+)\.toml -- ([^\n]*)\n(.*?)```", readme, re.S)
    assert [name for name, _, _ in examples] == ["review", "commit", "translate", "summarize"]
    for name, _, text in examples:
        add_template(isolated_env, name, text)
        template = tpl.load(folder(isolated_env), name)
        assert "{input}" in (template.prompt or "") and not template.required
        body = dry(llmost, "-T", name, "some input")
        assert "some input" in body["messages"][-1]["content"]


# --- llmost templates ...------------------------------------------------------------------------


def test_templates_path_list_and_show(llmost: Runner, isolated_env: Path) -> None:
    r = llmost("templates", "path")
    assert (r.rc, r.stdout) == (0, f"{isolated_env}/.config/llmost/templates\n")
    assert "no templates in" in llmost("templates", "list").stderr
    add_template(isolated_env, "review", REVIEW)
    add_template(isolated_env, "bare", 'prompt = "Translate into {lang}:\\n{input}"\n')
    add_template(isolated_env, "broken", "temperature = 9\n")
    r = llmost("templates", "list")
    assert r.rc == 0
    assert r.stdout.splitlines() == [
        "bare\tTranslate into {lang}:",
        "broken\t(invalid: invalid template "
        f"{folder(isolated_env)}/broken.toml: temperature: must be in [0, 2], got 9)",
        "review\tReview a change",
    ]
    r = llmost("templates", "show", "review")
    assert (r.rc, r.stdout) == (0, REVIEW)
    assert llmost("templates", "show", "nope").rc == 2
    assert llmost("templates", "show", "broken").rc == 3


def write_editor(tmp_path: Path, content: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text(f"import sys\nopen(sys.argv[1], 'w').write({content!r})\n")
    return f"{sys.executable} {script}"


def test_templates_edit_creates_then_checks(
    llmost: Runner, isolated_env: Path, tmp_path: Path
) -> None:
    keep = tmp_path / "keep.py"
    keep.write_text("")
    r = llmost("templates", "edit", "fresh", env={"EDITOR": f"{sys.executable} {keep}"})
    assert r.rc == 0, r  # the skeleton is a valid template
    skeleton = (folder(isolated_env) / "fresh.toml").read_text()
    assert "{input}" in skeleton
    assert tpl.parse(skeleton.encode(), Path("fresh.toml")).prompt == "{input}\n"
    editor = write_editor(tmp_path, 'prompt = "x"\ntemprature = 1\n')
    r = llmost("templates", "edit", "fresh", env={"VISUAL": editor})
    assert r.rc == 3 and "temprature: unknown key" in r.stderr
    assert "temprature" in (folder(isolated_env) / "fresh.toml").read_text()  # left as written


def test_templates_help_has_examples(llmost: Runner) -> None:
    r = llmost("templates", "--help")
    assert r.rc == 0
    assert "git diff | llmost ask -T review -v focus=security" in r.stdout
    for command in ("list", "show", "edit", "path"):
        assert "Examples:" in llmost("templates", command, "--help").stdout


# --- chat ------------------------------------------------------------------------------------


def test_chat_template_prompt_wraps_the_first_message_only(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    add_template(isolated_env, "review", REVIEW)
    r = llmost("chat", "-T", "review", "-v", "focus=tests", input="code here\nthanks\n")
    assert r.rc == 0, r
    first, second = (req.json for req in server.chat_requests())
    assert first["model"] == second["model"] == "review/model"
    assert first["messages"][0] == {"role": "system", "content": "You review Python code."}
    assert first["messages"][-1]["content"] == "Review this, focusing on tests:\n\ncode here"
    assert second["messages"][-1]["content"] == "thanks"


def test_chat_template_command(llmost: Runner, server: fs.FakeServer, isolated_env: Path) -> None:
    add_template(isolated_env, "review", REVIEW)
    add_template(isolated_env, "fr", 'prompt = "Translate into French: {input}"\n')
    r = llmost(
        "chat",
        input="/template\n/template review focus='error handling'\nabc\n/template fr\nhello\n",
    )
    assert r.rc == 0, r
    assert "fr\nreview\n" in r.stderr
    assert "template review applied; your next message goes through its prompt" in r.stderr
    first, second = (req.json for req in server.chat_requests())
    assert first["messages"][-1]["content"] == "Review this, focusing on error handling:\n\nabc"
    assert (first["model"], first["temperature"]) == ("review/model", 0.2)
    assert second["messages"][-1]["content"] == "Translate into French: hello"
    assert second["messages"][0] == {"role": "system", "content": "You review Python code."}


def test_chat_template_command_errors(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    add_template(isolated_env, "review", REVIEW)
    r = llmost("chat", input="/template review\n/template nope\nplain\n")
    assert r.rc == 2
    assert "needs a value for focus" in r.stderr and "no template 'nope'" in r.stderr
    assert server.chat_requests()[-1].json["messages"] == [{"role": "user", "content": "plain"}]


def test_chat_template_command_with_schema_and_tools(
    llmost: Runner, server: fs.FakeServer, isolated_env: Path
) -> None:
    write_config(isolated_env, '[tools.get_weather]\ncommand = ["true"]\n')
    add_template(isolated_env, "weather", 'schema = "city"\ntools = ["get_weather"]\n')
    add_template(isolated_env, "ghost", 'tools = ["ghost"]\n')
    server.add(fs.stream_text('{"city": "Paris"}'))
    r = llmost("chat", input="/template ghost\n/template weather\nwhere?\n")
    assert r.rc == 2  # the first failure: ghost is not declared
    assert "no tool 'ghost' in the config file" in r.stderr
    body = server.chat_requests()[-1].json
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["city"]
    assert body["messages"] == [{"role": "user", "content": "where?"}]
