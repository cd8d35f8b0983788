"""How loud gRPC's C core is in each part: it reads $GRPC_VERBOSITY once, as grpc is imported.

Left alone, it writes its own lines to stderr (`I1206 ... ssl_transport_security.cc:2563]
Handshake failed ...` at every reconnect; `E1206 ... Could not load any root certificate`),
before and around the message jobplane gives for the same failure. So:

- the client SDK and the CLI import grpc with it at NONE: every failure reaches the caller as
  a typed error whose details carry the C core's reason, and the CLI says what to do about it;
- the agent at ERROR: its own line says a CA or a server is wrong, while the C core's real
  errors stay in its log;
- the server leaves it as it is: a handshake an agent's wrong certificate failed is logged
  only by the C core (gRPC tells the server's code nothing of it), and operators want it.

A user's own $GRPC_VERBOSITY always wins, and it is not passed on to child processes (the
servers and agents `jobplane up` starts keep their own settings).
"""

from __future__ import annotations

import os
import sys

VERBOSITY = "GRPC_VERBOSITY"


def import_grpc(verbosity: str) -> bool:
    """Import grpc with $GRPC_VERBOSITY at `verbosity` (NONE, ERROR, ...), unless grpc is
    imported already or the user set it; the variable is left as it was. Whether it applied."""
    if "grpc" in sys.modules or VERBOSITY in os.environ:
        return False
    os.environ[VERBOSITY] = verbosity
    try:
        import grpc  # noqa: F401
    finally:
        del os.environ[VERBOSITY]
    return True
