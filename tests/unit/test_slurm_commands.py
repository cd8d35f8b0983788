"""The Slurm commands the agent runs and what it reads in their output (pinned formats)."""

from __future__ import annotations

import pytest

from jobplane.agent.slurm_commands import (
    ending, parse_sacct, parse_sbatch, parse_squeue, sacct_argv, sbatch_argv, squeue_argv, unknown_job)
from jobplane.v1 import job_pb2


def test_sbatch_is_parsable_names_the_job_and_puts_its_output_in_two_files():
    spec = job_pb2.SlurmSpec(script="run.sh", args=["--fast", "in.dat"], partition="debug", time_limit="00:10:00",
                             cpus=2, mem="1G", array="3", account="physics", qos="low", extra_args=["--gres=gpu:1"])
    assert sbatch_argv(spec, name="simulate[3]", comment="jobplane task 7 attempt 1") == [
        "sbatch", "--parsable", "--job-name=simulate[3]", "--output=slurm-%j.out", "--error=slurm-%j.err",
        "--partition=debug", "--time=00:10:00", "--mem=1G", "--account=physics", "--qos=low", "--array=3",
        "--cpus-per-task=2", "--comment=jobplane task 7 attempt 1", "--gres=gpu:1", "run.sh", "--fast", "in.dat"]


def test_a_command_line_is_wrapped_and_unset_options_are_left_to_slurm():
    spec = job_pb2.SlurmSpec(wrap="echo $SLURM_JOB_ID")
    assert sbatch_argv(spec, name="t") == ["sbatch", "--parsable", "--job-name=t", "--output=slurm-%j.out",
                                           "--error=slurm-%j.err", "--wrap=echo $SLURM_JOB_ID"]


@pytest.mark.parametrize("out, job_id", [("12\n", "12"), ("12;cluster-a\n", "12"),
                                         ("sbatch: warning: x\n4031\n", "4031")])
def test_the_job_id_is_what_sbatch_parsable_prints(out, job_id):
    assert parse_sbatch(out) == job_id


@pytest.mark.parametrize("out", ["", "Submitted batch job 12\n", "error\n"])
def test_no_job_id_is_an_error(out):
    with pytest.raises(ValueError, match="printed no job id"):
        parse_sbatch(out)


def test_one_squeue_asks_for_every_job_in_any_state():
    argv = squeue_argv(["12", "13"])
    assert argv[:4] == ["squeue", "--noheader", "--states=all", "--jobs=12,13"]
    assert argv[4].startswith("--Format=JobID:|,ArrayJobID:|,ArrayTaskID:|,State:|,Reason:|,exit_code:|")


def test_squeue_lines_become_raw_properties_with_sacct_style_exit_codes():
    # As squeue 22.05 prints them (exit_code is a wait status: 768 is exit 3, 15 is SIGTERM).
    out = ("1|1|N/A|FAILED|NonZeroExitCode|768|0|debug|vm|\n"
           "2|2|1-3|PENDING|Resources|0|0|debug||\n"
           "9|9|N/A|CANCELLED|None|15|0|debug|vm|\n")
    jobs = parse_squeue(out)
    assert jobs["1"] == {"JobId": "1", "ArrayJobId": "1", "ArrayTaskId": "N/A", "State": "FAILED",
                         "Reason": "NonZeroExitCode", "ExitCode": "3:0", "DerivedExitCode": "0:0",
                         "Partition": "debug", "NodeList": "vm"}
    assert (jobs["2"]["State"], jobs["2"]["Reason"], jobs["2"]["NodeList"]) == ("PENDING", "Resources", "")
    assert jobs["9"]["ExitCode"] == "0:15"


def test_sacct_is_asked_for_allocations_only():
    assert sacct_argv(["5", "8"]) == [
        "sacct", "--noheader", "--parsable2", "--allocations", "--jobs=5,8",
        "--format=JobIDRaw,JobID,State,Reason,ExitCode,DerivedExitCode,Partition,NodeList"]


def test_sacct_lines_become_the_same_raw_properties():
    out = ("5|5_5|COMPLETED|None|0:0|0:0|debug|vm\n"
           "7|7|CANCELLED by 0|None|0:15|0:0|debug|None assigned\n"
           "8|8|TIMEOUT|TimeLimit|0:15|0:0|debug|vm\n")
    jobs = parse_sacct(out)
    assert jobs["5"] == {"JobId": "5", "ArrayJobId": "5", "ArrayTaskId": "5", "State": "COMPLETED", "Reason": "None",
                         "ExitCode": "0:0", "DerivedExitCode": "0:0", "Partition": "debug", "NodeList": "vm"}
    assert (jobs["7"]["State"], jobs["7"]["NodeList"], jobs["7"]["ArrayTaskId"]) == ("CANCELLED", "", "N/A")
    assert jobs["8"]["Reason"] == "TimeLimit"


def test_squeue_saying_it_knows_no_such_job_is_told_apart_from_a_failure():
    assert unknown_job("'squeue' exited with code 1: slurm_load_jobs error: Invalid job id specified")
    assert not unknown_job("'squeue' exited with code 1: Unable to contact slurm controller (connect failure)")


@pytest.mark.parametrize("raw, verdict", [
    ({"JobId": "4", "State": "COMPLETED", "ExitCode": "0:0"}, (True, 0, None, "")),
    ({"JobId": "4", "State": "FAILED", "ExitCode": "3:0", "Reason": "NonZeroExitCode"},
     (False, 3, None, "Slurm job 4 ended FAILED, exit code 3, reason NonZeroExitCode")),
    ({"JobId": "4", "State": "TIMEOUT", "ExitCode": "0:15", "Reason": "TimeLimit"},
     (False, None, 15, "Slurm job 4 ended TIMEOUT, killed by signal 15, reason TimeLimit")),
    # slurmstepd's SIGTERM at the time limit: the batch shell may exit 143 rather than die of the
    # signal; the job still ended TIMEOUT, which its reason must say (not "exited with code 143").
    ({"JobId": "4", "State": "TIMEOUT", "ExitCode": "143:0", "Reason": "TimeLimit"},
     (False, None, None, "Slurm job 4 ended TIMEOUT, exit code 143, reason TimeLimit")),
    ({"JobId": "4", "State": "OUT_OF_MEMORY", "ExitCode": "0:125", "Reason": "None"},
     (False, None, 125, "Slurm job 4 ended OUT_OF_MEMORY, killed by signal 125")),
])
def test_how_a_job_ended(raw, verdict):
    found = ending(raw)
    assert (found.succeeded, found.exit_code, found.signal, found.error) == verdict
