"""jobplane-agent's flags and the AgentConfig they build; the machine facts in the hello."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import Proc, free_port, wait_until

from jobplane import __version__
from jobplane.agent import AgentConfig, cgroups
from jobplane.agent.facts import machine_facts
from jobplane.agent.main import config_from_args, parse_args
from jobplane.agent.procstat import cpu_ticks_by_group


@pytest.fixture(autouse=True)
def no_credentials_around(monkeypatch, tmp_path):
    """Flags alone decide: no token, CA or `jobplane up` data directory from the environment."""
    for name in ("JOBPLANE_TOKEN", "JOBPLANE_CA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBPLANE_HOME", str(tmp_path / "home"))


def test_flags_build_the_config(tmp_path):
    args = parse_args(["--server", "h:1", "--name", "n1", "--slots", "3", "--label", "gpu=true",
                       "--label", "zone=a=b", "--heartbeat", "0.5", "--kill-grace", "0",
                       "--work-dir", str(tmp_path), "--standby", "--insecure",
                       "--containment", "subreaper", "--stop-wait", "30"])
    assert config_from_args(args) == AgentConfig(
        server="h:1", name="n1", slots=3, labels={"gpu": "true", "zone": "a=b"},
        heartbeat_interval=0.5, kill_grace=0.0, work_dir=str(tmp_path), standby=True,
        insecure=True, containment="subreaper", stop_wait=30.0)


def test_version_says_which_containment_is_in_force_and_why(tmp_path):
    def version(*flags: str) -> str:
        done = subprocess.run([sys.executable, "-m", "jobplane.agent", "--version", *flags],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    found = cgroups.detect()
    assert version() == f"jobplane-agent {__version__}\ncontainment: {found.kind} ({found.why})\n"
    assert version("--containment", "subreaper") == (
        f"jobplane-agent {__version__}\n"
        "containment: subreaper (chosen with --containment subreaper)\n")


def test_server_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("JOBPLANE_SERVER", "elsewhere:7070")
    assert parse_args(["--insecure"]).server == "elsewhere:7070"


def test_a_token_and_a_ca_configure_enrollment(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("PEM")
    config = config_from_args(parse_args(["--token", "jpa_x", "--ca", str(ca),
                                          "--work-dir", str(tmp_path)]))
    assert (config.token, config.ca_file, config.insecure) == ("jpa_x", str(ca), False)
    assert "jpa_x" not in repr(config)


def test_the_token_and_ca_come_from_a_file_the_environment_or_the_data_directory(
        tmp_path, monkeypatch):
    (tmp_path / "token").write_text("jpa_from_file\n")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "ca-bundle.crt").write_text("PEM")
    from_file = parse_args(["--token-file", str(tmp_path / "token"), "--work-dir", str(tmp_path)])
    assert (from_file.token, from_file.ca) == ("jpa_from_file", str(tmp_path / "home" / "ca-bundle.crt"))
    monkeypatch.setenv("JOBPLANE_TOKEN", "jpa_from_env")
    monkeypatch.setenv("JOBPLANE_CA", str(tmp_path / "token"))
    from_env = parse_args(["--work-dir", str(tmp_path)])
    assert (from_env.token, from_env.ca) == ("jpa_from_env", str(tmp_path / "token"))
    monkeypatch.setenv("JOBPLANE_TOKEN", f"@{tmp_path / 'token'}")
    assert parse_args(["--work-dir", str(tmp_path)]).token == "jpa_from_file"


def test_an_enrolled_agent_needs_no_token(tmp_path):
    identity = tmp_path / "state" / "identity"
    identity.mkdir(parents=True)
    (identity / "endpoint.json").write_text("{}")
    args = parse_args(["--state-dir", str(tmp_path / "state"), "--work-dir", str(tmp_path)])
    assert (args.token, args.insecure) == ("", False)


@pytest.mark.parametrize("argv, words", [
    ([], "this agent is not enrolled yet: pass --token (from `jobplane tokens create --role agent`) "
         "and --ca"),
    (["--token", "jpa_x"], "argument --ca: enrolling needs the CA that signed the server's certificate"),
    (["--token", "jpa_x", "--ca", "/no/such.crt"], "argument --ca: no such file: /no/such.crt"),
    (["--token-file", "/no/such/token"], "argument --token-file: cannot read the token file /no/such/token"),
    (["--insecure", "--token", "jpa_x"], "argument --token: not allowed with argument --insecure"),
    (["--insecure", "--ca", "ca.crt"], "argument --ca: not allowed with --insecure"),
])
def test_missing_or_conflicting_credentials_are_refused(capsys, tmp_path, argv, words):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv + ["--work-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--slots", "0"], "argument --slots: must be at least 1"),
    (["--slots", "two"], "argument --slots: expected a whole number"),
    (["--queue-ahead", "-1"], "argument --queue-ahead: must be at least 0, got -1"),
    (["--heartbeat", "0"], "argument --heartbeat: must be greater than 0"),
    (["--kill-grace", "-1"], "argument --kill-grace: must be 0 or more"),
    (["--stop-wait", "-1"], "argument --stop-wait: must be 0 or more"),
    (["--containment", "docker"], "argument --containment: invalid choice: 'docker'"),
    (["--label", "gpu"], "argument --label: expected K=V"),
    (["--work-dir", "/no/such/dir"], "argument --work-dir:"),
])
def test_bad_flags_are_refused_naming_the_flag(capsys, argv, words):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert words in capsys.readouterr().err


def test_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="slots"):
        AgentConfig(server="h:1", slots=0)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        AgentConfig(server="h:1", heartbeat_interval=0)
    with pytest.raises(ValueError, match="containment: must be one of auto, cgroup, subreaper"):
        AgentConfig(server="h:1", containment="jail")
    with pytest.raises(ValueError, match="stop_wait"):
        AgentConfig(server="h:1", stop_wait=-1)
    with pytest.raises(ValueError, match=r"queue_ahead: must be between 0 \(none\) and 10000, got 10001"):
        AgentConfig(server="h:1", queue_ahead=10_001)


def test_queue_ahead_is_eight_per_slot_unless_given():
    assert config_from_args(parse_args(["--server", "h:1", "--slots", "3", "--insecure"])).queue_ahead == 24
    assert config_from_args(parse_args(["--server", "h:1", "--slots", "3", "--queue-ahead", "0", "--insecure"])).queue_ahead == 0
    assert AgentConfig(server="h:1", slots=2000).queue_ahead == 10_000, "at most what a server takes"


def test_cpu_time_of_a_busy_process_group_is_counted():
    busy = Proc([sys.executable, "-c", "while True: pass"], Path(os.devnull))  # its own session
    try:
        wait_until(lambda: cpu_ticks_by_group({busy.pid})[busy.pid] > 0, 30, "CPU ticks to show")
        assert cpu_ticks_by_group({busy.pid + 10**7}) == {busy.pid + 10**7: 0}
    finally:
        busy.kill()
        busy.stop()


def test_facts_describe_this_machine():
    facts = machine_facts()
    assert facts.hostname and facts.os and facts.arch and facts.python_version
    assert facts.cpu_count == os.cpu_count()
    assert facts.memory_bytes > 0


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid`, from the process table."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def test_sigterm_stops_the_agent_with_exit_code_zero_and_no_python_workers_started(tmp_path):
    # Nothing listens at the port: the agent keeps retrying until it is told to stop.
    agent = Proc([sys.executable, "-m", "jobplane.agent", "--server", f"127.0.0.1:{free_port()}",
                  "--name", "cli-test", "--slots", "2", "--work-dir", str(tmp_path), "--insecure"],
                 tmp_path / "agent.log")
    try:
        wait_until(lambda: "cannot connect" in agent.output(), 60, "the agent to try to connect")
        assert children(agent.pid) == [], "python workers start only when a python task needs one"
        agent.signal(signal.SIGTERM)
        assert agent.p.wait(60) == 0, agent.output()
    finally:
        agent.kill()
        agent.stop()


def test_capacity_flags_build_the_config_and_bad_ones_name_the_flag(tmp_path, capsys):
    args = parse_args(["--insecure", "--cpus", "6", "--memory", "16GiB", "--gpus", "2", "--resource", "license_x=2",
                       "--resource", "db=1"])
    config = config_from_args(args)
    assert (config.cpus, config.memory, config.gpus, config.resources) == (6.0, 16 * 2**30, 2,
                                                                           {"license_x": 2, "db": 1})
    for flags, why in ((["--memory", "8XB"], "argument --memory: unknown unit 'XB'"),
                       (["--cpus", "-1"], "argument --cpus"),
                       (["--resource", "license_x=0"], "argument --resource: license_x: must be at least 1"),
                       (["--resource", "gpus=1"], "argument --resource: 'gpus' is a built-in resource")):
        with pytest.raises(SystemExit):
            parse_args(["--insecure", *flags])
        assert why in capsys.readouterr().err


def test_the_advertised_capacity_is_detected_unless_given():
    from jobplane.agent.capacity import machine_capacity
    from jobplane.resources import Resources

    detected = machine_capacity()
    assert detected.cpus == len(os.sched_getaffinity(0)) and detected.memory > 0 and detected.custom == ()
    assert machine_capacity(2.5, 1024, 1, {"license": 3}) == Resources(2.5, 1024, 1, (("license", 3),))
