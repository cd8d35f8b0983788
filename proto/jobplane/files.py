"""Writing a file whole: the one atomic write that the server, the agent and the client share.

This module sits in the root package because every part may import it (the server never
imports the agent or the client, nor they the server). It needs nothing but the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644,
                 durable: bool = True) -> None:
    """Replace `path` with `data` (text is written as UTF-8) so that a reader sees the old file or
    the new one, never part of either.

    The data goes to a temporary file beside `path`, created with `mode` (less the umask; 0o600
    keeps a secret from other users from the first byte), then renamed over `path`. `durable`
    also flushes it to disk before the rename, so a crash of the machine leaves one or the other
    too; without it, only a crash of the process is covered (for files rewritten often, or
    recreated at the next start). The temporary file is removed if anything fails. The directory
    must exist.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    # os.urandom, not secrets: that would load hashlib and OpenSSL into every process that writes.
    temporary = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
