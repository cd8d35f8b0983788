"""CLI conventions, as a user meets them in a real `jobplane` process against a real server:
options before the subcommand, `version`, shell completion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from jobplane import __version__
from support import jobplane


def test_global_options_work_before_the_subcommand(sqlite_cluster):
    server = sqlite_cluster.server
    r = jobplane("--server", server.address, "-o", "json", "jobs", "list", env=server.env())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    # One written after the subcommand wins over the one before it.
    r = jobplane("--server", "127.0.0.1:1", "jobs", "list", "--server", server.address, env=server.env())
    assert r.returncode == 0, r.stderr
    assert "no jobs yet" in r.stdout
    r = jobplane("--server", server.address, "-o", "json", "jobs", "list", "-o", "table", env=server.env())
    assert r.returncode == 0 and r.stdout.startswith("no jobs yet"), r.stdout + r.stderr  # -o table too
    r = jobplane("--server", server.address, "--token", "wrong", "whoami", env={"JOBPLANE_CA": str(server.ca)})
    assert r.returncode == 3 and "token" in r.stderr


def test_version_shows_the_client_and_the_server(sqlite_cluster):
    server = sqlite_cluster.server
    r = jobplane("version", "--server", server.address, env=server.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"client  {__version__}", f"server  {__version__} at {server.address}"]
    shown = json.loads(jobplane("-o", "json", "--server", server.address, "version", env=server.env()).stdout)
    assert shown == {"client": __version__, "server": __version__, "server_address": server.address}


def test_version_without_a_server_still_shows_the_client():
    r = jobplane("version", "--server", "127.0.0.1:1", "--insecure")
    assert r.returncode == 3
    assert r.stdout == f"client  {__version__}\n" and "cannot reach" in r.stderr


def complete(shell: str, *words: str) -> set[str]:
    """What `jobplane completion SHELL` offers for the command line `words` (the last one being
    the word under the cursor), run in that shell."""
    script = jobplane("completion", shell).stdout
    line = " ".join(f"'{word}'" for word in words)
    if shell == "bash":
        program = (f'{script}\nCOMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); _jobplane; '
                   'printf "%s\\n" "${COMPREPLY[@]}"')
    else:  # zsh runs it through bashcompinit, whose compgen hands the prefix match to zsh
        program = (f'autoload -U +X compinit && compinit -u\n{script}\nCOMP_WORDS=({line}); '
                   f'COMP_CWORD=$(( $# COMP_WORDS - 1 )); compgen -F _jobplane -- "${{COMP_WORDS[-1]}}"')
        program = program.replace("$# COMP_WORDS", "${#COMP_WORDS}")
    out = subprocess.run([shell, "-c", program], capture_output=True, text=True, timeout=30, check=True).stdout
    offered = set(out.split())
    return {word for word in offered if word.startswith(words[-1])}


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_offers_commands_options_and_choices(shell):
    if shutil.which(shell) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test {shell} completion, but {shell} is not installed: .ci/run installs it")
        pytest.skip(f"{shell} is not installed")
    assert complete(shell, "jobplane", "jo") == {"jobs"}
    assert complete(shell, "jobplane", "--server", "h:1", "jobs", "") == {"list", "get", "purge"}
    assert complete(shell, "jobplane", "jobs", "list", "--li") == {"--limit"}
    assert complete(shell, "jobplane", "jobs", "list", "-o", "") == {"table", "json"}
    assert complete(shell, "jobplane", "tokens", "create", "--role", "o") == {"operator"}
    assert complete(shell, "jobplane", "completion", "") == {"bash", "zsh"}
