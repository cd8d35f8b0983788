"""The HTTP listener (--http): off unless asked for; health; what it refuses."""

import pytest

from support_http import HTTP, get, http_address, raw, request

pytestmark = pytest.mark.server_args(*HTTP)


def test_health_answers_while_the_server_serves(sqlite_cluster):
    reply = get(sqlite_cluster.server, "/healthz")
    assert (reply.status, reply.body) == (200, "ok\n")


def test_unknown_paths_methods_and_garbage_are_refused(sqlite_cluster):
    server = sqlite_cluster.server
    assert get(server, "/no/such/page").status == 404
    refused = request(server, "DELETE", "/healthz")
    assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD, POST"
    assert raw(server, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(server, b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert get(server, "/healthz").status == 200  # and it still serves


@pytest.mark.server_args()
def test_no_http_listener_unless_asked_for(sqlite_cluster):
    assert not (sqlite_cluster.server.data_dir / "http.addr").exists()
    assert "console and /metrics on" not in sqlite_cluster.server.output()
