"""--http over TLS (--http-tls-cert/--http-tls-key) with a real server: the console and /metrics
answer over HTTPS to a client that trusts the test CA, plain HTTP to the same port gets no
answer, and the sign-in cookie is marked Secure."""

from __future__ import annotations

import http.client
import ssl
import subprocess
import sys
from urllib.parse import urlencode

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobplane.server.security.pki import Authority
from support import ServerProc
from support_http import HTTP, http_address


@pytest.fixture
def tls_server(tmp_path):
    """A server whose --http port speaks TLS with a certificate of a CA made for this test."""
    ca = Authority.create("http test CA")
    files = ca.issue_server(tmp_path / "http-tls", ["127.0.0.1"])
    (tmp_path / "test-ca.crt").write_bytes(ca.cert_pem)
    server = ServerProc(tmp_path, f"sqlite:///{tmp_path / 'jobplane.db'}",
                        extra=[*HTTP, "--http-tls-cert", str(files.cert), "--http-tls-key", str(files.key)])
    yield server, tmp_path / "test-ca.crt"
    server.stop()


def https(server: ServerProc, ca, method: str, path: str, body: dict | None = None) -> http.client.HTTPResponse:
    host, port = http_address(server).rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=ssl.create_default_context(cafile=ca))
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    conn.request(method, path, body=urlencode(body) if body is not None else None, headers=headers)
    reply = conn.getresponse()
    reply.text = reply.read().decode()
    conn.close()
    return reply


def test_metrics_and_the_console_are_served_over_https(tls_server):
    server, ca = tls_server
    assert "console and /metrics on https://" in server.output()
    reply = https(server, ca, "GET", "/metrics")
    assert reply.status == 200
    names = {family.name for family in text_string_to_metric_families(reply.text)}
    assert {"jobplane_up", "jobplane_dispatch_assigned_seconds"} <= names
    signed_in = https(server, ca, "POST", "/login", {"token": server.token, "next": "/"})
    assert signed_in.status == 303
    cookie = signed_in.getheader("set-cookie")
    assert cookie.startswith("jobplane_token=") and "HttpOnly" in cookie and cookie.endswith("; Secure")


def test_plain_http_to_the_tls_port_gets_no_answer(tls_server):
    server, _ = tls_server
    host, port = http_address(server).rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/metrics")
        conn.getresponse()
    conn.close()


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_server):
    server, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        https(server, None, "GET", "/metrics")  # the system's CAs only


def test_a_bad_key_pair_stops_the_start_saying_which(tmp_path):
    ca = Authority.create("http test CA")
    files = ca.issue_server(tmp_path / "tls", ["127.0.0.1"])
    run = subprocess.run([sys.executable, "-m", "jobplane.server", "--listen", "127.0.0.1:0", "--data-dir",
                          str(tmp_path / "data"), *HTTP, "--http-tls-cert", str(files.cert), "--http-tls-key",
                          str(tmp_path / "missing.key")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--http-tls-cert/--http-tls-key: no such file" in run.stderr + run.stdout
    alone = subprocess.run([sys.executable, "-m", "jobplane.server", "--http-tls-cert", str(files.cert)],
                           capture_output=True, text=True, timeout=60)
    assert alone.returncode == 2 and "--http-tls-cert and --http-tls-key go together" in alone.stderr
