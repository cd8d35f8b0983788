"""The CA: key files stay private, identities come from the CA not the CSR, rotation keeps old certs valid."""

from __future__ import annotations

import ipaddress
import stat
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from jobplane.agent.identity import write_private
from jobplane.agent.keygen import make_key_and_csr
from jobplane.server.security.pki import Authority, identity_of

DAY = timedelta(days=1)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def sans(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


@pytest.fixture
def ca(tmp_path) -> Authority:
    return Authority.load_or_create(tmp_path / "ca")


def test_a_new_ca_keeps_its_key_private_and_is_a_ca(tmp_path):
    ca = Authority.load_or_create(tmp_path)

    assert mode(tmp_path / "ca.key") == 0o600
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    usage = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert ca.cert.not_valid_after_utc - ca.cert.not_valid_before_utc >= timedelta(days=3650)


def test_load_or_create_loads_the_same_ca_the_second_time(tmp_path):
    first = Authority.load_or_create(tmp_path)
    second = Authority.load_or_create(tmp_path)

    assert second.fingerprint() == first.fingerprint()
    assert second.describe() == first.describe()
    assert first.describe()["subject"] == "CN=jobplane CA"


def test_a_ca_with_its_key_missing_is_not_silently_replaced(tmp_path):
    Authority.load_or_create(tmp_path)
    (tmp_path / "ca.key").unlink()

    with pytest.raises(ValueError, match="ca.key is missing"):
        Authority.load_or_create(tmp_path)


def test_from_files_uses_an_existing_ca(tmp_path):
    ca = Authority.load_or_create(tmp_path)

    assert Authority.from_files(tmp_path / "ca.crt", tmp_path / "ca.key").fingerprint() == ca.fingerprint()


def test_the_server_cert_verifies_against_the_ca_and_names_every_host(ca, tmp_path):
    files = ca.issue_server(tmp_path, ["jobs.example.com", "10.0.0.7"])

    server = cert(files.cert.read_bytes())
    server.verify_directly_issued_by(ca.cert)
    names = sans(server)
    assert set(names.get_values_for_type(x509.DNSName)) == {"jobs.example.com", "localhost"}
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.0.7"), ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    assert mode(files.key) == 0o600


def test_a_still_valid_server_cert_is_reused_and_a_new_host_reissues_it(ca, tmp_path):
    first = ca.issue_server(tmp_path, ["jobs.example.com"]).cert.read_bytes()

    assert ca.issue_server(tmp_path, ["jobs.example.com"]).cert.read_bytes() == first
    assert ca.issue_server(tmp_path, ["127.0.0.1"]).cert.read_bytes() == first
    reissued = ca.issue_server(tmp_path, ["other.example.com"]).cert.read_bytes()
    assert reissued != first
    assert "other.example.com" in sans(cert(reissued)).get_values_for_type(x509.DNSName)


def test_sign_csr_takes_the_identity_from_the_ca_not_the_csr(ca):
    _, csr = make_key_and_csr("admin")  # the CSR claims to be someone else

    issued = cert(ca.sign_csr(csr, identity="worker-3", role="agent", lifetime=DAY))

    issued.verify_directly_issued_by(ca.cert)
    assert issued.subject.rfc4514_string() == "CN=worker-3"
    assert sans(issued).get_values_for_type(x509.UniformResourceIdentifier) == ["jobplane://agent/worker-3"]
    assert identity_of(ca.sign_csr(csr, identity="bob@example.com", role="client", lifetime=DAY))[:2] == (
        "client", "bob@example.com")


def test_sign_csr_rejects_a_csr_whose_signature_does_not_match(ca):
    _, csr = make_key_and_csr("worker-3")
    body = bytearray(x509.load_pem_x509_csr(csr).public_bytes(Encoding.DER))
    body[-1] ^= 0x01  # flip a bit of the signature
    tampered = x509.load_der_x509_csr(bytes(body)).public_bytes(Encoding.PEM)

    with pytest.raises(ValueError, match="signature does not match"):
        ca.sign_csr(tampered, identity="worker-3", role="agent", lifetime=DAY)


@pytest.mark.parametrize("identity, role, words", [
    ("worker/3", "agent", "identity 'worker/3'"),
    ("worker-3\n", "agent", "identity"),
    ("worker-3", "admin", "role must be one of agent, client"),
])
def test_sign_csr_rejects_identities_that_would_not_round_trip(ca, identity, role, words):
    _, csr = make_key_and_csr("x")

    with pytest.raises(ValueError, match=words):
        ca.sign_csr(csr, identity=identity, role=role, lifetime=DAY)


def test_identity_of_round_trips_in_pem_and_der(ca):
    _, csr = make_key_and_csr("worker-3")
    pem = ca.sign_csr(csr, identity="worker-3", role="agent", lifetime=DAY)
    der = cert(pem).public_bytes(Encoding.DER)

    assert identity_of(pem) == identity_of(der) == ("agent", "worker-3", cert(pem).serial_number)


def test_identity_of_refuses_a_cert_without_a_jobplane_identity(ca, tmp_path):
    with pytest.raises(ValueError, match="no jobplane://"):
        identity_of(ca.issue_server(tmp_path, ["x"]).cert.read_bytes())


def test_a_cert_from_another_ca_does_not_verify(ca, tmp_path):
    other = Authority.load_or_create(tmp_path / "other")
    _, csr = make_key_and_csr("worker-3")

    foreign = cert(other.sign_csr(csr, identity="worker-3", role="agent", lifetime=DAY))

    with pytest.raises(InvalidSignature):
        foreign.verify_directly_issued_by(ca.cert)


def test_rotation_keeps_the_old_ca_in_the_trust_bundle(tmp_path):
    old = Authority.load_or_create(tmp_path)
    _, csr = make_key_and_csr("worker-3")
    issued_before = cert(old.sign_csr(csr, identity="worker-3", role="agent", lifetime=DAY))

    new = old.rotate(tmp_path)

    assert new.fingerprint() != old.fingerprint()
    assert Authority.load_or_create(tmp_path).fingerprint() == new.fingerprint()
    bundle = x509.load_pem_x509_certificates(Authority.load_or_create(tmp_path).trust_bundle())
    assert [c.fingerprint(hashes.SHA256()).hex() for c in bundle] == [new.fingerprint(), old.fingerprint()]
    issued_before.verify_directly_issued_by(bundle[1])
    assert mode(tmp_path / "ca.key") == 0o600


def test_after_a_rotation_the_old_server_cert_serves_until_its_ca_leaves_the_bundle(tmp_path):
    old = Authority.load_or_create(tmp_path / "ca")
    before = old.issue_server(tmp_path, ["jobs"]).cert.read_bytes()

    new = old.rotate(tmp_path / "ca")
    kept = new.issue_server(tmp_path, ["jobs"]).cert.read_bytes()
    assert kept == before, "peers trusting only the old CA keep connecting"

    newest = new.rotate(tmp_path / "ca")  # the first CA is no longer trusted
    after = cert(newest.issue_server(tmp_path, ["jobs"]).cert.read_bytes())
    assert after != cert(before)
    after.verify_directly_issued_by(newest.cert)


def test_write_private_replaces_the_file_with_mode_0600(tmp_path):
    path = tmp_path / "agent.key"
    path.write_bytes(b"old")
    path.chmod(0o644)

    write_private(path, b"new")

    assert path.read_bytes() == b"new"
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["agent.key"]  # no temp file left behind
