"""bench/history.py stops what it started when a bench fails to start: its servers and agents
run in sessions of their own (support.Proc), so nothing else would stop them."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "history.py"


@pytest.fixture
def history(monkeypatch):
    """bench/history.py with stand-ins for the processes; `started` lists them in start order.
    The big database's agent never connects."""
    spec = importlib.util.spec_from_file_location("bench_history", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = []

    class Proc:
        def __init__(self, url):
            self.url, self.stopped = url, False
            started.append(self)

        def stop(self):
            self.stopped = True

    class Server(Proc):
        def __init__(self, work, url, **options):
            super().__init__(url)

        def client(self):
            return SimpleNamespace(close=lambda: None, list_providers=lambda: [SimpleNamespace(state=1)],
                                   url=self.url)

    class Agent(Proc):
        def __init__(self, work, server, name, **options):
            super().__init__(server.url)

    def wait_until(ready, timeout, what):
        if not ready() or any(p.url == "big" for p in started if isinstance(p, Agent)):
            raise AssertionError(f"timed out waiting for {what}")

    monkeypatch.setattr(module, "ServerProc", Server)
    monkeypatch.setattr(module, "AgentProc", Agent)
    monkeypatch.setattr(module, "wait_until", wait_until)
    monkeypatch.setattr(module.Bench, "rate", lambda self, batch: 1000.0)
    module.started = started
    return module


def test_a_bench_that_fails_to_start_stops_both_benches_processes(history, tmp_path):
    with pytest.raises(AssertionError, match="the agent"):
        history.throughput("empty", "big", tmp_path, batch=10, rounds=1)
    assert [(p.url, type(p).__name__) for p in history.started] == [
        ("empty", "Server"), ("empty", "Agent"), ("big", "Server"), ("big", "Agent")]
    assert all(p.stopped for p in history.started)
