"""The task-side helper `jobplane.agent.checkpoint`: save, load, and a cheap import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobplane.agent import checkpoint
from jobplane.examples import funcs


@pytest.fixture
def checkpoint_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.json"
    monkeypatch.setenv(checkpoint.CHECKPOINT_FILE_ENV, str(path))
    return path


def test_save_replaces_the_file_whole_and_leaves_nothing_else(checkpoint_file):
    checkpoint.save({"i": 1})
    first = checkpoint_file.stat().st_ino
    checkpoint.save({"i": 2, "name": "ü"})
    assert json.loads(checkpoint_file.read_text()) == {"i": 2, "name": "ü"}
    # A new file renamed over the old one: a reader never sees half a state.
    assert checkpoint_file.stat().st_ino != first
    assert [p.name for p in checkpoint_file.parent.iterdir()] == ["checkpoint.json"]


def test_a_state_that_is_not_json_is_refused_and_the_last_one_kept(checkpoint_file):
    checkpoint.save({"i": 1})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        checkpoint.save({"i": {1, 2}})
    with pytest.raises(ValueError, match="not valid JSON"):
        checkpoint.save({"i": float("nan")})
    assert json.loads(checkpoint_file.read_text()) == {"i": 1}
    assert [p.name for p in checkpoint_file.parent.iterdir()] == ["checkpoint.json"]


def test_save_outside_an_agent_says_so(monkeypatch):
    monkeypatch.delenv(checkpoint.CHECKPOINT_FILE_ENV, raising=False)
    with pytest.raises(RuntimeError, match="not running as a command task of a jobplane agent"):
        checkpoint.save({"i": 1})


def test_load_decodes_the_assignment_s_checkpoint_or_gives_the_default(monkeypatch):
    monkeypatch.delenv(checkpoint.CHECKPOINT_ENV, raising=False)
    assert checkpoint.load() is None
    assert checkpoint.load(default={"i": 0}) == {"i": 0}
    monkeypatch.setenv(checkpoint.CHECKPOINT_ENV, "")
    assert checkpoint.load(default=3) == 3
    monkeypatch.setenv(checkpoint.CHECKPOINT_ENV, '{"i": 5}')
    assert checkpoint.load(default={"i": 0}) == {"i": 5}


def test_importing_the_helper_does_not_import_grpc():
    code = ("import sys, jobplane.agent.checkpoint; "
            "print(sorted(m for m in sys.modules if 'grpc' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_example_sum_resumes_from_its_checkpoint():
    saved = []
    ctx = checkpoint.TaskContext(task_id="t", job_id="j", attempt=2, send=saved.append,
                                 resume={"done": 2, "total": 3})
    assert funcs.sum_items_resumable([1, 2, 3, 4], ctx) == 10
    assert [json.loads(s) for s in saved] == [{"done": 3, "total": 6}, {"done": 4, "total": 10}]
