"""Which server the CLI and SDK talk to: --server, then $JOBPLANE_SERVER, then `jobplane up`, then the default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobplane.client.channel import DEFAULT_TARGET, locate_server, resolve_target
from jobplane.client.cli import main


@pytest.fixture
def home(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("JOBPLANE_SERVER", raising=False)
    monkeypatch.setenv("JOBPLANE_HOME", str(tmp_path))
    return tmp_path


def write_up_state(home: Path, server: str, pid: int) -> None:
    (home / "up.json").write_text(json.dumps({"server": server, "pid": pid}))


def test_the_flag_wins_over_the_environment_and_the_local_up(home, monkeypatch):
    write_up_state(home, "127.0.0.1:9003", os.getpid())
    monkeypatch.setenv("JOBPLANE_SERVER", "envhost:9002")
    assert resolve_target("flaghost:9001") == "flaghost:9001"


def test_the_environment_wins_over_the_local_up(home, monkeypatch):
    write_up_state(home, "127.0.0.1:9003", os.getpid())
    monkeypatch.setenv("JOBPLANE_SERVER", "envhost:9002")
    assert resolve_target(None) == "envhost:9002"


def test_a_running_local_up_is_found_through_its_state_file(home):
    write_up_state(home, "127.0.0.1:9003", os.getpid())
    target = locate_server(None)
    assert target.address == "127.0.0.1:9003"
    assert str(home / "up.json") in target.source


def test_the_state_file_of_an_up_that_died_is_ignored(home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_up_state(home, "127.0.0.1:9003", dead.pid)
    assert resolve_target(None) == DEFAULT_TARGET


def test_without_anything_the_default_is_used(home):
    assert locate_server(None).address == DEFAULT_TARGET == "localhost:7070"


def test_up_refuses_to_start_twice_on_one_data_dir(home, capsys):
    write_up_state(home, "127.0.0.1:9003", os.getpid())

    code = main(["up", "--data-dir", str(home)])

    assert code == 1
    assert "already running" in capsys.readouterr().err
    assert json.loads((home / "up.json").read_text())["server"] == "127.0.0.1:9003"  # left alone
