"""The agent reads its own TLS material with the standard library (agent/der.py) as the
cryptography package does: a certificate's validity and public key, and the public key its
private key carries. Certificates come from the real CA, keys from the agent's keygen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jobplane.agent.der import cert_lifetime, cert_public_key, key_public_key
from jobplane.agent.keygen import make_key_and_csr
from jobplane.server.security.pki import Authority


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority.create()


def issue(ca: Authority, lifetime: timedelta = timedelta(hours=1)) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) as an agent gets them at enrolment."""
    key_pem, csr = make_key_and_csr("worker-3")
    return key_pem, ca.sign_csr(csr, identity="worker-3", role="agent", lifetime=lifetime)


@pytest.mark.parametrize("lifetime", [timedelta(hours=10), timedelta(days=365 * 40)])  # UTCTime, GeneralizedTime
def test_a_certificates_lifetime_is_read_as_cryptography_reads_it(ca, lifetime):
    _, pem = issue(ca, lifetime)

    not_before, not_after = cert_lifetime(pem)

    cert = x509.load_pem_x509_certificate(pem)
    assert (not_before, not_after) == (cert.not_valid_before_utc, cert.not_valid_after_utc)
    assert not_before.tzinfo is not None
    assert not_after - not_before == lifetime + timedelta(minutes=1)  # backdated a minute for clock skew


def test_the_first_certificate_of_a_chain_is_the_one_read(ca):
    _, pem = issue(ca, timedelta(hours=3))

    assert cert_lifetime(pem + ca.trust_bundle()) == cert_lifetime(pem)


def test_a_key_carries_the_public_key_of_its_certificate_and_not_of_another(ca):
    key_pem, cert_pem = issue(ca)
    other_key, other_cert = issue(ca)

    assert key_public_key(key_pem) == cert_public_key(cert_pem)
    assert key_public_key(other_key) == cert_public_key(other_cert)
    assert key_public_key(key_pem) != cert_public_key(other_cert)
    public = x509.load_pem_x509_certificate(cert_pem).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert cert_public_key(cert_pem) == b"\x00" + public  # a BIT STRING: no unused bits, then the point


@pytest.mark.parametrize("pem", [b"", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                                 b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"])
def test_what_is_not_a_certificate_is_a_value_error(pem):
    with pytest.raises(ValueError):
        cert_lifetime(pem)
    with pytest.raises(ValueError):
        cert_public_key(pem)
