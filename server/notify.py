"""Delivering notifications (the outbox the engine records: domain/notifications.py), at least
once: each pending delivery is sent off the event loop (a thread: urllib for a webhook, a
subprocess for a command), retried with a doubling backoff up to a bounded number of attempts,
and its outcome written back through the core (`settle`: the leader's fenced commit). Only the
leader delivers; a new leader, or a restarted server, resumes what is still pending.

The body is signed with the server's notification secret: `X-Jobplane-Signature:
sha256=<hex HMAC-SHA256 of the body>`. The secret is kept in the database (one for every
replica) and copied to DATA_DIR/notify.key (mode 0600) for the receivers' owners to read."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterable

from peewee import Database

from .domain.notifications import Delivery
from .store.notifications import shared_secret

log = logging.getLogger(__name__)

SECRET_FILE = "notify.key"
SIGNATURE_HEADER = "X-Jobplane-Signature"
MAX_ERROR = 300  # characters of a failure kept in the give-up event

Settle = Callable[[Delivery, bool, int, str], Awaitable[None]]


@dataclass(frozen=True)
class NotifyConfig:
    attempts: int = 8  # tries per delivery before it is given up
    backoff: float = 1.0  # seconds before the second try; doubling after each failure
    backoff_max: float = 300.0
    timeout: float = 10.0  # seconds a webhook or command may take


def load_secret(db: Database, data_dir: Path) -> bytes:
    """The signing secret every replica shares: from the database, else from DATA_DIR/notify.key
    (kept from an earlier start), else a new one; the file is (re)written to match, mode 0600."""
    path = data_dir / SECRET_FILE
    kept = path.read_text().strip() if path.exists() else ""
    value = shared_secret(db, "notify", lambda: kept or secrets.token_hex(32))
    if value != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
    os.chmod(path, 0o600)
    return value.encode()


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def send(delivery: Delivery, secret: bytes, timeout: float) -> str:
    """Deliver once (blocking: run it in a thread); "" if it was delivered, else why not."""
    body = delivery.body.encode()
    signature = sign(secret, body)
    if delivery.notify.webhook:
        return _post(delivery, body, signature, timeout)
    return _run(delivery, body, signature, timeout)


def _post(delivery: Delivery, body: bytes, signature: str, timeout: float) -> str:
    request = urllib.request.Request(delivery.notify.webhook, data=body, method="POST", headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: signature, "X-Jobplane-Delivery": delivery.id,
        "User-Agent": "jobplane-notify"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return "" if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{getattr(exc, 'reason', exc)}"


def _run(delivery: Delivery, body: bytes, signature: str, timeout: float) -> str:
    doc = json.loads(delivery.body)
    env = dict(os.environ, JOBPLANE_DELIVERY_ID=delivery.id, JOBPLANE_EVENT_ID=str(doc["event_id"]),
               JOBPLANE_JOB_ID=doc["job_id"], JOBPLANE_JOB_NAME=doc["name"], JOBPLANE_STATUS=doc["status"],
               JOBPLANE_PREVIOUS_STATUS=doc["previous_status"], JOBPLANE_SIGNATURE=signature)
    try:
        done = subprocess.run(list(delivery.notify.command), input=body, env=env, timeout=timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:g} s"
    except OSError as exc:
        return f"could not start: {exc}"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-MAX_ERROR:]
        return f"exited with code {done.returncode}" + (f": {tail}" if tail else "")
    return ""


def settle_through(core) -> Settle:
    """How a delivery's outcome is written: an operation of `core`, committed like any other."""
    async def settle(delivery: Delivery, delivered: bool, attempts: int, error: str) -> None:
        await core.call(lambda engine: engine.settle_delivery(delivery, delivered, attempts, error))
    return settle


class Notifier:
    """The leader's deliveries in flight: one asyncio task each, its sends in a thread pool."""

    def __init__(self, config: NotifyConfig, secret: bytes, settle: Settle) -> None:
        self.config = config
        self._secret = secret
        self._settle = settle
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="jobplane-notify")
        self._tasks: dict[str, asyncio.Task] = {}

    def add(self, deliveries: Iterable[Delivery]) -> None:
        """Start delivering these (pending ones not already in flight)."""
        loop = asyncio.get_running_loop()
        for d in deliveries:
            if d.state == 0 and d.id not in self._tasks:
                self._tasks[d.id] = loop.create_task(self._deliver(d), name=f"jobplane-notify-{d.id}")

    async def _deliver(self, delivery: Delivery) -> None:
        loop = asyncio.get_running_loop()
        attempts, error = delivery.attempts, ""
        try:
            while attempts < self.config.attempts:
                if attempts:
                    await asyncio.sleep(min(self.config.backoff * 2 ** (attempts - 1), self.config.backoff_max))
                attempts += 1
                error = await loop.run_in_executor(self._pool, send, delivery, self._secret, self.config.timeout)
                if not error:
                    break
                log.info("notification %s to %s failed (attempt %d): %s", delivery.id, delivery.notify.target,
                         attempts, error)
            await self._settle(delivery, not error, attempts, error[:MAX_ERROR])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the core stopped (stepping down, a failed commit): the next leader resumes it
            log.warning("notification %s stays pending: %s", delivery.id, exc)
        finally:
            self._tasks.pop(delivery.id, None)

    async def stop(self) -> None:
        """Stop delivering (stepping down or stopping): what was not settled stays pending."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["NotifyConfig", "Notifier", "SECRET_FILE", "SIGNATURE_HEADER", "load_secret", "send", "settle_through", "sign"]
