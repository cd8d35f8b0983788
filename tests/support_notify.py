"""A real webhook receiver (http.server in a thread) and waiting for a job's events, for the
notification tests."""

from __future__ import annotations

import threading
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook receiver: records each request (path, headers, body) and answers the status
    codes of `answers` in turn, then 200."""

    def __init__(self, answers: tuple[int, ...] = (), port: int = 0) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._answers = list(answers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                code = receiver._answers.pop(0) if receiver._answers else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def job_event(client, job_id: str, raw_status: str, timeout: float = 60):
    """The job's first event with this raw status, waiting for it (a watch of all events filtered
    to the job's: a watch of the job itself ends with the job, and deliveries come after)."""
    with closing(client.watch(filter=f"job={job_id}", timeout=timeout)) as events:
        for event in events:
            if event.raw_status == raw_status:
                return event
    raise AssertionError(f"no {raw_status} event for job {job_id}")


def notifying_replicas(tmp_path, request):
    """Two replicas on a private PostgreSQL whose failed deliveries wait a minute before the next
    try (so a test chooses when one is delivered); their logs are printed when the test failed.
    A generator for a fixture to yield from."""
    from support_postgres import PrivatePostgres
    from support_replicas import ReplicaSet

    pg = PrivatePostgres()
    replicas = ReplicaSet(tmp_path, pg.create_database(), n=2, extra=["--notify-backoff", "60"])
    yield replicas
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(replicas.logs())
    replicas.close()
    pg.stop()
