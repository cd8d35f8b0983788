"""`jobplane submit` with bad input: exit 2 and FILE:LINE before any server is contacted."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from jobplane.client.cli import main


@pytest.fixture
def listener():
    """A port that listens but never answers: any connection attempt shows as a pending accept."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def was_contacted(sock: socket.socket) -> bool:
    try:
        connection, _ = sock.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def no_local_server(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("JOBPLANE_SERVER", raising=False)
    monkeypatch.setenv("JOBPLANE_HOME", str(tmp_path / "home"))


def test_a_bad_job_file_exits_2_with_its_line_and_contacts_no_server(tmp_path, listener, capsys):
    job = tmp_path / "job.toml"
    job.write_text('name = "j"\n\n[[tasks]]\nname = "t"\ncommand = 3\n')
    server = "127.0.0.1:%d" % listener.getsockname()[1]

    code = main(["submit", str(job), "--watch", "--server", server])

    assert code == 2
    err = capsys.readouterr().err
    assert f"{job}:5: tasks[0].command: expected a list of strings or a string; got an integer" in err
    assert not was_contacted(listener)


def test_a_json_syntax_error_exits_2_with_its_line(tmp_path, listener, capsys):
    job = tmp_path / "job.json"
    job.write_text('{"name": "j",\n "tasks": [}\n')

    code = main(["submit", str(job), "--server", "127.0.0.1:%d" % listener.getsockname()[1]])

    assert code == 2
    assert f"{job}:2: invalid JSON" in capsys.readouterr().err
    assert not was_contacted(listener)


def test_a_missing_job_file_exits_2(tmp_path, capsys):
    assert main(["submit", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: cannot read the job file" in capsys.readouterr().err


def test_an_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["submit", "--wtach", "job.toml"])
    assert exited.value.code == 2


def test_no_server_exits_3_naming_the_address_tried_and_how_to_start_one(capsys, monkeypatch):
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("JOBPLANE_SERVER", address)
    hello = str(Path(__file__).parents[2] / "examples" / "hello.toml")

    code = main(["submit", hello])

    assert code == 3
    err = capsys.readouterr().err
    assert f"cannot reach a jobplane server at {address} (from $JOBPLANE_SERVER)" in err
    assert "jobplane up" in err
