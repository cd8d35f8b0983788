"""A fake outside scheduler for the external adapter's tests: a Python script keeping its state
in files, submitted to, polled and cancelled through real subprocesses (`sched.py STATE ACTION
[ID]`), and the steps (mainframe-like statuses) it plays back."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from jobplane.v1 import job_pb2

JOB_ID = "JOB00042"

# `sched.py STATE ACTION [ID]`. A step is a JSON object to print, or directives: "__stdout__",
# "__stderr__", "__exit__", "__sleep__" (writes its pid to STATE/sleeping first). Poll N plays
# step N of STATE/steps.json (the last one again once they run out).
SCHEDULER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path

    state, action = Path(sys.argv[1]), sys.argv[2]

    def play(step):
        if "__sleep__" in step:
            (state / "sleeping.tmp").write_text(str(os.getpid()))
            (state / "sleeping.tmp").rename(state / "sleeping")  # whole, for who waits for it
            time.sleep(step["__sleep__"])
        plain = not any(key.startswith("__") for key in step)
        sys.stderr.write(step.get("__stderr__", ""))
        print(json.dumps(step) if plain else step.get("__stdout__", ""))
        sys.exit(step.get("__exit__", 0))

    if action == "submit":
        seen = {"task": os.environ.get("JOBPLANE_TASK_ID", ""), "cwd": os.getcwd()}
        (state / "submitted").write_text(json.dumps(seen))
        play(json.loads((state / "submit.json").read_text()))
    elif action == "poll":
        with open(state / "polls", "a") as polls:
            polls.write(f"{time.monotonic()} {sys.argv[3]}\\n")
        n = len((state / "polls").read_text().splitlines())
        steps = json.loads((state / "steps.json").read_text())
        play(steps[min(n, len(steps)) - 1])
    elif action == "cancel":
        (state / "cancelled").write_text(sys.argv[3])
""")

AWAITING = {"queue": "INPUT", "status": "AWAITING EXECUTION"}
EXECUTING = {"queue": "EXECUTION", "status": "EXECUTING"}
ENDED = {"queue": "PRINT", "status": "CC 0000", "done": True, "exit_code": 0}
ABEND = {"queue": "PRINT", "status": "ABEND", "specific": "S0C7", "done": True, "exit_code": 12}
JCL_ERROR = {"queue": "PRINT", "status": "JCL ERROR", "done": True, "error": "JCL ERROR"}
FAIL = {"__stderr__": "scheduler unreachable\n", "__exit__": 3}


class Scheduler:
    """The fake scheduler's script and state directory."""

    def __init__(self, state: Path, steps: list[dict], submit: dict | None = None) -> None:
        state.mkdir(parents=True, exist_ok=True)
        self.state = state
        (state / "sched.py").write_text(SCHEDULER)
        (state / "steps.json").write_text(json.dumps(steps))
        (state / "submit.json").write_text(json.dumps(submit or {"id": JOB_ID}))

    def spec(self, interval: float = 0.05, **commands: list[str]) -> job_pb2.ExternalSpec:
        argv = [sys.executable, str(self.state / "sched.py"), str(self.state)]
        return job_pb2.ExternalSpec(
            submit=commands.get("submit", [*argv, "submit"]), poll=[*argv, "poll"],
            cancel=commands.get("cancel", [*argv, "cancel"]), poll_interval_seconds=interval)

    def polls(self) -> list[tuple[float, str]]:
        lines = (self.state / "polls").read_text().splitlines() if self.polled() else []
        return [(float(at), job_id) for at, job_id in (line.split() for line in lines)]

    def polled(self) -> bool:
        return (self.state / "polls").exists()

    def read(self, name: str) -> str | None:
        path = self.state / name
        return path.read_text() if path.exists() else None
