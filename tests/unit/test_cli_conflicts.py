"""`jobplane conflicts …`, `hold` and `release` without a server: selectors as users type them,
the arguments each subcommand takes, what is refused before connecting, and how rules, checks
and suggestions read."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client import JobFileError
from jobplane.client.cli import build_parser, main
from jobplane.client.cmd_conflicts import RULE_HEADERS, check_report, rule_row, suggestion_report
from jobplane.client.cmd_hold import hold_summary
from jobplane.client.conflicts import (
    check_request,
    describe_rule,
    format_selector,
    parse_selector,
    rule_from_mapping,
    rule_from_options,
)
from jobplane.v1 import conflict_pb2, job_pb2, status_pb2

EXCLUSIVE, LOCK = conflict_pb2.CONFLICT_KIND_EXCLUSIVE, conflict_pb2.CONFLICT_KIND_LOCK
READ, WRITE = job_pb2.LOCK_MODE_READ, job_pb2.LOCK_MODE_WRITE


def selector(job_class: str = "", name: str = "", **labels: str) -> conflict_pb2.JobSelector:
    return conflict_pb2.JobSelector(job_class=job_class, name=name, labels=labels)


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


# Selectors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("class=etl-load", selector("etl-load")),
        ("name=load-*", selector(name="load-*")),
        ("name=load-* label.team=etl", selector(name="load-*", team="etl")),
        ("class=backup,label.team=ops, label.tier=1", selector("backup", team="ops", tier="1")),
        ("  class=a   name=n?  ", selector("a", "n?")),
        ("label.db=orders=main", selector(db="orders=main")),  # only the first = splits
    ],
)
def test_selectors_read_class_name_and_label_terms(text, expected):
    assert parse_selector(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("bogus", "'bogus' is not KEY=VALUE"),
        ("class=", "'class=' is not KEY=VALUE"),
        ("=etl", "'=etl' is not KEY=VALUE"),
        ("class=a owner=bob", "'owner=bob': unknown key 'owner'"),
        ("label.=x", "'label.=x': unknown key 'label.'"),
        ("class=a class=b", "'class=b': class= is given twice"),
        ("name=a,name=b", "'name=b': name= is given twice"),
        (" , ", "empty selector"),
    ],
)
def test_bad_selector_terms_are_named(text, named):
    with pytest.raises(ValueError, match="^" + named.replace("?", r"\?").replace(".", r"\.")):
        parse_selector(text)


def test_a_formatted_selector_reads_back_as_itself():
    original = selector("etl", "load-*", team="etl", tier="1")
    assert format_selector(original) == "class=etl name=load-* label.team=etl label.tier=1"
    assert parse_selector(format_selector(original)) == original
    assert format_selector(selector()) == ""


# Arguments of each subcommand


def test_conflicts_list_remove_and_check_take_their_arguments():
    assert parse("conflicts", "list").run.__name__ == "run_list"
    remove = parse("conflicts", "remove", "loads", "-o", "json")
    assert (remove.run.__name__, remove.name, remove.output) == ("run_remove", "loads", "json")
    check = parse("conflicts", "check", "42", "--server", "host:1")
    assert (check.run.__name__, check.job, check.server) == ("run_check", "42", "host:1")


def test_conflicts_add_exclusive_takes_two_selectors():
    args = parse("conflicts", "add", "backup-vs-load", "--exclusive", "--jobs", "class=backup",
                 "--other", "class=etl-load label.team=etl")
    assert (args.run.__name__, args.name, args.exclusive, args.lock, args.mode) == (
        "run_add", "backup-vs-load", True, None, None)
    assert (args.jobs, args.other) == (selector("backup"), selector("etl-load", team="etl"))


def test_conflicts_add_lock_takes_a_resource_and_a_mode():
    args = parse("conflicts", "add", "load-writes", "--lock", "orders", "--mode", "write", "--jobs", "name=load-*")
    assert (args.exclusive, args.lock, args.mode, args.jobs, args.other) == (
        False, "orders", "write", selector(name="load-*"), None)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--exclusive", "--jobs", "team=etl"], "argument --jobs: 'team=etl': unknown key 'team'"),
        (["--exclusive", "--jobs", "class=a", "--other", "x"], "argument --other: 'x' is not KEY=VALUE"),
        (["--jobs", "class=a"], "one of the arguments --exclusive --lock is required"),
        (["--exclusive", "--lock", "orders", "--jobs", "class=a"], "not allowed with argument --exclusive"),
        (["--lock", "orders", "--mode", "exclusive", "--jobs", "class=a"], "argument --mode: invalid choice"),
        (["--exclusive"], "the following arguments are required: --jobs"),
    ],
)
def test_conflicts_add_refuses_bad_arguments_with_exit_2(argv, complaint, capsys):
    with pytest.raises(SystemExit) as exited:
        parse("conflicts", "add", "r", *argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_conflicts_suggest_takes_a_minimum_of_failures(capsys):
    assert parse("conflicts", "suggest").min_failures == 0
    assert parse("conflicts", "suggest", "--min", "5").min_failures == 5
    with pytest.raises(SystemExit):
        parse("conflicts", "suggest", "--min", "-1")
    assert "must be at least 0" in capsys.readouterr().err


def test_hold_and_release_take_a_job_and_a_reason():
    hold = parse("hold", "42", "--reason", "waiting for the DBA")
    assert (hold.run.__name__, hold.job, hold.reason) == ("run_hold", "42", "waiting for the DBA")
    assert parse("hold", "42").reason == ""
    release = parse("release", "42", "-o", "json")
    assert (release.run.__name__, release.job, release.output) == ("run_release", "42", "json")


def test_hold_modes_and_their_operator_names(capsys):
    assert parse("hold", "42").mode == ""
    assert parse("hold", "42", "--suspend").mode == "suspend"
    assert parse("hold", "42", "--requeue").mode == "requeue"
    with pytest.raises(SystemExit):
        parse("hold", "42", "--suspend", "--requeue")
    assert "not allowed with" in capsys.readouterr().err
    suspend = parse("suspend", "42", "--reason", "disk full")
    assert (suspend.run.__name__, suspend.mode, suspend.reason) == ("run_hold", "suspend", "disk full")
    assert parse("resume", "42").run.__name__ == "run_release"
    assert parse("providers", "resume", "p1").run.__name__ != "run_release"  # a provider's resume is its own
    assert parse("conflicts", "add", "x", "--exclusive", "--jobs", "class=a",
                 "--apply-to-running", "requeue").apply_to_running == "requeue"
    with pytest.raises(SystemExit):
        parse("conflicts", "add", "x", "--exclusive", "--jobs", "class=a", "--apply-to-running", "pause")


# What is refused before connecting (no server runs here: these must not need one)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--lock", "orders", "--jobs", "class=a"], "--lock orders needs --mode read"),
        (["--exclusive", "--mode", "read", "--jobs", "class=a"], "--mode goes with --lock RESOURCE"),
        (["--lock", "orders", "--mode", "read", "--jobs", "class=a", "--other", "class=b"], "--other goes with"),
    ],
)
def test_conflicts_add_refuses_flags_that_do_not_go_together(argv, complaint, capsys):
    assert main(["conflicts", "add", "r", *argv, "--server", "127.0.0.1:9"]) == 2
    assert complaint in capsys.readouterr().err


def test_conflicts_check_reads_a_job_file_first_and_reports_its_problems(tmp_path: Path, capsys):
    bad = tmp_path / "job.toml"
    bad.write_text('name = "j"\nrun_window = "late"\n[[tasks]]\nname = "t"\ncommand = "true"\n')
    assert main(["conflicts", "check", str(bad), "--server", "127.0.0.1:9"]) == 2
    assert f'{bad}:2: run_window: expected a daily window "HH:MM-HH:MM"' in capsys.readouterr().err


# Rules from options and mappings; requests


def test_options_make_exclusive_and_lock_rules():
    exclusive = rule_from_options("loads", lock=None, mode=None, jobs=selector("etl-load"), other=None)
    assert (exclusive.kind, exclusive.jobs, exclusive.HasField("other")) == (EXCLUSIVE, selector("etl-load"), False)
    lock = rule_from_options("w", lock="orders", mode="write", jobs=selector(name="load-*"), other=None)
    assert (lock.kind, lock.resource, lock.mode) == (LOCK, "orders", WRITE)


def test_mappings_make_rules_with_selector_text_or_tables():
    rule = rule_from_mapping({"name": "backup-vs-load", "kind": "EXCLUSIVE", "jobs": "class=backup",
                              "other": {"job_class": "etl-load", "labels": {"team": "etl"}}})
    assert (rule.kind, rule.jobs, rule.other) == (EXCLUSIVE, selector("backup"), selector("etl-load", team="etl"))
    lock = rule_from_mapping({"name": "r", "resource": "orders", "mode": "read", "jobs": "class=report"})
    assert (lock.kind, lock.mode) == (LOCK, READ)  # a resource makes it a lock
    for bad, named in (({"name": "r", "jobs": "class=a", "size": 1}, "unknown key 'size'"),
                       ({"name": "r", "kind": "sometimes", "jobs": "class=a"}, "unknown conflict kind 'sometimes'"),
                       ({"name": "r", "resource": "o", "mode": "rw", "jobs": "class=a"}, "unknown lock mode 'rw'"),
                       ({"name": "r", "jobs": {"class": "a"}}, "jobs.class: unknown key")):
        with pytest.raises(ValueError, match=named):
            rule_from_mapping(bad)


def test_a_check_asks_about_a_job_id_or_a_spec_not_both():
    assert check_request("42").job_id == "42"
    from_mapping = check_request(spec={"name": "j", "class": "etl", "tasks": [{"name": "t", "command": "true"}]})
    assert (from_mapping.WhichOneof("job"), from_mapping.spec.job_class) == ("spec", "etl")
    for job_id, spec in (("", None), ("42", job_pb2.JobSpec(name="j"))):
        with pytest.raises(ValueError, match="give job_id .* or spec"):
            check_request(job_id, spec)
    with pytest.raises(JobFileError, match="tasks: missing"):
        check_request(spec={"name": "j"})


# How rules, checks, suggestions and holds read


def test_rule_rows_show_the_other_side_or_the_resource_and_mode():
    created = Timestamp(seconds=1_700_000_000)
    exclusive = conflict_pb2.ConflictRule(name="backup-vs-load", kind=EXCLUSIVE, jobs=selector("backup"),
                                          other=selector("etl-load", team="etl"), created_by="alice",
                                          create_time=created)
    alone = conflict_pb2.ConflictRule(name="loads", kind=EXCLUSIVE, jobs=selector("etl-load"), created_by="bob")
    lock = conflict_pb2.ConflictRule(name="load-writes", kind=LOCK, jobs=selector(name="load-*"), resource="orders",
                                     mode=WRITE, created_by="alice")
    assert len(RULE_HEADERS) == len(rule_row(lock))
    assert rule_row(exclusive) == ("backup-vs-load", "EXCLUSIVE", "class=backup", "class=etl-load label.team=etl",
                                   None, "alice")
    assert rule_row(alone) == ("loads", "EXCLUSIVE", "class=etl-load", "(each other)", None, "bob")
    assert rule_row(lock) == ("load-writes", "LOCK", "name=load-*", "orders", "WRITE", "alice")
    assert describe_rule(lock) == "name=load-* take a write lock on orders"
    assert describe_rule(alone) == "class=etl-load never with each other"


def test_a_check_says_what_holds_the_job_or_that_it_would_start():
    held = conflict_pb2.CheckConflictsResponse(held=True, reason="held by job 7 nightly-load (rule loads)", blockers=[
        conflict_pb2.ConflictBlocker(job_id="7", job_name="nightly-load", rule="loads"),
        conflict_pb2.ConflictBlocker(reason="its window opens at 22:00")])
    assert check_report(held) == ("held: held by job 7 nightly-load (rule loads)\n"
                                  "  job 7 nightly-load (rule loads)\n"
                                  "  its window opens at 22:00")
    window = conflict_pb2.CheckConflictsResponse(held=True, reason="its window opens at 22:00", blockers=[
        conflict_pb2.ConflictBlocker(reason="its window opens at 22:00")])
    assert check_report(window) == "held: its window opens at 22:00"  # not twice
    free = conflict_pb2.CheckConflictsResponse(held=False, reason="nothing holds it: it may start now")
    assert check_report(free) == "not held: nothing holds it: it may start now"
    running = conflict_pb2.CheckConflictsResponse(held=False, reason="admitted: it holds its locks and runs")
    assert check_report(running) == "not held: admitted: it holds its locks and runs"


def test_suggestions_are_a_table_then_the_commands_to_add_them():
    command = "jobplane conflicts add backup-vs-etl-load --exclusive --jobs class=backup --other class=etl-load"
    text = suggestion_report([conflict_pb2.ConflictSuggestion(class_a="class=backup", class_b="class=etl-load",
                                                              failures=4, command=command)])
    lines = text.splitlines()
    assert lines[0].split() == ["CLASS_A", "CLASS_B", "FAILURES", "LAST"]
    assert lines[1].split() == ["class=backup", "class=etl-load", "4", "-"]
    assert lines[-1] == command
    # The suggested command is one this CLI reads.
    argv = command.split()[1:]
    assert parse(*argv).other == selector("etl-load")


def test_hold_and_release_show_the_job_state_and_hold():
    job = job_pb2.Job(id="42", spec=job_pb2.JobSpec(name="nightly"), state=job_pb2.JOB_STATE_QUEUED,
                      status=status_pb2.NORMALIZED_STATUS_ON_HOLD, hold="alice: waiting for the DBA",
                      reason="alice: waiting for the DBA")
    assert hold_summary("held", job) == 'held job 42 "nightly": now ON_HOLD (QUEUED); hold: alice: waiting for the DBA'
    job.hold, job.reason = "", "held by job 7 nightly-load (rule loads)"
    assert hold_summary("released", job) == ('released job 42 "nightly": now ON_HOLD (QUEUED); hold: none; '
                                             "held by job 7 nightly-load (rule loads)")
