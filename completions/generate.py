"""Write the shell completion scripts llmost.bash, llmost.zsh and llmost.fish beside this file.

    python completions/generate.py            rewrite the scripts from the command tree
    python completions/generate.py --check    exit 1 (and say which) when a script is stale

The commands, options and choices come from the click command tree of the Typer app, so a new
option is completed as soon as the scripts are regenerated (tests/test_completions.py fails
until they are). What the tree cannot say is declared below: which options take files, and
which values live in the config file, the model cache or the conversation store. Those are
listed on each Tab by ``llmost --complete-values KIND [PROFILE]`` (llmost_cli/cli/complete.py),
which answers before typer is imported.

typer vendors its own click (``typer._click``) and does not depend on the click package, so
the tree is read through the attributes its commands and parameters share with click.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the working tree's llmost_cli, installed or not

PROG = "llmost"


@dataclass(frozen=True)
class Values:
    """What can follow an option or stand in a positional slot."""

    words: tuple[str, ...] = ()  # fixed words (enum choices, config keys)
    dynamic: str | None = None  # a KIND of `llmost --complete-values`
    files: bool = False
    at: bool = False  # files written @path (``-s @prompt.txt``): the value itself is text

    def __bool__(self) -> bool:
        return bool(self.words or self.dynamic or self.files)


NONE = Values()
FILES = Values(files=True)
MODELS = Values(dynamic="models")
CONVERSATIONS = Values(dynamic="conversations")  # a REF: an id, a name or `last`

# Options whose values the tree does not know (they are plain strings to click).
OPTION_VALUES: dict[str, Values] = {
    "--profile": Values(dynamic="profiles"),
    "--model": MODELS,
    "--image": FILES,  # a path or an http(s) URL: files are what a shell can offer
    "--system": Values(files=True, at=True),  # text, or @path: offer @files
    "--schema": FILES,
    "--tools": FILES,
    "--file": FILES,  # a path, a directory, - or a URL: files are what a shell can offer
    "--template": Values(dynamic="templates"),
    "--session": CONVERSATIONS,  # a name to resume (or a new one)
    "--tool": Values(dynamic="tools"),
    "--tool-choice": Values(words=("auto", "none", "required"), dynamic="tools"),
}


def _config_key_values() -> tuple[Values, dict[str, Values]]:
    """The config keys, and for `config set KEY VALUE` the VALUEs worth offering per KEY."""
    from llmost_cli.core import params

    keys = Values(words=tuple(params.CONFIG_KEYS))
    by_key = {
        k: Values(words=("true", "false")) for k, s in params.CONFIG_KEYS.items() if s.kind is bool
    }
    return keys, {**by_key, "model": MODELS}


# ------------------------------------------------------------------------ the command tree


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]  # e.g. ("-m", "--model"); a flag's --no-x form too
    takes_value: bool
    values: Values
    help: str


@dataclass(frozen=True)
class Slot:
    """A positional argument: the ``index``-th word (1-based); ``variadic``: and all after."""

    index: int
    variadic: bool
    values: Values
    after: tuple[tuple[str, Values], ...] = ()  # values chosen by the word before it


@dataclass
class Command:
    path: tuple[str, ...]  # () is llmost itself
    help: str
    options: list[Option] = field(default_factory=list)
    subcommands: list[tuple[str, str]] = field(default_factory=list)  # (name, short help)
    default: str | None = None  # `llmost models WORD` means `llmost models list WORD`
    slots: list[Slot] = field(default_factory=list)

    @property
    def key(self) -> str:
        return " ".join(self.path)

    def option_names(self) -> list[str]:
        return [n for o in self.options for n in o.names]

    def valued_names(self) -> list[str]:
        return [n for o in self.options if o.takes_value for n in o.names]


def _first_sentence(text: str | None) -> str:
    """The first sentence of a help text, on one line: a menu description."""
    line = " ".join((text or "").split("\n\n")[0].split())
    line = re.split(r"(?<=\.)\s+(?=[A-Z])", line)[0]  # not at "e.g. openai/gpt-4o"
    return line if len(line) <= 80 else line[:77].rstrip() + "..."


def _tree_values(param: Any, ctx: Any) -> Values:
    """Choices and file types, as the parameter's own (click) completion sees them."""
    if getattr(param, "_custom_shell_complete", None) is not None:
        return NONE  # computed at run time: declare its values in OPTION_VALUES instead
    items = param.shell_complete(ctx, "")
    words = tuple(str(i.value) for i in items if getattr(i, "type", "plain") == "plain")
    files = any(getattr(i, "type", "") in ("file", "dir") for i in items)
    # A pathlib.Path parameter completes nothing in click: it takes files all the same.
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    files = files or (isinstance(annotation, type) and issubclass(annotation, PurePath))
    return Values(words=words, files=files)


