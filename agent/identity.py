"""The agent's identity on disk: its key, its certificate, the CA it trusts and where it enrolled.

Kept in `<state_dir>/identity/`, so that a restarted agent needs no new join token:

    agent.key      the private key (0600)
    agent.crt      the certificate the server's CA issued; its identity is the agent's name
    ca.crt         the CA bundle that verifies the server (refreshed by every renewal)
    endpoint.json  {"server", "name", "agent_port"}: which server (the replica it enrolled with),
                   as whom, and that replica's mTLS port

A renewal brings a new key. It is staged as `agent.key.next`, then `agent.crt` is replaced,
then the key; `load` finishes a renewal that a crash interrupted between the two.

Reading them needs only the standard library (der.py), so that a running agent does not load
the cryptography package (keygen.py says why).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from jobplane.files import write_atomic

from .der import cert_lifetime, cert_public_key, key_public_key

log = logging.getLogger(__name__)

KEY, CERT, CA, ENDPOINT = "agent.key", "agent.crt", "ca.crt", "endpoint.json"
NEXT_KEY = KEY + ".next"
# Renew this far into the time the certificate is ours (see `Identity.renew_time`).
RENEW_FRACTION = 0.7


@dataclass(frozen=True)
class Identity:
    """A certificate with its key, the CA bundle to trust, and the server it is for."""

    name: str
    server: str  # the main (client) address of the replica the agent enrolled with
    agent_port: int  # the server's mutual-TLS port, on the same host
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes
    received: float  # when the certificate arrived (epoch seconds)

    def agent_address(self, server: str) -> str:
        """HOST:PORT of the agent (mutual-TLS) address of the replica whose client address is
        `server`: its host, and a port as far from its client port as the agent port is from
        the client port of the replica this agent enrolled with (the default --agent-listen is
        the next port). Where a replica listens elsewhere, a follower's redirect says so."""
        host, port, enrolled = server_host(server), server_port(server), server_port(self.server)
        if port is None or enrolled is None:
            return f"{host}:{self.agent_port}"
        return f"{host}:{port + self.agent_port - enrolled}"

    @property
    def not_after(self) -> float:
        """When the certificate expires (epoch seconds)."""
        return cert_lifetime(self.cert_pem)[1].timestamp()

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.not_after

    def renew_time(self, fraction: float = RENEW_FRACTION) -> float:
        """`fraction` of the way from when the certificate arrived (or became valid) to its expiry.

        Not from `not_before` alone: the CA backdates it by a minute for clock skew, so for a
        short-lived certificate that moment has already passed when the certificate arrives.
        """
        not_before, not_after = (moment.timestamp() for moment in cert_lifetime(self.cert_pem))
        start = min(max(not_before, self.received), not_after)
        return start + fraction * (not_after - start)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Mutual TLS: trust the CA bundle, present this certificate."""
        return grpc.ssl_channel_credentials(root_certificates=self.ca_pem,
                                            private_key=self.key_pem,
                                            certificate_chain=self.cert_pem)

    def renewed(self, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> Identity:
        """This identity with a new key and certificate, received now."""
        return replace(self, key_pem=key_pem, cert_pem=cert_pem, ca_pem=ca_pem or self.ca_pem,
                       received=time.time())


def server_host(server: str) -> str:
    """The host part of HOST:PORT (brackets of an IPv6 literal kept)."""
    host, sep, port = server.rpartition(":")
    return host if sep and port.isdigit() and host else server


def server_port(server: str) -> int | None:
    """The port of HOST:PORT, or None if it names none."""
    host, sep, port = server.rpartition(":")
    return int(port) if sep and port.isdigit() and host else None


class IdentityStore:
    """The identity files in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def exists(self) -> bool:
        """Whether an enrollment was stored here (usable or not)."""
        return (self.root / ENDPOINT).exists()

    def load(self) -> Identity | None:
        """The stored identity; None if there is none or it is unreadable (logged)."""
        if not self.exists():
            return None
        try:
            endpoint = json.loads((self.root / ENDPOINT).read_text())
            cert_path = self.root / CERT
            cert_pem = cert_path.read_bytes()
            return Identity(name=str(endpoint["name"]), server=str(endpoint["server"]),
                            agent_port=int(endpoint["agent_port"]), key_pem=self._key_for(cert_pem),
                            cert_pem=cert_pem, ca_pem=(self.root / CA).read_bytes(),
                            received=cert_path.stat().st_mtime)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the identity stored in %s: %s", self.root, exc)
            return None

    def save(self, identity: Identity) -> None:
        """Store a new enrollment; endpoint.json goes last, so a half-written one does not count."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.root / KEY, identity.key_pem)
        write_private(self.root / CERT, identity.cert_pem)
        write_private(self.root / CA, identity.ca_pem)
        endpoint = {"server": identity.server, "name": identity.name,
                    "agent_port": identity.agent_port}
        write_private(self.root / ENDPOINT, (json.dumps(endpoint, indent=2) + "\n").encode())

    def save_renewal(self, identity: Identity) -> None:
        """Replace the key and certificate (and CA bundle) with renewed ones, crash-safely."""
        write_private(self.root / NEXT_KEY, identity.key_pem)
        write_private(self.root / CERT, identity.cert_pem)
        os.replace(self.root / NEXT_KEY, self.root / KEY)
        write_private(self.root / CA, identity.ca_pem)

    def _key_for(self, cert_pem: bytes) -> bytes:
        """The stored key that belongs to the certificate, finishing an interrupted renewal."""
        key_pem = (self.root / KEY).read_bytes()
        if _belongs(key_pem, cert_pem):
            return key_pem
        staged = self.root / NEXT_KEY
        if staged.exists() and _belongs(staged.read_bytes(), cert_pem):
            os.replace(staged, self.root / KEY)
            return (self.root / KEY).read_bytes()
        raise ValueError(f"{self.root / KEY} is not the key of {self.root / CERT}")


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data` in a file created 0600, never readable by others."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o600)


def _belongs(key_pem: bytes, cert_pem: bytes) -> bool:
    """Whether the certificate certifies this private key: both carry the same public key."""
    try:
        return key_public_key(key_pem) == cert_public_key(cert_pem)
    except ValueError:  # not a key, or not a certificate, that we can read
        return False
