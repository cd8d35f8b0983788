"""The requesting side of enrollment: make a key and a CSR, keep the key private, know when to renew.

Agents use this too (they may import `jobplane.client`, never `jobplane.server`). The CA decides the
certificate's identity; the name in the CSR is only a courtesy to whoever reads it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jobplane.files import write_atomic


def make_key_and_csr(name: str) -> tuple[bytes, bytes]:
    """(private key PEM, CSR PEM) for a new EC P-256 key, the CSR naming `name` as CN."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data` in a file created 0600, never readable by others."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o600)


def cert_lifetime(cert_pem: bytes) -> tuple[datetime, datetime]:
    """(not_before, not_after) of a PEM certificate, as UTC-aware datetimes."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def renew_at(cert_pem: bytes, fraction: float = 0.7) -> datetime:
    """When to renew: `fraction` of the way through the certificate's validity."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    not_before, not_after = cert_lifetime(cert_pem)
    return not_before + (not_after - not_before) * fraction
