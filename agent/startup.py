"""The agent process's entry point (`jobplane-agent`, `python -m jobplane.agent`), and what it
keeps out of the process before `main` runs (issue 17: the agent's resident memory).

asyncio imports the standard library's `ssl` module for TLS streams of its own, which loads
OpenSSL (libssl and libcrypto: about 3.5 MiB of the agent's resident set, and 0.7 MiB more
that OpenSSL allocates as it starts). The agent never asks asyncio for TLS: gRPC brings its
own (BoringSSL, inside grpcio), and keys are made in a child process (keygen.py). So the
entry point imports asyncio as on a Python built without `ssl`, which asyncio supports; `ssl`
itself stays importable for whatever needs it later, and then loads as usual.
"""

from __future__ import annotations

import sys

from jobplane.grpc_core import import_grpc


def run() -> int:
    """Run the agent (main.main) in a process whose asyncio has no `ssl`; its exit code."""
    import_asyncio_without_ssl()
    import_grpc("ERROR")  # the C core's errors stay in the log; its chatter (each failed handshake) does not
    from .main import main

    return main()


def import_asyncio_without_ssl() -> bool:
    """Import asyncio with `ssl` hidden, unless either is already loaded; whether it was hidden.

    asyncio then takes `ssl` as absent (`ssl=` on its streams and servers is refused), as it
    does on a Python without it; `import ssl` elsewhere, then or later, works as before.
    """
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return False  # too late, or something wants it: leave both as they are
    sys.modules["ssl"] = None  # type: ignore[assignment]  # `import ssl` raises ImportError
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]
    return True
