"""Watches the checkpoint files of running command attempts and hands on each new state.

A command task writes its state to `$JOBPLANE_CHECKPOINT_FILE` (`checkpoint.json` in its
attempt directory). One poll loop stats every watched file; only a file whose
(inode, mtime, size) changed is read, off the event loop. Content that does not parse as JSON
(a file caught half-written) is skipped until the file changes again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import MAX_CHECKPOINT_BYTES

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
FILE_NAME = "checkpoint.json"

AttemptKey = tuple[str, int]
# What a stat says of a file's version: (inode, mtime_ns, size); os.replace changes the inode.
_Signature = tuple[int, int, int]


def checkpoint_file(attempt_dir: str | Path) -> str:
    """Where the command of an attempt directory writes its checkpoint."""
    return os.path.join(attempt_dir, FILE_NAME)


@dataclass
class _Watched:
    path: str
    seen: _Signature | None = None  # the version last read
    sent: str = ""  # the state last handed on


class CheckpointFiles:
    """The checkpoint files of running attempts; `report(key, json)` gets each new state."""

    def __init__(self, report: Callable[[AttemptKey, str], None], *,
                 interval: float = POLL_SECONDS) -> None:
        self._report = report
        self._interval = interval
        self._watched: dict[AttemptKey, _Watched] = {}
        self._any = asyncio.Event()

    def watch(self, key: AttemptKey, path: str) -> None:
        """Start watching an attempt's checkpoint file (it need not exist yet)."""
        self._watched[key] = _Watched(path)
        self._any.set()

    def forget(self, key: AttemptKey) -> None:
        """Stop watching an attempt without handing on what its file holds (it is dropped)."""
        self._watched.pop(key, None)

    async def finish(self, key: AttemptKey) -> None:
        """The attempt has ended: hand on what its file holds, if new, then stop watching it."""
        watched = self._watched.pop(key, None)
        if watched is None:
            return
        signature = _signature(watched.path)
        if signature is not None:  # most tasks never checkpoint: no thread hop for them
            # Read even if the signature looks unchanged: a rewrite within one mtime tick
            # can keep (inode, mtime, size), and this is the last look.
            text = await asyncio.to_thread(_read, watched.path, signature)
            self._accept(key, watched, signature, text)

    async def run(self) -> None:
        """Poll the watched files until cancelled."""
        while True:
            if not self._watched:
                self._any.clear()
                await self._any.wait()
            await asyncio.sleep(self._interval)
            try:
                await self._poll()
            except Exception:  # a bug must not end the watching of every attempt
                log.exception("checking the checkpoint files failed")

    async def _poll(self) -> None:
        changed = []
        for key, watched in self._watched.items():
            signature = _signature(watched.path)
            if signature is not None and signature != watched.seen:
                changed.append((key, watched, signature))
        if not changed:
            return
        texts = await asyncio.to_thread(_read_all, [(w.path, sig) for _, w, sig in changed])
        for (key, watched, signature), text in zip(changed, texts):
            if self._watched.get(key) is watched:  # finish() may have had the last word meanwhile
                self._accept(key, watched, signature, text)

    def _accept(self, key: AttemptKey, watched: _Watched, signature: _Signature,
                text: str | None) -> None:
        watched.seen = signature
        if text is not None and text != watched.sent:
            watched.sent = text
            self._report(key, text)


def _signature(path: str) -> _Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_all(files: list[tuple[str, _Signature]]) -> list[str | None]:
    return [_read(path, signature) for path, signature in files]


def _read(path: str, signature: _Signature) -> str | None:
    """The file's JSON text; None if it is missing, too large or not (yet) valid JSON."""
    if signature[2] > MAX_CHECKPOINT_BYTES:
        log.warning("ignoring checkpoint file %s: %d bytes, over the limit of %d",
                    path, signature[2], MAX_CHECKPOINT_BYTES)
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CHECKPOINT_BYTES + 1)
        if len(data) > MAX_CHECKPOINT_BYTES:  # it grew since the stat
            return None
        text = data.decode("utf-8").strip()
        json.loads(text)
    except (OSError, ValueError, RecursionError):  # gone, half-written, not UTF-8, too deep
        return None
    return text
