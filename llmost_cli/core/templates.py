"""Templates (DESIGN §1b): ``templates/NAME.toml`` beside the config file.

    description = "Review a diff"
    system = "You are a careful {language} reviewer."
    prompt = "Review this change:\\n\\n{input}"
    model = "openai/gpt-4o"
    temperature = 0.2
    schema = "verdict, issues list"     # or a table: a JSON schema
    tools = ["get_weather"]             # tools declared in the config file

    [defaults]
    language = "Python"

``{input}`` is the user's text (the prompt, the ``-f`` blocks and stdin); ``{name}`` is filled
by ``-v name=value`` or ``[defaults]``; ``{{`` and ``}}`` are literal braces. A prompt without
``{input}`` gets the user's text after a blank line. Precedence: command line > template >
environment and profile. A bad file is a ConfigError (exit 3) naming the file and the key; a
missing variable or an unknown template is a UsageError (exit 2).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from llmost_cli.core import params
from llmost_cli.core.request import TurnOptions
from llmost_cli.core.settings import Settings
from llmost_cli.errors import ConfigError, UsageError

SUFFIX = ".toml"
MAX_TEMPLATE_BYTES = 1024 * 1024
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
INPUT = "input"
TEXT_KEYS = ("description", "system", "prompt", "model")
KEYS = (*TEXT_KEYS, *params.SAMPLING, "schema", "tools", "defaults")

Options = TypeVar("Options", bound=TurnOptions)


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    description: str | None = None
    system: str | None = None
    prompt: str | None = None
    model: str | None = None
    sampling: Mapping[str, Any] = field(default_factory=dict)
    schema: str | None = None  # inline JSON, ready for --schema
    tools: tuple[str, ...] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)

    @property
    def variables(self) -> list[str]:
        """The ``{name}`` variables it uses, in order, without ``input``."""
        found = placeholders(self.system or "") + placeholders(self.prompt or "")
        return [n for n in dict.fromkeys(found) if n != INPUT]

    @property
    def required(self) -> list[str]:
        return [n for n in self.variables if n not in self.defaults]


@dataclass(frozen=True)
class Filled:
    """A template with its variables checked: ready to wrap the user's text."""

    template: Template
    values: Mapping[str, str]

    def system(self) -> str | None:
        if self.template.system is None:
            return None
        return render(self.template.system, self.values)

    def prompt(self, text: str) -> str:
        """The template's prompt around ``text`` (or ``text`` itself when it has none)."""
        prompt = self.template.prompt
        if prompt is None:
            return text
        rendered = render(prompt, {**self.values, INPUT: text})
        if INPUT not in placeholders(prompt) and text:
            rendered = f"{rendered}\n\n{text}" if rendered else text
        return rendered


# --- files -----------------------------------------------------------------------------------


def directory(config_path: Path) -> Path:
    """``templates/`` beside the config file."""
    return config_path.parent / "templates"


def names(folder: Path) -> list[str]:
    try:
        return sorted(
            p.name[: -len(SUFFIX)]
            for p in folder.iterdir()
            if p.name.endswith(SUFFIX) and NAME.fullmatch(p.name[: -len(SUFFIX)]) and p.is_file()
        )
    except OSError:
        return []


def path_for(folder: Path, name: str) -> Path:
    """The file of template ``name``; a name that could leave the folder is a usage error."""
    name = name.removesuffix(SUFFIX)
    if not NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a template name",
            hint="letters, digits, '_', '-' and '.', not starting with '.' or '-'",
        )
    return folder / f"{name}{SUFFIX}"


def load(folder: Path, name: str) -> Template:
    """Read and check template ``name``; unknown: a usage error that lists the known ones."""
    path = path_for(folder, name)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TEMPLATE_BYTES + 1)
    except FileNotFoundError:
        known = ", ".join(names(folder)) or "none yet"
        raise UsageError(
            f"no template {path.stem!r} in {folder} (templates: {known})",
            hint=f"create it with: llmost templates edit {path.stem}",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read template {path}: {exc.strerror}") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"template {path} is larger than 1 MiB")
    return parse(raw, path)


def parse(raw: bytes, path: Path) -> Template:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"invalid template {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid template {path}: {exc}",
            hint=f"fix it with: llmost templates edit {path.stem}",
        ) from None
    return from_data(data, path)


