"""A new private key and its certificate signing request: the agent's one use of the
cryptography package.

The agent makes them in a child process (`python -m jobplane.agent.keygen NAME` prints the
key's PEM, then the CSR's; credentials.py runs it), so that the agent itself never maps the
cryptography package: about 8 MiB of resident memory it would otherwise keep from its first
enrolment or renewal on. Its certificate's validity and whether a key is its certificate's are
read with the standard library (identity.py).

The CA decides the certificate's identity; the name in the CSR is only a courtesy to whoever
reads it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_key_and_csr(name: str) -> tuple[bytes, bytes]:
    """(private key PEM, CSR PEM) for a new EC P-256 key, the CSR naming `name` as CN."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def main(argv: Sequence[str] | None = None) -> int:
    """Print a new key's PEM and its CSR's, for the agent that runs this (see above)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m jobplane.agent.keygen NAME", file=sys.stderr)
        return 2
    key_pem, csr_pem = make_key_and_csr(args[0])
    sys.stdout.buffer.write(key_pem + csr_pem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