def _merge(a: Values, b: Values) -> Values:
    return Values(a.words + b.words, a.dynamic or b.dynamic, a.files or b.files, a.at or b.at)


def read_tree(root: Any | None = None) -> list[Command]:
    """Every command of the app, parents before children, with options and positionals."""
    import typer

    if root is None:
        from llmost_cli.cli.app import command

        root = command()
    keys, by_key = _config_key_values()
    argument_values: dict[tuple[str, ...], Values] = {
        ("config", "get", "key"): keys,
        ("config", "set", "key"): keys,
        ("config", "unset", "key"): keys,
        ("models", "show", "model_id"): MODELS,
        ("batch", "input"): FILES,
        ("conversations", "import", "file"): FILES,
        ("conv", "import", "file"): FILES,
    }
    for group in ("conversations", "conv"):  # the group and its alias
        for command, param in (
            ("show", "ref"),
            ("export", "refs"),
            ("rm", "refs"),
            ("rename", "ref"),
            ("fork", "ref"),
        ):
            argument_values[(group, command, param)] = CONVERSATIONS
    set_after = tuple(sorted(by_key.items()))
    commands: list[Command] = []

    def visit(cmd: Any, ctx: Any, path: tuple[str, ...]) -> None:
        node = Command(path, _first_sentence(getattr(cmd, "help", None)))
        node.default = getattr(cmd, "default_command", None)
        index = 0
        for param in cmd.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            values = _tree_values(param, ctx)
            if param.param_type_name == "option":
                # Short names first, then long: the help option's names come from a set.
                opts = sorted(param.opts, key=lambda n: (n.startswith("--"), n))
                names = tuple(opts) + tuple(param.secondary_opts)
                takes_value = not (param.is_flag or getattr(param, "count", False))
                for name in names:
                    values = _merge(values, OPTION_VALUES.get(name, NONE))
                option = Option(names, takes_value, values, _first_sentence(param.help))
                node.options.append(option)
            elif param.param_type_name == "argument":
                values = _merge(values, argument_values.get((*path, param.name), NONE))
                after = set_after if (*path, param.name) == ("config", "set", "value") else ()
                count = max(param.nargs, 1)
                for _ in range(count):
                    index += 1
                    node.slots.append(Slot(index, param.nargs < 0, values, after))
        commands.append(node)
        for name in getattr(cmd, "list_commands", lambda ctx: [])(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            node.subcommands.append((name, _first_sentence(sub.get_short_help_str(80))))
            visit(sub, typer.Context(sub, info_name=name, parent=ctx), (*path, name))

    settings = dict(getattr(root, "context_settings", {}) or {})
    visit(root, typer.Context(root, info_name=PROG, **settings), ())
    for node in commands:
        for name in node.option_names() + [s for s, _ in node.subcommands]:
            if not name or any(c.isspace() or c in "'\"\\|$`" for c in name):
                raise SystemExit(f"generate.py: cannot complete the odd name {name!r}")
    return commands


Pattern = tuple[str, bool]  # literal text, and whether anything may follow it


def _value_cases(commands: list[Command]) -> list[tuple[list[Pattern], Values]]:
    """(case patterns, values) in the order the scripts must try them.

    A pattern matches ``PATH|OPTION`` (the value of an option) or ``PATH|#N|PREV`` (the N-th
    positional word, PREV the positional word before it).
    """
    cases: list[tuple[list[Pattern], Values]] = []
    for node in commands:
        for option in node.options:
            if option.takes_value and option.values:
                cases.append(([(f"{node.key}|{n}", False) for n in option.names], option.values))
        for slot in node.slots:
            for prev, values in slot.after:
                cases.append(([(f"{node.key}|#{slot.index}|{prev}", False)], values))
            if slot.values:
                cases.append(([(f"{node.key}|#{slot.index}|", True)], slot.values))
        for slot in node.slots:  # a variadic last slot takes every further word
            if slot.variadic and slot.values:
                cases.append(([(f"{node.key}|#", True)], slot.values))
    return cases


def _sh_pattern(pattern: Pattern) -> str:
    """bash and zsh: the literal part quoted, the wildcard not."""
    text, wild = pattern
    return _quote(text) + ("*" if wild else "")


def _fish_pattern(pattern: Pattern) -> str:
    """fish: a case argument is a pattern, quoted whole so that it is not globbed."""
    text, wild = pattern
    return _fish_quote(text + ("*" if wild else ""))


# -------------------------------------------------------------------------------- renderers

HEADER = """\
{comment} {shell} completion for llmost. GENERATED by completions/generate.py from the command
{comment} tree: do not edit; run `python completions/generate.py` after changing the commands.
{comment} Profiles, model ids (from the model-list cache), declared tools and conversations come
{comment} from `llmost --complete-values KIND [PROFILE]`, which reads only local files.
"""


def _quote(text: str) -> str:
    """Single-quoted for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_bash(commands: list[Command]) -> str:
    out = [HEADER.format(comment="#", shell="bash")]
    out.append(
        """\
# Install: copy to ~/.local/share/bash-completion/completions/llmost (loaded on demand by
# bash-completion), or add `source /path/to/llmost.bash` to ~/.bashrc.

_llmost_command() {
    # The command at path $1 ('' is llmost itself): subcommands, options, options that take
    # a value (space-padded, for matching), and the command a group runs by default.
    case $1 in"""
    )
    for node in commands:
        out.append(f"    {_quote(node.key)})")
        out.append(f"        subs={_quote(' '.join(s for s, _ in node.subcommands))}")
        out.append(f"        opts={_quote(' '.join(node.option_names()))}")
        out.append(f"        valued={_quote(' ' + ' '.join(node.valued_names()) + ' ')}")
        out.append(f"        default={_quote(node.default or '')}")
        out.append("        ;;")
    out.append(
        """\
    *)
        subs='' opts='' valued=' ' default=''
        ;;
    esac
}

