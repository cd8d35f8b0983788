"""An idle agent loads only what it uses (issue 17: its resident memory): starting up, plaintext or
with its stored certificate, it imports neither the client SDK nor cryptography, the Python
worker pool, the prerequisite scanner, the metrics HTTP server, the external and Slurm adapters
nor the enrollment stubs; those load at first use; nor shutil (with bz2 and lzma), which
argparse would load to find the terminal's width; nor the ssl module (OpenSSL), which asyncio
would load for TLS the agent never asks it for (startup.py).

Each case runs in a fresh interpreter (`python -c`), as `jobplane-agent` starts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from jobplane.agent import AgentConfig
from jobplane.agent.credentials import identity_dir
from jobplane.agent.identity import Identity, IdentityStore
from jobplane.agent.keygen import make_key_and_csr
from jobplane.server.security.pki import Authority

SERVER, NAME = "127.0.0.1:7999", "lean"

# The agent's entry point (startup.run) and start-up path, up to the moment it would connect: asyncio
# imported as the entry point imports it, the flags parsed,
# the Agent built (link, credentials, keeper client, state directory), and for mutual TLS the
# stored identity loaded and checked as `ready()` does before the first stream.
START_UP = """
import json, sys
from jobplane.agent.startup import import_asyncio_without_ssl
assert import_asyncio_without_ssl()
import asyncio
from jobplane.agent.main import config_from_args, parse_args
from jobplane.agent import Agent
from jobplane.agent.credentials import open_credentials

config = config_from_args(parse_args(sys.argv[1:]))
agent = Agent(config)
asyncio.run(open_credentials(config).ready())
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = ("cryptography", "jobplane.client", "multiprocessing", "jobplane.agent.pyworkers",
         "jobplane.agent.pyworker", "jobplane.agent.scan", "jobplane.agent.scan_probes",
         "jobplane.agent.metrics_http", "jobplane.agent.keygen",
         # Loaded at an agent's first external or Slurm attempt, enrollment or renewal.
         "jobplane.agent.outside_jobs", "jobplane.agent.external", "jobplane.agent.external_record",
         "jobplane.agent.slurm", "jobplane.v1.security_pb2",
         # The standard library's heavier corners, used only on rare paths or not at all:
         # ctypes (prctl, by the keeper and workers), tempfile (attempts without a state
         # directory), platform (os.uname says the same).
         "ctypes", "tempfile", "platform",
         # shutil loads bz2 and lzma: argparse's help formatter is told the width (main.py).
         "shutil", "bz2", "lzma",
         # OpenSSL, through asyncio: gRPC has its own TLS (startup.py).
         "ssl", "_ssl")


def started_modules(tmp_path: Path, *flags: str) -> set[str]:
    argv = ["--server", SERVER, "--name", NAME, "--state-dir", str(tmp_path / "state"),
            "--work-dir", str(tmp_path), *flags]
    done = subprocess.run([sys.executable, "-c", START_UP, *argv], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def store_identity(tmp_path: Path) -> None:
    """An enrolled agent's state directory: a key, a certificate from a real CA, its bundle."""
    ca = Authority.create()
    key_pem, csr = make_key_and_csr(NAME)
    cert_pem = ca.sign_csr(csr, identity=NAME, role="agent", lifetime=timedelta(hours=1))
    config = AgentConfig(server=SERVER, name=NAME, state_dir=str(tmp_path / "state"), token="unused")
    IdentityStore(identity_dir(config)).save(Identity(
        name=NAME, server=SERVER, agent_port=8000, key_pem=key_pem, cert_pem=cert_pem,
        ca_pem=ca.trust_bundle(), received=time.time()))


def test_a_plaintext_agent_starts_without_the_sdk_cryptography_the_pool_or_the_scanner(tmp_path):
    modules = started_modules(tmp_path, "--insecure")

    assert {"grpc", "jobplane.agent.link", "jobplane.v1.provider_pb2"} <= modules
    assert heavy(modules) == []


def test_an_agent_on_its_stored_certificate_starts_without_cryptography(tmp_path):
    store_identity(tmp_path)

    modules = started_modules(tmp_path)

    assert "jobplane.agent.der" in modules  # the certificate was read, and found good
    assert heavy(modules) == []


def test_asyncio_in_the_agent_has_no_ssl_but_the_module_still_loads_for_whoever_asks():
    code = ("import sys\n"
            "from jobplane.agent.startup import import_asyncio_without_ssl\n"
            "assert import_asyncio_without_ssl() and 'ssl' not in sys.modules\n"
            "import asyncio.sslproto, ssl\n"
            "assert asyncio.sslproto.ssl is None\n"
            "print(ssl.create_default_context().check_hostname)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr
