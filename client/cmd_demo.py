"""`jobplane demo`: the guided tour, start to finish in under a minute."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from jobplane.client.cmd_providers import provider_table
from jobplane.client.cmd_submit import follow, submit, submitted
from jobplane.client.command import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK
from jobplane.client.errors import JobplaneError
from jobplane.client.jobfile import parse_job_file
from jobplane.client.local import (
    INSECURE_WARNING,
    LocalConfig,
    LocalPlane,
    LocalPlaneError,
    exit_report,
    sigterm_as_interrupt,
)
from jobplane.v1 import job_pb2

AGENTS = 2
SLOTS = 2
PROVIDERS_TIMEOUT = 20.0
JOB_TIMEOUT = 60.0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="a guided tour: start a control plane, run a small job, stop (under a minute)",
        description="Start a throwaway server and 2 agents, run examples/demo.toml while showing its events, "
        "then shut everything down. Exits 0 when the job succeeded.",
    )
    parser.add_argument("--insecure", action="store_true",
                        help="run the server and agents in plaintext with no authentication (debugging only)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="jobplane-demo-"))
    config = LocalConfig(data_dir=data_dir, listen="127.0.0.1:0", agents=AGENTS, slots=SLOTS, insecure=args.insecure)
    with sigterm_as_interrupt():
        with LocalPlane(config) as plane:
            code = _tour_or_report(plane)
            _say("Stopping the agents and the server.")
    if code == EXIT_OK:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        _say(f"The logs are kept in {plane.log_dir}")
    return code


def _tour_or_report(plane: LocalPlane) -> int:
    try:
        return _tour(plane)
    except KeyboardInterrupt:
        print()
        return EXIT_INTERRUPTED
    except LocalPlaneError as error:
        print(f"jobplane demo: {error}", file=sys.stderr)
        return EXIT_JOB_FAILED
    except JobplaneError as error:
        print(f"jobplane demo: {error}", file=sys.stderr)
        if child := plane.exited():  # the likely cause
            print(f"jobplane demo: {exit_report(child)}", file=sys.stderr)
        return EXIT_JOB_FAILED


def _tour(plane: LocalPlane) -> int:
    _say(
        f"Welcome to jobplane. This tour starts a server and {AGENTS} agents ({SLOTS} slots each) "
        f"in {plane.config.data_dir}, runs one job, and stops."
    )
    address = plane.start()
    _say(f"The server stores everything in SQLite and listens on {address}.")
    if plane.config.insecure:
        print(INSECURE_WARNING.format(address=address), file=sys.stderr, flush=True)
    else:
        _say(
            f"It made its own CA and an admin token in {plane.config.data_dir}; the agents enroll with a "
            "join token and from then on talk to it over mutual TLS."
        )
    with plane.connect() as client:
        _say("Agents connect, say what their machine offers, and become providers:")
        print(provider_table(plane.wait_for_agents(client, PROVIDERS_TIMEOUT)))

        demo = resources.files("jobplane.examples").joinpath("demo.toml").read_text()
        job_file = parse_job_file(demo, name="demo.toml")
        _say(
            "Submitting demo.toml: shell commands and Python calls, a parameter sweep and chunked items, "
            "wired into a small graph with `after`."
        )
        job, _ = submit(client, job_file)
        print(submitted(client, job))

        _say("Each task's status, normalized (WAITING, RUNNING, SUCCESS, ...), as the server reports it:")
        job = follow(client, job.id, timeout=JOB_TIMEOUT)

    if job.state != job_pb2.JOB_STATE_SUCCEEDED:
        _say("The job did not succeed; the table above says which task failed and why.")
        return EXIT_JOB_FAILED
    _say(
        "That is the loop: submit a file, watch statuses, inspect tasks. To keep a control plane running, "
        "use `jobplane up`, then `jobplane submit FILE --watch` from another terminal."
    )
    return EXIT_OK


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)
