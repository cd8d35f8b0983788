"""The Python worker pool: real spawned workers calling functions from a module in tmp_path."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support import pid_alive, wait_until

from jobplane.agent.pyworkers import PyCall, WorkerPool
from jobplane.agent.results import Outcome, StopRequest, request_stop

TASKS = '''
import os, time

def add(a, b):
    return a + b

def boom():
    raise ValueError("boom")

def chatty():
    print("hello from the task")
    return "done"

def whoami():
    return {"task": os.environ.get("JOBPLANE_TASK_ID"), "cwd": os.getcwd()}

def probe():
    return os.environ.get("PYQ_PROBE")

def a_set():
    return {1, 2}

def hang(pidfile):
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(300)

def crash():
    os._exit(7)

def steps(n, ctx):
    for i in range(n):
        ctx.checkpoint({"step": i})
    return {"resume": ctx.resume, "who": [ctx.task_id, ctx.job_id, ctx.attempt],
            "env": os.environ.get("JOBPLANE_CHECKPOINT")}

def bad_checkpoint(ctx):
    ctx.checkpoint({1, 2})

def any_kwargs(**kwargs):
    return sorted(kwargs)

def pid():
    return os.getpid()

def meet(directory, n):
    """Wait (up to a minute) until n calls run at once; this worker's pid."""
    open(os.path.join(directory, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(directory)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()
'''


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """A directory holding the importable module `agent_tasks` (the pool puts it on sys.path)."""
    (tmp_path / "agent_tasks.py").write_text(textwrap.dedent(TASKS))
    return tmp_path


def with_pool(work_dir: Path, body: Callable[[WorkerPool], Awaitable[object]], size: int = 1):
    """Run `body(pool)` against a fresh pool of `size` workers, closing it afterwards."""

    async def main() -> object:
        pool = WorkerPool(size, work_dir=str(work_dir))
        pool.start()
        try:
            return await body(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def run_one(work_dir: Path, call: PyCall):
    return with_pool(work_dir, lambda pool: pool.run(call))


def test_keyword_and_positional_arguments_and_the_json_result(work_dir):
    async def body(pool):
        return [await pool.run(PyCall("agent_tasks:add", '{"a": 1, "b": 2}')),
                await pool.run(PyCall("agent_tasks:add", '["x", "y"]'))]

    by_keyword, by_position = with_pool(work_dir, body)
    assert by_keyword.outcome == Outcome.SUCCEEDED and by_keyword.result_json == "3"
    assert by_position.result_json == '"xy"'
    assert by_keyword.raw == {"state": "returned"}
    assert by_keyword.exit_code is None


def test_an_exception_fails_the_task_with_its_type_message_and_traceback(work_dir):
    result = run_one(work_dir, PyCall("agent_tasks:boom"))
    assert result.outcome == Outcome.FAILED
    assert result.error == "ValueError: boom"
    assert result.raw == {"state": "raised", "exception_type": "ValueError"}
    assert "Traceback" in result.stderr_tail and 'raise ValueError("boom")' in result.stderr_tail


def test_printed_output_is_captured(work_dir):
    result = run_one(work_dir, PyCall("agent_tasks:chatty"))
    assert result.stdout_tail == "hello from the task\n"
    assert result.result_json == '"done"'


def test_a_call_that_prints_nothing_gets_no_log_directory_yet_reads_as_complete_and_empty(work_dir, tmp_path):
    # A directory and a `done` file per call cost more than a no-op call: a silent call gets a line.
    from jobplane.agent import logstore

    quiet, loud = (logstore.log_dir(tmp_path / "state" / name) for name in ("quiet.1", "loud.1"))
    (tmp_path / "state").mkdir()

    async def body(pool):
        return [await pool.run(PyCall("agent_tasks:add", "[1, 2]", log_dir=str(quiet))),
                await pool.run(PyCall("agent_tasks:chatty", log_dir=str(loud)))]

    silent, chatty = with_pool(work_dir, body)
    assert (silent.outcome, chatty.outcome) == (Outcome.SUCCEEDED, Outcome.SUCCEEDED)
    assert not quiet.exists() and logstore.is_done(quiet)
    assert logstore.span(quiet, "out") == logstore.Span(0, 0, logstore.segment_size(0))
    assert logstore.read(quiet, "err", 0) == b""
    assert logstore.is_done(loud) and logstore.read(loud, "out", 0) == b"hello from the task\n"
    assert logstore.read(loud, "err", 0) == b""


def test_env_and_cwd_apply_to_the_call_only(work_dir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cwd")

    async def body(pool):
        return [await pool.run(PyCall("agent_tasks:whoami", env={"JOBPLANE_TASK_ID": "7"},
                                      cwd=str(elsewhere))),
                await pool.run(PyCall("agent_tasks:whoami"))]

    first, second = with_pool(work_dir, body)
    assert first.result_json == f'{{"task": "7", "cwd": "{elsewhere}"}}'
    assert '"task": null' in second.result_json and str(elsewhere) not in second.result_json


def test_a_variable_a_call_sets_is_the_workers_own_again_for_the_next_calls(work_dir, monkeypatch):
    monkeypatch.setenv("PYQ_PROBE", "the worker's")

    async def body(pool):
        return [(await pool.run(PyCall("agent_tasks:probe", env=env))).result_json
                for env in ({"PYQ_PROBE": "a call's"}, {}, {"OTHER": "x"}, {"PYQ_PROBE": "again"}, {})]

    assert with_pool(work_dir, body) == ['"a call\'s"', '"the worker\'s"', '"the worker\'s"', '"again"',
                                         '"the worker\'s"']


def test_a_module_imported_by_a_call_sees_that_calls_env_and_no_earlier_calls(work_dir):
    """Module-level code (settings read at import) runs with its own call's env: never with the
    variables (secrets) of the call the worker ran before."""
    for name in ("settings_a", "settings_b"):
        (work_dir / f"{name}.py").write_text(textwrap.dedent('''
            import os
            AT_IMPORT = os.environ.get("PYQ_SECRET")

            def seen():
                return {"at_import": AT_IMPORT, "now": os.environ.get("PYQ_SECRET")}
            '''))

    async def body(pool):
        await pool.run(PyCall("agent_tasks:probe", env={"PYQ_SECRET": "job A's"}))
        return [json.loads((await pool.run(PyCall(target, env=env))).result_json)
                for target, env in (("settings_a:seen", {}), ("settings_b:seen", {"PYQ_SECRET": "job C's"}))]

    assert with_pool(work_dir, body) == [{"at_import": None, "now": None},
                                         {"at_import": "job C's", "now": "job C's"}]


@pytest.mark.parametrize("target, words", [
    ("agent_tasks_missing:add", "cannot load 'agent_tasks_missing:add': ModuleNotFoundError"),
    ("agent_tasks:nope", "cannot load 'agent_tasks:nope': AttributeError"),
    ("agent_tasks", "expected 'module:function'"),
])
def test_a_bad_target_fails_naming_it(work_dir, target, words):
    result = run_one(work_dir, PyCall(target))
    assert result.outcome == Outcome.FAILED
    assert words in result.error


def test_bad_args_json_fails_naming_the_field(work_dir):
    result = run_one(work_dir, PyCall("agent_tasks:add", '"just a string"'))
    assert result.outcome == Outcome.FAILED
    assert result.error.startswith("args_json: must be a JSON object or array")


def test_a_return_value_that_is_not_json_fails_clearly(work_dir):
    result = run_one(work_dir, PyCall("agent_tasks:a_set"))
    assert result.outcome == Outcome.FAILED
    assert "the return value of agent_tasks:a_set is not JSON-serialisable" in result.error


def test_timeout_kills_the_worker_and_the_pool_keeps_working(work_dir, tmp_path):
    pidfile = tmp_path / "hang.pid"

    async def body(pool):
        timed_out = await pool.run(PyCall("agent_tasks:hang", f'["{pidfile}"]', timeout=1.0))
        return timed_out, await pool.run(PyCall("agent_tasks:add", "[2, 3]"))

    timed_out, after = with_pool(work_dir, body)
    assert timed_out.outcome == Outcome.TIMED_OUT
    assert timed_out.error == "timed out after 1 s"
    assert timed_out.raw == {"state": "timed_out"}
    assert after.result_json == "5"
    worker = int(pidfile.read_text())
    wait_until(lambda: not pid_alive(worker), 30, "the timed-out worker to be gone")


def test_a_stop_request_kills_the_call_and_reports_the_reason(work_dir, tmp_path):
    pidfile = tmp_path / "hang.pid"

    async def body(pool):
        stop = asyncio.get_running_loop().create_future()
        running = asyncio.create_task(pool.run(PyCall("agent_tasks:hang", f'["{pidfile}"]'), stop=stop))
        await asyncio.to_thread(wait_until, pidfile.exists, 30, "the call to start")
        request_stop(stop, StopRequest.cancel("no longer needed"))
        return await running, await pool.run(PyCall("agent_tasks:add", "[1, 1]"))

    cancelled, after = with_pool(work_dir, body)
    assert cancelled.outcome == Outcome.CANCELLED
    assert cancelled.error == "no longer needed"
    assert cancelled.raw == {"state": "cancelled"}
    assert after.result_json == "2"
    worker = int(pidfile.read_text())
    wait_until(lambda: not pid_alive(worker), 30, "the cancelled worker to be gone")


def test_a_stop_request_before_dispatch_never_runs_the_call(work_dir):
    async def body(pool):
        stop = asyncio.get_running_loop().create_future()
        request_stop(stop, StopRequest.cancel("changed my mind"))
        return await pool.run(PyCall("agent_tasks:add", "[1, 1]"), stop=stop,
                              on_start=lambda _: pytest.fail("the call started"))

    result = with_pool(work_dir, body)
    assert (result.outcome, result.error) == (Outcome.CANCELLED, "changed my mind")


def test_a_worker_that_dies_fails_its_call_and_is_replaced(work_dir):
    async def body(pool):
        crashed = await pool.run(PyCall("agent_tasks:crash"))
        return crashed, await pool.run(PyCall("agent_tasks:add", "[1, 2]"))

    crashed, after = with_pool(work_dir, body)
    assert crashed.outcome == Outcome.FAILED
    assert crashed.error == "the python worker running agent_tasks:crash exited with code 7"
    assert crashed.raw == {"state": "crashed"}
    assert after.result_json == "3"


def test_calls_beyond_the_pool_size_wait_for_a_free_worker(work_dir):
    async def body(pool):
        calls = [pool.run(PyCall("agent_tasks:add", f"[{i}, 0]")) for i in range(20)]
        return await asyncio.gather(*calls)

    results = with_pool(work_dir, body, size=2)
    assert [r.result_json for r in results] == [str(i) for i in range(20)]


def test_calls_one_after_the_other_go_to_the_worker_that_ran_the_last(work_dir, tmp_path):
    """The worker that ended last is taken first: it is warm, the others sleep (a worker woken
    after a long sleep costs several times a no-op's CPU)."""
    (tmp_path / "met").mkdir()
    meet = PyCall("agent_tasks:meet", json.dumps([str(tmp_path / "met"), 3]))

    async def body(pool):
        together = await asyncio.gather(*(pool.run(meet) for _ in range(3)))
        return together, [await pool.run(PyCall("agent_tasks:pid")) for _ in range(4)]

    together, one_by_one = with_pool(work_dir, body, size=3)
    assert len({r.result_json for r in together}) == 3  # three workers, all idle now
    assert len({r.result_json for r in one_by_one}) == 1


def test_a_function_with_ctx_checkpoints_through_it_and_sees_where_to_resume(work_dir):
    checkpoints: list[str] = []

    async def body(pool):
        call = PyCall("agent_tasks:steps", "[3]", env={"JOBPLANE_CHECKPOINT": '{"step": 7}'},
                      task_id="t1", job_id="j1", attempt=2, checkpoint_json='{"step": 7}')
        return await pool.run(call, on_checkpoint=checkpoints.append)

    result = with_pool(work_dir, body)
    assert result.outcome == Outcome.SUCCEEDED
    assert json.loads(result.result_json) == {
        "resume": {"step": 7}, "who": ["t1", "j1", 2], "env": '{"step": 7}'}
    assert [json.loads(c) for c in checkpoints] == [{"step": 0}, {"step": 1}, {"step": 2}]


def test_a_state_that_is_not_json_fails_the_task_with_a_type_error(work_dir):
    result = run_one(work_dir, PyCall("agent_tasks:bad_checkpoint"))
    assert result.outcome == Outcome.FAILED
    assert result.raw["exception_type"] == "TypeError"
    assert "the checkpoint state is not JSON-serialisable" in result.error


def test_only_a_parameter_named_ctx_gets_the_context(work_dir):
    result = run_one(work_dir, PyCall("agent_tasks:any_kwargs"))
    assert result.result_json == "[]"
