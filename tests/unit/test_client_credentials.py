"""Which credentials the SDK and CLI present: arguments, then the environment, then (for a server on
this machine) the running `jobplane up`, then the server's data directory."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from jobplane.client.channel import is_local_target, locate_credentials, transport_hint
from jobplane.client.credentials import Credentials, read_token
from jobplane.client.errors import CredentialsError
from jobplane.client.local import read_address, write_secret

LOCAL = "127.0.0.1:7070"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def home(monkeypatch, tmp_path: Path) -> Path:
    for name in ("JOBPLANE_SERVER", "JOBPLANE_TOKEN", "JOBPLANE_CA", "JOBPLANE_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("JOBPLANE_HOME", str(home))
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def server_files(data_dir: Path, token: str) -> None:
    """What a secure server leaves in its data directory for clients on the same machine."""
    write(data_dir / "ca-bundle.crt", PEM.decode())
    write(data_dir / "admin.token", token + "\n")


def write_up_state(home: Path, **fields) -> None:
    write(home / "up.json", json.dumps({"server": LOCAL, "pid": os.getpid(), **fields}))


def test_nothing_found_means_tls_with_the_system_roots_and_no_token(home):
    found = locate_credentials(LOCAL)
    assert (found.insecure, found.token, found.ca) == (False, None, None)


def test_the_data_dir_files_of_a_server_on_this_machine_are_used(home):
    server_files(home, "admin-secret")
    found = locate_credentials(LOCAL)
    assert found.token == "admin-secret"
    assert found.ca == home / "ca-bundle.crt"
    assert str(home) in found.origin


def test_the_local_up_wins_over_the_data_dir(home, tmp_path):
    server_files(home, "data-dir-secret")
    up_dir = tmp_path / "up"
    server_files(up_dir, "up-secret")
    write_up_state(home, ca=str(up_dir / "ca-bundle.crt"), token_file=str(up_dir / "admin.token"))
    found = locate_credentials(LOCAL)
    assert (found.token, found.ca) == ("up-secret", up_dir / "ca-bundle.crt")
    assert "jobplane up" in found.origin


def test_an_insecure_local_up_means_plaintext_even_with_old_files_in_the_data_dir(home):
    server_files(home, "stale")
    write_up_state(home, insecure=True)
    found = locate_credentials(LOCAL)
    assert found.insecure and found.token is None


def test_the_environment_wins_over_the_local_up(home, monkeypatch, tmp_path):
    server_files(home, "admin-secret")
    write_up_state(home, ca=str(home / "ca-bundle.crt"), token_file=str(home / "admin.token"))
    monkeypatch.setenv("JOBPLANE_TOKEN", "env-secret")
    monkeypatch.setenv("JOBPLANE_CA", str(write(tmp_path / "env-ca.pem", PEM.decode())))
    found = locate_credentials(LOCAL)
    assert (found.token, found.ca) == ("env-secret", tmp_path / "env-ca.pem")


def test_each_part_comes_from_the_first_source_that_has_it(home, monkeypatch):
    server_files(home, "admin-secret")
    monkeypatch.setenv("JOBPLANE_TOKEN", "env-secret")
    found = locate_credentials(LOCAL)
    assert (found.token, found.ca) == ("env-secret", home / "ca-bundle.crt")
    assert found.origin == f"token from the environment; CA from the data directory {home}"


def test_arguments_win_over_everything(home, monkeypatch):
    server_files(home, "admin-secret")
    monkeypatch.setenv("JOBPLANE_TOKEN", "env-secret")
    found = locate_credentials(LOCAL, Credentials.from_options(token="arg-secret", ca=PEM.decode()))
    assert (found.token, found.ca) == ("arg-secret", PEM)


def test_insecure_from_the_environment_wins_over_local_files(home, monkeypatch):
    server_files(home, "admin-secret")
    monkeypatch.setenv("JOBPLANE_INSECURE", "1")
    assert locate_credentials(LOCAL).insecure


def test_insecure_in_the_environment_beats_a_token_there(home, monkeypatch):
    monkeypatch.setenv("JOBPLANE_TOKEN", "env-secret")
    monkeypatch.setenv("JOBPLANE_INSECURE", "true")
    found = locate_credentials(LOCAL)
    assert found.insecure and found.token is None


def test_a_token_argument_wins_over_insecure_from_the_environment(home, monkeypatch):
    monkeypatch.setenv("JOBPLANE_INSECURE", "1")
    found = locate_credentials(LOCAL, Credentials.from_options(token="arg-secret"))
    assert not found.insecure and found.token == "arg-secret"


def test_local_credentials_never_go_to_another_machine(home, monkeypatch):
    server_files(home, "admin-secret")
    write_up_state(home, ca=str(home / "ca-bundle.crt"), token_file=str(home / "admin.token"))
    found = locate_credentials("jobs.example.com:7070")
    assert (found.token, found.ca) == (None, None)
    monkeypatch.setenv("JOBPLANE_TOKEN", "env-secret")  # what the user set goes anywhere
    assert locate_credentials("jobs.example.com:7070").token == "env-secret"


@pytest.mark.parametrize("address", ["127.0.0.1:7070", "localhost:1", "[::1]:7070", "0.0.0.0:7070",
                                     "dns:///localhost:7070", "unix:/tmp/jobplane.sock"])
def test_addresses_on_this_machine(home, address):
    assert is_local_target(address)


def test_the_address_a_local_up_recorded_is_on_this_machine(home):
    write(home / "up.json", json.dumps({"server": "myhost.lan:7070", "pid": os.getpid()}))
    assert is_local_target("myhost.lan:7070")
    assert not is_local_target("otherhost.lan:7070")


def test_an_admin_token_that_cannot_be_read_is_skipped_not_fatal(home):
    server_files(home, "admin-secret")
    (home / "admin.token").unlink()
    (home / "admin.token").mkdir()  # unreadable even for root, unlike a chmod 0 file
    found = locate_credentials(LOCAL)
    assert found.token is None and found.ca == home / "ca-bundle.crt"


# Tokens and options as users give them


def test_a_token_is_read_from_a_file_named_with_an_at_sign(tmp_path):
    path = write(tmp_path / "t", "  s3cret\n")
    assert read_token(f"@{path}") == "s3cret"
    assert Credentials.from_options(token_file=path).token == "s3cret"
    assert read_token("plain") == "plain"


def test_the_environment_token_may_name_a_file_too(home, monkeypatch, tmp_path):
    monkeypatch.setenv("JOBPLANE_TOKEN", f"@{write(tmp_path / 't', 'from-file')}")
    assert locate_credentials(LOCAL).token == "from-file"


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"token": "@/nonexistent/token"}, "cannot read the token file /nonexistent/token"),
        ({"token": "a", "token_file": "b"}, "either as --token or as --token-file"),
        ({"insecure": True, "token": "a"}, "--insecure connects in plaintext"),
        ({"cert": "c.pem"}, "give both --cert and --key"),
    ],
)
def test_unusable_options_raise_a_credentials_error(options, complaint):
    with pytest.raises(CredentialsError, match=re.escape(complaint)) as raised:
        Credentials.from_options(**options)
    assert raised.value.code.name == "INVALID_ARGUMENT"  # the CLI exits 2


def test_contradictions_are_refused_however_credentials_are_made():
    with pytest.raises(CredentialsError):
        Credentials(insecure=True, ca=PEM)


def test_an_empty_token_file_is_refused(tmp_path):
    with pytest.raises(CredentialsError, match="is empty"):
        read_token(f"@{write(tmp_path / 't', chr(10))}")


def test_a_missing_ca_file_is_named_when_the_channel_is_made(tmp_path):
    with pytest.raises(CredentialsError, match=re.escape(f"cannot read the CA bundle {tmp_path / 'nope.pem'}")):
        Credentials.from_options(ca=tmp_path / "nope.pem").channel_credentials()


# Hints and local files


def test_hints_for_a_server_that_cannot_be_reached():
    tls = Credentials(ca=Path("/x/ca.pem"), origin="CA from arguments")
    assert "--insecure" in transport_hint(tls, "Tls handshake failed: WRONG_VERSION_NUMBER")
    assert "--ca" in transport_hint(tls, "Tls handshake failed: CERTIFICATE_VERIFY_FAILED")
    assert "drop --insecure" in transport_hint(Credentials(insecure=True), "Socket closed")
    assert transport_hint(tls, "ipv4:127.0.0.1:1: Connection refused") == ""


def test_secrets_are_written_readable_only_by_their_owner(tmp_path):
    path = tmp_path / "agents" / "join.token"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    write_secret(path, "s3cret")
    assert path.read_text() == "s3cret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_only_the_first_complete_line_of_the_address_file_is_the_address(tmp_path):
    path = tmp_path / "server.addr"
    assert read_address(path) is None
    path.write_text("127.0.0.1:7070")
    assert read_address(path) is None  # still being written
    path.write_text("127.0.0.1:7070\n127.0.0.1:7071\n")
    assert read_address(path) == "127.0.0.1:7070"
