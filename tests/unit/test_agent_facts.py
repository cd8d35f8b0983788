"""The live facts an agent sends with its heartbeats, which job runtime conditions are held
against: the built-in ones, an operator's --facts-file, and what is wrong with that file."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from support_standin import DEADLINE, with_agent

from jobplane.agent.facts import live_facts
from jobplane.agent.main import config_from_args, parse_args

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/meminfo")


def write(path: Path, document: object) -> Path:
    """The file holding `document`: bytes or text as they are, anything else as JSON."""
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def problems_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "jobplane.agent.facts" and r.levelno == logging.WARNING]


@linux_only
def test_the_built_in_facts_are_the_load_and_the_free_memory():
    facts = live_facts(None)
    assert set(facts) == {"load_average", "free_memory_bytes"}
    assert facts["load_average"] == pytest.approx(os.getloadavg()[0], abs=5)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < facts["free_memory_bytes"] <= total


def test_a_facts_file_adds_and_overrides_facts_and_is_read_again_when_it_changes(tmp_path):
    facts_file = write(tmp_path / "facts.json", {"load_average": 99, "gpu.free": 2, "scratch_gb": 1.5})
    facts = live_facts(facts_file)
    assert (facts["load_average"], facts["gpu.free"], facts["scratch_gb"]) == (99.0, 2.0, 1.5)
    write(facts_file, {"gpu.free": 0})
    facts = live_facts(facts_file)
    assert facts["gpu.free"] == 0.0 and "scratch_gb" not in facts
    assert facts["load_average"] != 99.0  # the built-in one again


@pytest.mark.parametrize("contents", [
    "{not json", "", "[1, 2]", "42", '"text"', "null", b"\xff\xfe{", b"\xc3(", "[" * 60_000,
    " " * 100_000,
], ids=["bad", "empty", "array", "number", "string", "null", "utf16-ish", "bad-utf8", "deep",
        "too-big"])
def test_a_file_that_is_not_a_json_object_adds_nothing_and_raises_nothing(tmp_path, contents):
    facts_file = write(tmp_path / "facts.json", contents)
    assert set(live_facts(facts_file)) == set(live_facts(None))


def test_bad_entries_are_ignored_and_good_ones_kept(tmp_path):
    facts_file = write(tmp_path / "facts.json", {
        "ok": 1, "text": "2", "flag": True, "none": None, "list": [1], "huge": 10 ** 400,
        "9starts_with_digit": 1, "has space": 1, "x" * 65: 1, "y" * 64: 3,
    })
    facts = live_facts(facts_file)
    assert {name: facts[name] for name in set(facts) - set(live_facts(None))} == {"ok": 1.0, "y" * 64: 3.0}
    assert live_facts(write(facts_file, '{"nan": NaN, "inf": Infinity, "ok": -1}'))["ok"] == -1.0
    assert "nan" not in live_facts(facts_file) and "inf" not in live_facts(facts_file)


def test_a_missing_file_or_a_directory_adds_nothing(tmp_path):
    assert set(live_facts(tmp_path / "absent.json")) == set(live_facts(None))
    assert set(live_facts(tmp_path)) == set(live_facts(None))


def test_each_problem_is_logged_once_while_it_lasts(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="jobplane.agent.facts")
    facts_file, reported = tmp_path / "facts.json", set()
    for _ in range(3):
        live_facts(facts_file, reported=reported)
    assert len(problems_logged(caplog)) == 1 and "no such file" in problems_logged(caplog)[0]
    write(facts_file, {"bad name": 1, "ok": 1})
    for _ in range(3):
        live_facts(facts_file, reported=reported)
    assert len(problems_logged(caplog)) == 2 and "'bad name'" in problems_logged(caplog)[1]
    write(facts_file, {"ok": 1})
    live_facts(facts_file, reported=reported)
    write(facts_file, {"bad name": 1})
    live_facts(facts_file, reported=reported)
    assert len(problems_logged(caplog)) == 3  # it went away and came back


def test_the_facts_file_flag_reaches_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse_args(["--insecure", "--facts-file", "facts.json"])
    assert config_from_args(args).facts_file == str(tmp_path / "facts.json")
    assert config_from_args(parse_args(["--insecure"])).facts_file == ""


def test_heartbeats_carry_the_live_facts_from_before_ready_on(tmp_path):
    facts_file = write(tmp_path / "facts.json", {"load_average": 7, "licenses": 3})

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        first = await asyncio.wait_for(stream.signals.get(), DEADLINE)
        ready = await asyncio.wait_for(stream.signals.get(), DEADLINE)
        write(facts_file, {"licenses": 0})
        while True:
            later = await stream.signal("heartbeat")
            if later.heartbeat.facts["licenses"] == 0:
                return first, ready, later

    first, ready, later = with_agent(tmp_path, scenario, facts_file=str(facts_file))
    assert (first.WhichOneof("message"), ready.WhichOneof("message")) == ("heartbeat", "ready")
    assert first.heartbeat.facts["licenses"] == 3
    assert first.heartbeat.load_average == first.heartbeat.facts["load_average"] == 7
    assert later.heartbeat.facts["load_average"] != 7
