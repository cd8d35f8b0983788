"""Calls one replica forwards to another on behalf of a caller it authenticated.

The forwarding replica sends the caller in the metadata `jobplane.replicas.FORWARDED_IDENTITY`
(`encode_identity`), over the receiving replica's mutual-TLS (agent) address, presenting a
replica certificate of the shared CA (`replica_credentials`). The receiver believes the
identity only from such a peer (`Access.authenticate`) and reads it back with `decode_identity`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import grpc

from jobplane.replicas import FORWARDED_IDENTITY

from ..errors import Unauthenticated
from .pki import Authority
from .policy import Caller, Role

VERSION = 1
MAX_ENCODED = 8192  # characters; metadata values beyond a few KiB are refused by gRPC anyway
TEXT_MAX = 256  # characters of an identity, a group or a method name


def encode_identity(caller: Caller) -> str:
    """`caller` as one ASCII metadata value (base64url of JSON), everything `decode_identity` needs
    to give the same Caller back."""
    document = {"v": VERSION, "identity": caller.identity, "role": int(caller.role), "groups": list(caller.groups),
                "method": caller.method, "serial": caller.serial}
    return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def decode_identity(text: str, *, forwarded_by: str = "") -> Caller:
    """The Caller `encode_identity` wrote; Unauthenticated naming the metadata key if it is not one."""
    document = _document(text)
    try:
        identity, method = _text(document, "identity"), _text(document, "method")
        role = Role(document["role"])
        groups = document["groups"]
        serial = document["serial"]
    except (KeyError, ValueError, TypeError) as exc:
        raise _refused(f"a field is missing or wrong ({exc})") from None
    if not isinstance(groups, list) or not all(isinstance(g, str) and 0 < len(g) <= TEXT_MAX for g in groups):
        raise _refused("groups must be a list of names")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise _refused("serial must be a certificate serial number (an integer >= 0)")
    return Caller(identity, role, tuple(groups), method=method, serial=serial, forwarded_by=forwarded_by)


def forwarded_identity(metadata: Any) -> str | None:
    """The FORWARDED_IDENTITY value of a call's metadata, None without one."""
    for key, value in metadata or ():
        if key == FORWARDED_IDENTITY:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return None


def replica_credentials(authority: Authority, replica_id: str) -> grpc.ChannelCredentials:
    """Channel credentials for replica `replica_id`'s calls to another replica's mutual-TLS address:
    trusts the CA bundle, presents a new replica certificate (its key stays in memory)."""
    key, cert = authority.issue_replica(replica_id)
    return grpc.ssl_channel_credentials(root_certificates=authority.trust_bundle(), private_key=key,
                                        certificate_chain=cert)


def _document(text: str) -> dict:
    if len(text) > MAX_ENCODED:
        raise _refused(f"longer than {MAX_ENCODED} characters")
    try:
        document = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise _refused(f"not base64url-encoded JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("v") != VERSION:
        raise _refused(f"not a version {VERSION} identity; the replicas run different jobplane versions")
    return document


def _text(document: dict, field: str) -> str:
    value = document[field]
    if not isinstance(value, str) or not 0 < len(value) <= TEXT_MAX:
        raise ValueError(f"{field} must be 1-{TEXT_MAX} characters")
    return value


def _refused(problem: str) -> Unauthenticated:
    return Unauthenticated(f"{FORWARDED_IDENTITY}: {problem}; it is written by a jobplane-server replica "
                           "(encode_identity), never by hand")
