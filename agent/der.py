"""Just enough DER (X.690) to read what the agent needs of its own certificate and key with the
standard library: the certificate's validity and public key, and the public key its PKCS#8 EC
private key carries (as keygen.py writes it).

A running agent does not load the cryptography package (keygen.py says why); what it must know
of its TLS material at steady state is read here. The structures (RFC 5280, 5208, 5915):

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
        signature, issuer, validity SEQUENCE { notBefore, notAfter }, subject,
        subjectPublicKeyInfo SEQUENCE { algorithm, subjectPublicKey BIT STRING }, ... }, ... }
    PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING (an ECPrivateKey) }
    ECPrivateKey ::= SEQUENCE { version, privateKey, [0] parameters OPTIONAL,
        [1] publicKey BIT STRING OPTIONAL }
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone

_VERSION, _PUBLIC_KEY = 0xA0, 0xA1  # context-specific tags: [0] and [1]
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18

Element = tuple[int, int, int]  # (tag, start, end): its tag, and where its contents lie


def cert_lifetime(cert_pem: bytes) -> tuple[datetime, datetime]:
    """(not_before, not_after) of the (first) certificate in `cert_pem`, as UTC-aware datetimes;
    raises ValueError if it cannot be read."""
    der, fields = _tbs_fields(cert_pem)
    try:
        not_before, not_after = (_time(der, *element) for element in _contents(der, fields[3]))
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a readable certificate validity: {exc}") from None
    return not_before, not_after


def cert_public_key(cert_pem: bytes) -> bytes:
    """The subjectPublicKey bits of the (first) certificate in `cert_pem`."""
    der, fields = _tbs_fields(cert_pem)
    try:
        _, start, end = _contents(der, fields[5])[1]
    except IndexError:
        raise ValueError("not a readable certificate public key") from None
    return der[start:end]


def key_public_key(key_pem: bytes) -> bytes | None:
    """The public key bits a PKCS#8 EC private key carries; None if it carries none."""
    der = _pem_der(key_pem, "PRIVATE KEY")
    try:
        private_key = _contents(der, _element(der, 0))[2]
        ec_key = _element(der, private_key[1])
        for tag, start, end in _contents(der, ec_key):
            if tag == _PUBLIC_KEY:
                _, start, end = _element(der, start)
                return der[start:end]
    except IndexError:
        raise ValueError("not a readable PKCS#8 private key") from None
    return None


def _tbs_fields(cert_pem: bytes) -> tuple[bytes, list[Element]]:
    """The certificate's DER and the elements of its tbsCertificate, version dropped."""
    der = _pem_der(cert_pem, "CERTIFICATE")
    try:
        fields = _contents(der, _element(der, _element(der, 0)[1]))
    except IndexError:
        raise ValueError("not a readable certificate") from None
    return der, fields[1:] if fields and fields[0][0] == _VERSION else fields


def _pem_der(pem: bytes, label: str) -> bytes:
    """The DER of the first `-----BEGIN {label}-----` block in `pem`."""
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    start = pem.find(begin)
    stop = pem.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError(f"no PEM {label.lower()} found")
    return base64.b64decode(b"".join(pem[start + len(begin):stop].split()))  # binascii.Error is a ValueError


def _element(der: bytes, at: int) -> Element:
    """The DER element at `at`."""
    tag, length, at = der[at], der[at + 1], at + 2
    if length & 0x80:  # long form: the length in the next (length & 0x7f) bytes
        count = length & 0x7F
        length, at = int.from_bytes(der[at:at + count], "big"), at + count
    if at + length > len(der):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _contents(der: bytes, element: Element) -> list[Element]:
    """The elements inside a constructed element (a SEQUENCE, or an explicit tag)."""
    _, start, end = element
    found = []
    while start < end:
        found.append(_element(der, start))
        start = found[-1][2]
    return found


def _time(der: bytes, tag: int, start: int, end: int) -> datetime:
    """A UTCTime (YYMMDDHHMMSSZ; years 50-99 are 19xx) or a GeneralizedTime (YYYYMMDDHHMMSSZ)."""
    text = der[start:end].decode("ascii")
    if tag == _UTC_TIME:
        text = ("19" if text[:2] >= "50" else "20") + text
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"expected a time, got DER tag {tag:#x}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)
