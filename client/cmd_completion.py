"""`jobplane completion bash|zsh`: a shell completion script, generated from the CLI's own
argparse tree (so it knows every command, option and choice of this version)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from jobplane.client.command import EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "completion", help="print a shell completion script (bash or zsh)",
        description="Print a completion script for bash or zsh. Try it with `source <(jobplane completion bash)`; "
        "keep it with `jobplane completion bash > ~/.local/share/bash-completion/completions/jobplane`, or for zsh "
        "add `source <(jobplane completion zsh)` to ~/.zshrc (after compinit).")
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete in")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from jobplane.client.cli import build_parser  # the whole tree; cli imports this module

    print(script(build_parser(), args.shell), end="")
    return EXIT_OK


@dataclass
class Node:
    """One command (a path of subcommand names): what may follow it."""

    commands: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    takes_value: list[str] = field(default_factory=list)  # options followed by a value
    choices: dict[str, list[str]] = field(default_factory=dict)  # option -> its values


def command_tree(parser: argparse.ArgumentParser, path: str = "") -> dict[str, Node]:
    """{"": the top level, "jobs": ..., "jobs list": ...}."""
    node, tree = Node(), {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                node.commands.append(name)
                tree.update(command_tree(sub, f"{path} {name}".strip()))
            continue
        if not action.option_strings:  # a positional: its choices are words to offer (`completion bash`)
            node.commands += [str(choice) for choice in action.choices or ()]
            continue
        node.options += action.option_strings
        if action.nargs != 0:
            node.takes_value += action.option_strings
            for option in action.option_strings:
                if action.choices:
                    node.choices[option] = [str(choice) for choice in action.choices]
    return {path: node, **tree}


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    body = BASH.format(specs=_specs(command_tree(parser)))
    return ZSH_PRELUDE + body if shell == "zsh" else BASH_PRELUDE + body


def _specs(tree: dict[str, Node]) -> str:
    cases = []
    for path, node in tree.items():
        cases.append(f'        "{path}") cmds="{" ".join(node.commands)}"; opts="{" ".join(node.options)}"; '
                     f'valopts="{" ".join(node.takes_value)}"')
        for option, values in node.choices.items():
            cases.append(f'            [ "$2" = "{option}" ] && choices="{" ".join(values)}"')
        cases[-1] += ";;"
    return "\n".join(cases)


BASH_PRELUDE = """\
# jobplane completion for bash. Try: source <(jobplane completion bash)
# Keep: jobplane completion bash > ~/.local/share/bash-completion/completions/jobplane
"""

ZSH_PRELUDE = """\
# jobplane completion for zsh (through zsh's bash completion layer). Add to ~/.zshrc, after compinit:
#   source <(jobplane completion zsh)
autoload -U +X bashcompinit && bashcompinit
"""

BASH = """\
_jobplane_spec() {{
    # $1: a command path ("jobs list"); sets cmds, opts and valopts; with $2, an option, its choices
    cmds=""; opts=""; valopts=""
    case "$1" in
{specs}
    esac
}}

_jobplane() {{
    local cur path word i cmds opts valopts choices skip
    COMPREPLY=()
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    path=""
    skip=0
    _jobplane_spec ""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [ "$skip" = 1 ]; then skip=0; continue; fi
        case "$word" in
            -*=*) continue ;;
            -*) case " $valopts " in *" $word "*) skip=1 ;; esac; continue ;;
        esac
        case " $cmds " in
            *" $word "*) path="${{path:+$path }}$word"; _jobplane_spec "$path" ;;
        esac
    done
    if [ "$skip" = 1 ]; then
        choices=""
        _jobplane_spec "$path" "${{COMP_WORDS[COMP_CWORD-1]}}"
        if [ -n "$choices" ]; then
            COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return 0
    fi
    case "$cur" in
        -*) COMPREPLY=($(compgen -W "$opts" -- "$cur")) ;;
        *) if [ -n "$cmds" ]; then COMPREPLY=($(compgen -W "$cmds" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi ;;
    esac
}}

complete -o default -F _jobplane jobplane
"""