def from_data(data: Mapping[str, Any], path: Path) -> Template:
    """Every key checked; the same table as the config file for the sampling parameters."""

    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"invalid template {path}: {key}: {why}")

    for key in data:
        if key not in KEYS:
            raise bad(key, f"unknown key (known: {', '.join(KEYS)})")
    text: dict[str, str] = {}
    for key in TEXT_KEYS:
        if key in data:
            if not isinstance(data[key], str):
                raise bad(key, f"must be a string, got {data[key]!r}")
            text[key] = data[key]
    if INPUT in placeholders(text.get("system", "")):
        raise bad("system", "{input} belongs in prompt")
    sampling = {}
    for key in params.SAMPLING:
        if key in data:
            try:
                sampling[key] = params.check(key, data[key], source=key)
            except UsageError as exc:
                raise bad(key, exc.message.removeprefix(f"{key} ")) from None
    tools = data.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, str) and t for t in tools):
        raise bad("tools", "must be a list of names of tools declared in the config file")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise bad("defaults", "must be a table of variable = text")
    for key, value in defaults.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise bad(f"defaults.{key}", f"must be text, got {value!r}")
    return Template(
        name=path.stem,
        path=path,
        description=text.get("description"),
        system=text.get("system"),
        prompt=text.get("prompt"),
        model=text.get("model") or None,
        sampling=sampling,
        schema=_schema(data["schema"], bad) if "schema" in data else None,
        tools=tuple(tools),
        defaults={str(k): str(v) for k, v in defaults.items()},
    )


def _schema(value: Any, bad: Any) -> str:
    """A table is a JSON schema; a string is inline JSON or the short form."""
    from llmost_cli.core.request import json_schema_spec

    if isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, str) and value.strip().startswith("{"):
        text = value
    elif isinstance(value, str):
        from llmost_cli.core.schema_short import parse_short_schema

        try:
            text = json.dumps(parse_short_schema(value), ensure_ascii=False)
        except UsageError as exc:
            raise bad("schema", exc.message) from None
    else:
        raise bad("schema", "must be a table (a JSON schema) or a string")
    try:
        json_schema_spec(text)
    except UsageError as exc:
        raise bad("schema", exc.message) from None
    return text


# --- variables -------------------------------------------------------------------------------


def placeholders(text: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(text) if m.group(1)]


def render(text: str, values: Mapping[str, str]) -> str:
    """One pass: ``{name}`` from ``values``, ``{{``/``}}`` literal; values are not re-read."""

    def fill(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if name is None:
            return token[0]
        if name not in values:
            raise UsageError(f"the template needs a value for {{{name}}}")
        return values[name]

    return PLACEHOLDER.sub(fill, text)


def parse_vars(items: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"-v expects KEY=VALUE, got {item!r}")
        values[key] = value
    return values


def fill(template: Template, items: Sequence[str]) -> Filled:
    """``-v`` values over ``[defaults]``; an unknown or missing variable is a usage error."""
    given = parse_vars(items)
    known = template.variables
    for key in given:
        if key == INPUT:
            raise UsageError("-v input=... is not allowed: {input} is your prompt and stdin")
        if key not in known:
            listed = ", ".join(known) or "none"
            raise UsageError(
                f"template {template.name!r} has no variable {key!r} (its variables: {listed})"
            )
    values = {**template.defaults, **given}
    missing = [n for n in known if n not in values]
    if missing:
        flags = " ".join(f"-v {n}=..." for n in missing)
        raise UsageError(
            f"template {template.name!r} needs a value for {', '.join(missing)}",
            hint=f"add {flags}",
        )
    return Filled(template, values)


# --- applying one ----------------------------------------------------------------------------


def prepare(opts: Options, settings: Settings) -> tuple[Options, Settings, Filled | None]:
    """``-T``/``-v`` applied: options and settings the template sets (unless the command line
    did), and the filled template that wraps the user's text."""
    if not opts.template:
        if opts.var:
            raise UsageError("-v/--var sets a template variable: give -T NAME too")
        return opts, settings, None
    template = load(directory(settings.config_path), opts.template)
    filled = fill(template, opts.var)
    return apply_options(template, opts, settings), apply_settings(filled, settings), filled


def apply_settings(filled: Filled, settings: Settings) -> Settings:
    """Model, system prompt and sampling: the template's where the command line gave none."""
    template = filled.template
    changes: dict[str, Any] = dict(template.sampling)
    if template.model:
        changes["model"] = template.model
    system = filled.system()
    if system is not None:
        changes["system"] = system
    kept = {k: v for k, v in changes.items() if not settings.given_on_command_line(k)}
    if not kept:
        return settings
    return settings.with_values(source=f"template {template.name}", **kept)


def apply_options(template: Template, opts: Options, settings: Settings) -> Options:
    """Schema and tools: the template's where the command line gave none."""
    changes: dict[str, Any] = {}
    if template.schema and not (opts.schema or opts.json_mode):
        changes["schema"] = template.schema
    if template.tools and not (opts.tool or opts.tools_all or opts.tools):
        declared = set(settings.tools)
        for name in template.tools:
            if name not in declared:
                raise ConfigError(
                    f"invalid template {template.path}: tools: no tool {name!r} is declared "
                    f"in {settings.config_path}"
                )
        changes["tool"] = list(template.tools)
    return replace(opts, **changes) if changes else opts


def describe(template: Template) -> str:
    """One line for ``templates list``."""
    if template.description:
        return template.description
    first = (template.prompt or template.system or "").strip().splitlines()
    return first[0][:60] if first else ""
