"""How loud gRPC's C core is in each part: it reads $GRPC_VERBOSITY once, as grpc is imported.

Left alone, it writes its own lines to stderr (`I1206 ... ssl_transport_security.cc:2563]
Handshake failed ...` at every reconnect; `E1206 ... Could not load any root certificate`),
before and around the message jobplane gives for the same failure. So:

- the CLI imports grpc with it at NONE: every failure reaches it as a typed error whose
  details carry the C core's reason, and it says what to do about it. A program that imports
  the client SDK keeps gRPC's own default (it may run gRPC servers of its own, whose errors
  only the C core logs): the SDK quiets it only in the `jobplane` program (`cli_program`);
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


def cli_program() -> bool:
    """Whether this process is the `jobplane` CLI (its console script, or `python -m
    jobplane.client.cli`), as the client package is imported."""
    argv = getattr(sys, "orig_argv", [])
    for i, arg in enumerate(argv[1:], 1):  # the interpreter's options, up to what it runs
        if arg == "-m":
            return argv[i + 1:i + 2] == ["jobplane.client.cli"]
        if arg == "-c" or not arg.startswith("-"):
            return os.path.basename(arg) == "jobplane"
    return False