_llmost_values() {
    # What may stand at "$1|$2": $2 is an option taking a value, or "#N|PREV" for the N-th
    # positional word (PREV: the positional word before it).
    words='' dynamic='' files=''
    case "$1|$2" in"""
    )
    for patterns, values in _value_cases(commands):
        sets = []
        if values.words:
            sets.append(f"words={_quote(' '.join(values.words))}")
        if values.dynamic:
            sets.append(f"dynamic={values.dynamic}")
        if values.files:
            sets.append("files=@" if values.at else "files=1")
        out.append(f"    {' | '.join(map(_sh_pattern, patterns))})")
        out.append(f"        {' '.join(sets)}")
        out.append("        ;;")
    out.append(
        r"""    esac
}

_llmost() {
    local IFS=$' \t\n' w i cur full opt='' rest adjacent cword=0
    local cmdpath='' profile='' expect='' dashdash='' prev='' npos=0
    local subs opts valued default words dynamic files
    local -a line=()
    # bash splits words at ':' and '=' (COMP_WORDBREAKS), so "vendor/model:free" arrives as
    # three words: glue together the pieces that touch each other on the command line.
    rest=${COMP_LINE-}
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        adjacent=1
        if [[ -n ${COMP_LINE+set} ]]; then
            [[ $rest == [[:space:]]* ]] && adjacent=''
            rest=${rest#"${rest%%[![:space:]]*}"}
            rest=${rest#"$w"}
        fi
        if ((i > 0)) && [[ -n $adjacent ]] &&
            [[ $w == [=:]* || ${COMP_WORDS[i - 1]} == *[=:] ]]; then
            line[${#line[@]} - 1]+=$w
        else
            line+=("$w")
        fi
        ((i == COMP_CWORD)) && cword=$((${#line[@]} - 1))
    done
    cur=${line[cword]}

    # Walk the words before the cursor: the command path, the positional count, the option
    # whose value comes next, and the --profile given (it decides which models to offer).
    _llmost_command ''
    for ((i = 1; i < cword; i++)); do
        w=${line[i]}
        if [[ -n $expect ]]; then
            [[ $expect == --profile ]] && profile=$w
            expect=''
            continue
        fi
        if [[ -z $dashdash && -n $default && " $subs $opts " != *" $w "* ]]; then
            cmdpath+=" $default"
            _llmost_command "$cmdpath"
        fi
        if [[ -z $dashdash && $w == -- ]]; then
            dashdash=1
        elif [[ -z $dashdash && $w == -?* ]]; then
            if [[ $w == --*=* ]]; then
                [[ ${w%%=*} == --profile ]] && profile=${w#*=}
            elif [[ $valued == *" $w "* ]]; then
                expect=$w
            fi
        elif [[ -n $subs && " $subs " == *" $w "* ]]; then
            cmdpath=${cmdpath:+$cmdpath }$w
            npos=0 prev=''
            _llmost_command "$cmdpath"
        else
            npos=$((npos + 1)) prev=$w
        fi
    done

    # A group with a default command also completes that command's options.
    if [[ -n $default && -z $expect ]]; then
        local gsubs=$subs gopts=$opts
        _llmost_command "$cmdpath $default"
        [[ $cur == -* ]] && cmdpath+=" $default"
        subs=$gsubs opts="$gopts $opts"
    fi

    full=$cur
    words='' dynamic='' files=''
    if [[ -n $expect ]]; then
        _llmost_values "$cmdpath" "$expect"
    elif [[ -z $dashdash && $cur == --*=* ]]; then
        opt="${cur%%=*}="
        cur=${cur#*=}
        _llmost_values "$cmdpath" "${opt%=}"
    elif [[ -z $dashdash && $cur == -* ]]; then
        words=$opts
    elif [[ -n $subs ]]; then
        words=$subs
    else
        _llmost_values "$cmdpath" "#$((npos + 1))|$prev"
    fi

    COMPREPLY=()
    if [[ -n $words ]]; then
        while IFS= read -r w; do
            [[ -n $w ]] && COMPREPLY+=("$opt$w")
        done < <(compgen -W "$words" -- "$cur")
    fi
    if [[ -n $dynamic ]]; then
        local prog=${line[0]}
        prog=${prog/#\~/$HOME}
        type -P -- "$prog" >/dev/null 2>&1 || prog=llmost
        while IFS= read -r w; do
            [[ -n $w && $w == "$cur"* ]] && COMPREPLY+=("$opt$w")
        done < <("$prog" --complete-values "$dynamic" "$profile" 2>/dev/null </dev/null)
    fi
    if [[ $files == @ ]]; then
        compopt -o filenames 2>/dev/null
        while IFS= read -r w; do
            COMPREPLY+=("$opt@$w")
        done < <(compgen -f -- "${cur#@}")
    elif [[ -n $files ]]; then
        compopt -o filenames 2>/dev/null
        while IFS= read -r w; do
            COMPREPLY+=("$opt$w")
        done < <(compgen -f -- "$cur")
    fi
    # Readline replaces only the text after the last ':' or '=' that splits words: drop
    # what comes before it from every candidate.
    local breaks=${COMP_WORDBREAKS-}
    breaks=${breaks//[^=:]/}
    if [[ -n $breaks && $full == *["$breaks"]* ]]; then
        local head=${full%"${full##*["$breaks"]}"}
        COMPREPLY=("${COMPREPLY[@]#"$head"}")
    fi
    return 0
}

complete -F _llmost llmost"""
    )
    return "\n".join(out) + "\n"


def _zsh_desc(name: str, help_text: str) -> str:
    return _quote(name.replace(":", "\\:") + (f":{help_text}" if help_text else ""))


def render_zsh(commands: list[Command]) -> str:
    out = ["#compdef llmost", HEADER.format(comment="#", shell="zsh")]
    out.append(
        """\
# Install: copy to a directory in $fpath named _llmost (e.g. ~/.zfunc/_llmost with
# `fpath+=~/.zfunc` before `compinit` in ~/.zshrc), or `source` it after compinit.

_llmost_command() {
  # The command at path $1 ('' is llmost itself): subcommands and options (names, and
  # name:description for the menu), options that take a value, the group's default command.
  case $1 in"""
    )
    for node in commands:
        subs = " ".join(_quote(s) for s, _ in node.subcommands)
        subdescs = " ".join(_zsh_desc(s, h) for s, h in node.subcommands)
        opts = " ".join(_quote(n) for n in node.option_names())
        optdescs = " ".join(_zsh_desc(n, o.help) for o in node.options for n in o.names)
        valued = " ".join(_quote(n) for n in node.valued_names())
        out.append(f"    ({_quote(node.key)})")
        out.append(f"      subs=({subs})")
        out.append(f"      subdescs=({subdescs})")
        out.append(f"      opts=({opts})")
        out.append(f"      optdescs=({optdescs})")
        out.append(f"      valued=({valued})")
        out.append(f"      default={_quote(node.default or '')}")
        out.append("      ;;")
    out.append(
        """\
    (*)
      subs=() subdescs=() opts=() optdescs=() valued=() default=''
      ;;
  esac
}

_llmost_values() {
  # What may stand at "$1|$2": $2 is an option taking a value, or "#N|PREV" for the N-th
  # positional word (PREV: the positional word before it).
  vals=() dynamic='' files=''
  case "$1|$2" in"""
    )
    for patterns, values in _value_cases(commands):
        sets = []
        if values.words:
            sets.append(f"vals=({' '.join(_quote(w) for w in values.words)})")
        if values.dynamic:
            sets.append(f"dynamic={values.dynamic}")
        if values.files:
            sets.append("files=@" if values.at else "files=1")
        out.append(f"    ({'|'.join(map(_sh_pattern, patterns))})")
        out.append(f"      {' '.join(sets)}")
        out.append("      ;;")
    out.append(
        r"""  esac
}

_llmost() {
  local -a subs subdescs opts optdescs valued vals found
  local default dynamic files w prog cmdpath='' profile='' expect='' dashdash='' prev=''
  local -i i npos=0 ret=1

  # Walk the words before the cursor: the command path, the positional count, the option
  # whose value comes next, and the --profile given (it decides which models to offer).
  _llmost_command ''
  for (( i = 2; i < CURRENT; i++ )); do
    w=${(Q)words[i]}
    if [[ -n $expect ]]; then
      [[ $expect == --profile ]] && profile=$w
      expect=''
      continue
    fi
    if [[ -z $dashdash && -n $default ]] && (( ! ${subs[(Ie)$w]} && ! ${opts[(Ie)$w]} )); then
      cmdpath+=" $default"
      _llmost_command "$cmdpath"
    fi
    if [[ -z $dashdash && $w == -- ]]; then
      dashdash=1
    elif [[ -z $dashdash && $w == -?* ]]; then
      if [[ $w == --*=* ]]; then
        [[ ${w%%=*} == --profile ]] && profile=${w#*=}
      elif (( ${valued[(Ie)$w]} )); then
        expect=$w
      fi
    elif (( ${#subs} && ${subs[(Ie)$w]} )); then
      cmdpath=${cmdpath:+$cmdpath }$w
      npos=0
      prev=''
      _llmost_command "$cmdpath"
    else
      npos+=1
      prev=$w
    fi
  done

  # A group with a default command also completes that command's options.
  if [[ -n $default && -z $expect ]]; then
    local -a gsubdescs=($subdescs) goptdescs=($optdescs)
    _llmost_command "$cmdpath $default"
    [[ $PREFIX == -* ]] && cmdpath+=" $default"
    subdescs=($gsubdescs) optdescs=($goptdescs $optdescs)
  fi

  vals=() dynamic='' files=''
  if [[ -n $expect ]]; then
    _llmost_values "$cmdpath" "$expect"
  elif [[ -z $dashdash && $PREFIX == --*=* ]]; then
    w=${PREFIX%%=*}
    compset -P 1 '*='
    _llmost_values "$cmdpath" "$w"
  elif [[ -z $dashdash && $PREFIX == -* ]]; then
    _describe -t options option optdescs && ret=0
    return $ret
  elif (( ${#subdescs} )); then
    _describe -t commands command subdescs && ret=0
    return $ret
  else
    _llmost_values "$cmdpath" "#$(( npos + 1 ))|$prev"
  fi

  if (( ${#vals} )); then
    compadd -- $vals && ret=0
  fi
  if [[ -n $dynamic ]]; then
    prog=${(Q)words[1]}
    prog=${prog/#\~/$HOME}
    (( $+commands[$prog] )) || [[ -x $prog ]] || prog=llmost
    found=(${(f)"$(command $prog --complete-values $dynamic $profile 2>/dev/null </dev/null)"})
    (( ${#found} )) && compadd -- $found && ret=0
  fi
  if [[ $files == @ ]]; then
    if compset -P '@'; then
      _files && ret=0
    else
      compadd -S '' -- @ && ret=0
    fi
  elif [[ -n $files ]]; then
    _files && ret=0
  fi
  return $ret
}

if [[ $funcstack[1] == _llmost ]]; then
  _llmost "$@"  # autoloaded from $fpath: this file is the body of _llmost
else
  compdef _llmost llmost
fi"""
    )
    return "\n".join(out) + "\n"


def _fish_var(prefix: str, node: Command) -> str:
    return "__llmost_" + prefix + "_" + "_".join(("root", *node.path)).replace("-", "_")


def render_fish(commands: list[Command]) -> str:
    out = [HEADER.format(comment="#", shell="fish")]
    out.append(
        """\
# Install: copy to ~/.config/fish/completions/llmost.fish

# Per command (root, root_config, root_config_get, ...): subcommands and options as
# "name<TAB>description", options that take a value, and a group's default command."""
    )
    for node in commands:
        subs = " ".join(f"{s}\\t{_fish_quote(h)}" for s, h in node.subcommands)
        opts = " ".join(
            f"{_fish_quote(n)}\\t{_fish_quote(o.help)}" for o in node.options for n in o.names
        )
        valued = " ".join(_fish_quote(n) for n in node.valued_names())
        out.append(f"set -g {_fish_var('subs', node)} {subs}".rstrip())
        out.append(f"set -g {_fish_var('opts', node)} {opts}".rstrip())
        out.append(f"set -g {_fish_var('valued', node)} {valued}".rstrip())
        out.append(f"set -g {_fish_var('default', node)} {_fish_quote(node.default or '')}")
    out.append(
        """
function __llmost_values --argument-names key prog profile cur
    # Print what may stand at KEY: "PATH|OPTION" (the option's value) or "PATH|#N|PREV"
    # (the N-th positional word, PREV: the positional word before it).
    switch $key"""
    )
    for patterns, values in _value_cases(commands):
        out.append(f"        case {' '.join(map(_fish_pattern, patterns))}")
        if values.words:
            out.append(
                f"            printf '%s\\n' {' '.join(_fish_quote(w) for w in values.words)}"
            )
        if values.dynamic:
            out.append(
                f"            $prog --complete-values {values.dynamic} $profile"
                " 2>/dev/null </dev/null"
            )
        if values.files and values.at:
            out.append(
                "            __fish_complete_path (string replace -r -- '^@' '' $cur)"
                " | string replace -r -- '^' '@'"
            )
        elif values.files:
            out.append("            __fish_complete_path $cur")
    out.append(
        r"""    end
end

function __llmost_names
    # The names of "name<TAB>description" entries.
    string replace -r -- '\t.*' '' $argv
end

function __llmost_spec --argument-names key
    # Set the caller-visible (global) spec of the command KEY.
    set -l var __llmost_subs_$key
    set -g __llmost_cur_subs $$var
    set var __llmost_opts_$key
    set -g __llmost_cur_opts $$var
    set var __llmost_valued_$key
    set -g __llmost_cur_valued $$var
    set var __llmost_default_$key
    set -g __llmost_cur_default $$var
end

function __llmost_complete
    set -l args (commandline -opc)
    set -l cur (commandline -ct)
    set -l prog $args[1]
    set -e args[1]
    string match -q -- '~*' $prog; and set prog (string replace -- '~' $HOME $prog)
    command -q -- $prog; or set prog llmost
    set -l key root
    set -l cmdpath ''
    set -l profile ''
    set -l expect ''
    set -l dashdash ''
    set -l prev ''
    set -l npos 0

    # Walk the words before the cursor: the command path, the positional count, the option
    # whose value comes next, and the --profile given (it decides which models to offer).
    __llmost_spec $key
    for w in $args
        if test -n "$expect"
            test "$expect" = --profile; and set profile $w
            set expect ''
            continue
        end
        if test -z "$dashdash" -a -n "$__llmost_cur_default"
            if not contains -- $w (__llmost_names $__llmost_cur_subs $__llmost_cur_opts)
                set key {$key}_$__llmost_cur_default
                set cmdpath (string trim -- "$cmdpath $__llmost_cur_default")
                __llmost_spec $key
            end
        end
        if test -z "$dashdash" -a "$w" = --
            set dashdash 1
        else if test -z "$dashdash"; and string match -q -- '-?*' $w
            if string match -q -- '--*=*' $w
                set -l parts (string split -m 1 = -- $w)
                test "$parts[1]" = --profile; and set profile $parts[2]
            else if contains -- $w $__llmost_cur_valued
                set expect $w
            end
        else if contains -- $w (__llmost_names $__llmost_cur_subs)
            set key {$key}_$w
            set cmdpath (string trim -- "$cmdpath $w")
            set npos 0
            set prev ''
            __llmost_spec $key
        else
            set npos (math $npos + 1)
            set prev $w
        end
    end

    set -l subs $__llmost_cur_subs
    set -l opts $__llmost_cur_opts
    # A group with a default command also completes that command's options.
    if test -n "$__llmost_cur_default" -a -z "$expect"
        __llmost_spec {$key}_$__llmost_cur_default
        set opts $opts $__llmost_cur_opts
        if string match -q -- '-*' $cur
            set cmdpath (string trim -- "$cmdpath $__llmost_cur_default")
        end
    end

    if test -n "$expect"
        __llmost_values "$cmdpath|$expect" $prog "$profile" $cur
    else if test -z "$dashdash"; and string match -q -- '--*=*' $cur
        set -l parts (string split -m 1 = -- $cur)
        for value in (__llmost_values "$cmdpath|$parts[1]" $prog "$profile" $parts[2])
            echo "$parts[1]=$value"
        end
    else if test -z "$dashdash"; and string match -q -- '-*' $cur
        printf '%s\n' $opts
    else if set -q subs[1]
        printf '%s\n' $subs
    else
        __llmost_values "$cmdpath|#"(math $npos + 1)"|$prev" $prog "$profile" $cur
    end
end

complete -c llmost -e
complete -c llmost -f -a '(__llmost_complete)'"""
    )
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[list[Command]], str]] = {
    "llmost.bash": render_bash,
    "llmost.zsh": render_zsh,
    "llmost.fish": render_fish,
}


def render_all(commands: list[Command] | None = None) -> dict[str, str]:
    tree = read_tree() if commands is None else commands
    return {name: render(tree) for name, render in RENDERERS.items()}


def stale(directory: Path = HERE) -> list[str]:
    """Names of the scripts in ``directory`` that differ from what the app generates."""
    wanted = render_all()
    return [name for name, text in wanted.items() if _read(directory / name) != text]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed script is out of date"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    if args.check:
        names = stale()
        for name in names:
            print(f"completions/{name} is out of date: run python completions/generate.py")
        return 1 if names else 0
    for name, text in render_all().items():
        path = HERE / name
        if _read(path) != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote completions/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
