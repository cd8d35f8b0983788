"""Forwarded callers: the identity a replica forwards reads back whole, a forged or garbled one
is refused naming the metadata, and a replica certificate is something only the CA's holder
makes (no certificate request, an agent's enrollment, can come back as one)."""

from __future__ import annotations

import base64
import json

import pytest

from jobplane.agent.keygen import make_key_and_csr
from jobplane.replicas import FORWARDED_IDENTITY
from jobplane.server.errors import Unauthenticated
from jobplane.server.security.forwarding import decode_identity, encode_identity, forwarded_identity
from jobplane.server.security.pki import Authority, identity_of
from jobplane.server.security.policy import Caller, Role

CALLERS = [
    Caller("alice", Role.SUBMITTER, ("physics", "gpu-users")),
    Caller("ops@example.org", Role.OPERATOR, method="token"),
    Caller("worker-7", Role.AGENT, method="certificate", serial=2**150 + 7),
    Caller("zoë ✓", Role.VIEWER, ("équipe",)),
]


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.identity)
def test_a_forwarded_caller_reads_back_whole_and_names_the_replica(caller):
    text = encode_identity(caller)

    assert text.isascii() and "\n" not in text  # a metadata value
    assert decode_identity(text, forwarded_by="r-1") == Caller(
        caller.identity, caller.role, caller.groups, caller.method, caller.serial, forwarded_by="r-1")


def encoded(document) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


GOOD = {"v": 1, "identity": "alice", "role": 3, "groups": [], "method": "token", "serial": 0}


@pytest.mark.parametrize("text, words", [
    ("not base64 at all!", "not base64url-encoded JSON"),
    (encoded(["a", "list"]), "not a version 1 identity"),
    (encoded({**GOOD, "v": 2}), "not a version 1 identity"),
    (encoded({**GOOD, "role": 0}), "a field is missing or wrong"),
    (encoded({**GOOD, "role": 99}), "a field is missing or wrong"),
    (encoded({k: v for k, v in GOOD.items() if k != "identity"}), "a field is missing or wrong"),
    (encoded({**GOOD, "identity": ""}), "identity must be"),
    (encoded({**GOOD, "groups": "admins"}), "groups must be a list"),
    (encoded({**GOOD, "serial": -1}), "serial must be"),
    (encoded({**GOOD, "serial": True}), "serial must be"),
    ("A" * 9000, "longer than"),
])
def test_a_garbled_forwarded_identity_is_refused_naming_the_metadata(text, words):
    with pytest.raises(Unauthenticated, match=words) as refused:
        decode_identity(text)
    assert str(refused.value).startswith(f"{FORWARDED_IDENTITY}: ")


def test_the_forwarded_identity_is_found_in_the_metadata():
    metadata = (("authorization", "Bearer x"), (FORWARDED_IDENTITY, "abc"))
    assert forwarded_identity(metadata) == "abc"
    assert forwarded_identity((("authorization", "Bearer x"),)) is None


def test_a_replica_certificate_says_replica_and_only_the_ca_holder_makes_one(tmp_path):
    ca = Authority.create()
    key, cert = ca.issue_replica("0b7c4d1e-5f5a-4b8e-9d2a-1c3e5f7a9b0d")

    assert identity_of(cert)[:2] == ("replica", "0b7c4d1e-5f5a-4b8e-9d2a-1c3e5f7a9b0d")
    assert ca.issued(cert) and not Authority.create().issued(cert)
    _, csr = make_key_and_csr("replica")
    with pytest.raises(ValueError, match="role must be one of agent, client"):
        ca.sign_csr(csr, identity="r-1", role="replica", lifetime=ca.cert.not_valid_after_utc - ca.cert.not_valid_before_utc)


def test_a_ca_round_trips_through_pem_with_its_previous_one():
    old = Authority.create()
    new = old.rotated()

    loaded = Authority.from_pem(*new.pem_pair(), old.cert_pem)

    assert loaded.fingerprint() == new.fingerprint() and loaded.trust_bundle() == new.trust_bundle()
    assert loaded.trust_bundle().count(b"BEGIN CERTIFICATE") == 2
    _, replica = loaded.issue_replica("r-1")
    assert new.issued(replica)
