"""The jobplane certificate authority: one EC P-256 CA that signs the server's certificate, the
agents' and users' client certificates, and the replicas' certificates for forwarding calls.

Identity lives in one place, the SAN URI `jobplane://<role>/<identity>` that `sign_csr` and
`issue_replica` write and `identity_of` reads; the CN is only for humans reading `openssl x509 -text`.
A `replica` certificate is made only by `issue_replica`, around a key it generates itself: no
certificate request (an agent's enrollment) can ever come back as one.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jobplane.files import write_atomic

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=365)
SERVER_MIN_REMAINING = timedelta(days=30)
BACKDATE = timedelta(minutes=1)  # tolerates clocks a little behind ours
CSR_ROLES = ("agent", "client")  # what a certificate request may be signed as
REPLICA = "replica"  # a server replica, vouching for the callers it forwards
ROLES = (*CSR_ROLES, REPLICA)
URI_SCHEME = "jobplane"
ALWAYS_HOSTS = ("localhost", "127.0.0.1", "::1")
IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")  # used with fullmatch
CN_MAX = 64  # X.509 upper bound on a common name; the SAN URI carries the full identity
MIN_RSA_BITS = 2048

CA_CERT, CA_KEY, CA_PREVIOUS = "ca.crt", "ca.key", "ca-previous.crt"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class ServerFiles(NamedTuple):
    """Where `issue_server` put the server's certificate and key."""

    cert: Path
    key: Path


class Authority:
    """A CA certificate and its key, plus the previous CA certificate after a rotation."""

    def __init__(self, cert: x509.Certificate, key: PrivateKey,
                 previous: x509.Certificate | None = None) -> None:
        _check_ca_pair(cert, key)
        self.cert = cert
        self._key = key
        self.previous = previous

    @classmethod
    def create(cls, common_name: str = "jobplane CA") -> Authority:
        """A new CA, in memory only."""
        return cls(*_new_ca(common_name))

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, previous_pem: bytes | None = None) -> Authority:
        """A CA from PEM bytes (as `pem_pair()` gives them), plus the previous CA's certificate."""
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise ValueError(f"the CA key must be an EC or RSA key, not {type(key).__name__}")
        previous = x509.load_pem_x509_certificate(previous_pem) if previous_pem else None
        return cls(x509.load_pem_x509_certificate(cert_pem), key, previous)

    @classmethod
    def load_or_create(cls, directory: Path, *, common_name: str = "jobplane CA") -> Authority:
        """Load `ca.crt`/`ca.key` from `directory`, creating a new CA there on first use."""
        directory = Path(directory)
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if cert_path.exists() != key_path.exists():
            missing = key_path if cert_path.exists() else cert_path
            raise ValueError(f"{missing} is missing but its pair exists; restore it or remove both to start a new CA")
        if not cert_path.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_pair(directory, cls.create(common_name))
        previous = directory / CA_PREVIOUS
        return cls.from_files(cert_path, key_path,
                              previous_path=previous if previous.exists() else None)

    @classmethod
    def from_files(cls, cert_path: Path, key_path: Path, *,
                   previous_path: Path | None = None) -> Authority:
        """Use an existing CA: a PEM certificate and its unencrypted PEM EC or RSA private key."""
        previous = Path(previous_path).read_bytes() if previous_path else None
        try:
            return cls.from_pem(Path(cert_path).read_bytes(), Path(key_path).read_bytes(), previous)
        except ValueError as exc:
            raise ValueError(f"{cert_path}, {key_path}: {exc}") from None

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def pem_pair(self) -> tuple[bytes, bytes]:
        """(certificate PEM, unencrypted PKCS#8 key PEM): what a store keeps to load it again."""
        return self.cert_pem, _key_pem(self._key)

    def rotated(self) -> Authority:
        """A new CA of the same name, in memory, with this one as its previous (still trusted) CA."""
        name = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return Authority(*_new_ca(str(name)), previous=self.cert)

    def fingerprint(self) -> str:
        """SHA-256 of the CA certificate's DER, lowercase hex: what `jobplane ca show` prints to pin."""
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def describe(self) -> dict:
        return {
            "subject": self.cert.subject.rfc4514_string(),
            "not_before": self.cert.not_valid_before_utc.isoformat(),
            "not_after": self.cert.not_valid_after_utc.isoformat(),
            "fingerprint": self.fingerprint(),
        }

    def trust_bundle(self) -> bytes:
        """PEM of the current CA and, after a rotation, the previous one: what peers should trust."""
        certs = [self.cert] + ([self.previous] if self.previous else [])
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)

    def rotate(self, directory: Path) -> Authority:
        """Make a new CA key and certificate in `directory`, keeping this one as `ca-previous.crt`.

        Certificates this CA issued keep verifying against `trust_bundle()` until they expire; a CA
        rotated before that rotation is dropped. Returns the new Authority; `self` is unchanged.
        """
        directory = Path(directory)
        new = self.rotated()
        _write_public(directory / CA_PREVIOUS, self.cert_pem)
        _write_pair(directory, new)
        return Authority.from_files(directory / CA_CERT, directory / CA_KEY,
                                    previous_path=directory / CA_PREVIOUS)

    def issue_server(self, directory: Path, hosts: list[str]) -> ServerFiles:
        """Write `server.crt`/`server.key` for `hosts` (plus localhost), reusing a still-good pair."""
        directory = Path(directory)
        files = ServerFiles(directory / SERVER_CERT, directory / SERVER_KEY)
        wanted = _host_names(hosts)
        if self._server_cert_reusable(files, wanted):
            return files
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (_builder(_name(wanted[0]), key.public_key(), now, SERVER_LIFETIME)
                   .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in wanted]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        cert = self._sign(builder)
        write_private(files.key, _key_pem(key))
        _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
        return files

    def sign_csr(self, csr_pem: bytes, *, identity: str, role: str, lifetime: timedelta,
                 now: datetime | None = None) -> bytes:
        """Sign the CSR's public key as `role`/`identity`; the CSR's own subject and SANs are ignored.

        `now` moves the validity window (tests use it to make expired certificates).
        """
        if role not in CSR_ROLES:
            raise ValueError(f"role must be one of {', '.join(CSR_ROLES)}, got {role!r}")
        _check_identity(identity)
        if lifetime <= timedelta(0):
            raise ValueError(f"lifetime must be positive, got {lifetime}")
        public_key = _csr_public_key(csr_pem)
        uri = f"{URI_SCHEME}://{role}/{identity}"
        builder = (_builder(_name(identity), public_key, now or _now(), lifetime)
                   .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        return self._sign(builder).public_bytes(serialization.Encoding.PEM)

    def issue_replica(self, replica_id: str, *, lifetime: timedelta = SERVER_LIFETIME) -> tuple[bytes, bytes]:
        """(private key PEM, certificate PEM) that mark their holder as server replica `replica_id`,
        for the client side of a link to another replica. The key is made here, never taken from
        a request, so only a holder of the CA key can make one."""
        _check_identity(replica_id)
        key = ec.generate_private_key(ec.SECP256R1())
        uri = f"{URI_SCHEME}://{REPLICA}/{replica_id}"
        builder = (_builder(_name(f"{REPLICA} {replica_id}"), key.public_key(), _now(), lifetime)
                   .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        return _key_pem(key), self._sign(builder).public_bytes(serialization.Encoding.PEM)

    def issued(self, cert_der_or_pem: bytes) -> bool:
        """Whether this CA, or the previous one it still trusts, signed the certificate."""
        cert = _load_cert(cert_der_or_pem)
        return any(_issued_by(cert, issuer) for issuer in (self.cert, self.previous) if issuer is not None)

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        builder = (builder.issuer_name(self.cert.subject)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_leaf_key_usage(), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                                  critical=False))
        return builder.sign(self._key, hashes.SHA256())

    def _server_cert_reusable(self, files: ServerFiles, wanted: list[str]) -> bool:
        if not (files.cert.exists() and files.key.exists()):
            return False
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        # A certificate from the previous CA stays in use after a rotation: peers that still trust
        # only that CA keep connecting until they renew (and learn the new bundle).
        issuers = [self.cert] + ([self.previous] if self.previous is not None else [])
        if cert.not_valid_after_utc - _now() <= SERVER_MIN_REMAINING or not any(_issued_by(cert, i) for i in issuers):
            return False
        return set(map(_general_name, wanted)) <= set(_sans(cert))


def identity_of(cert_der_or_pem: bytes) -> tuple[str, str, int]:
    """(role, identity, serial) from a certificate's `jobplane://role/identity` SAN URI."""
    cert = _load_cert(cert_der_or_pem)
    for name in _sans(cert):
        if isinstance(name, x509.UniformResourceIdentifier):
            parts = urlsplit(name.value)
            role, identity = parts.netloc, parts.path.removeprefix("/")
            if parts.scheme == URI_SCHEME and role in ROLES and IDENTITY.fullmatch(identity):
                return role, identity, cert.serial_number
    raise ValueError(f"certificate {cert.subject.rfc4514_string()!r} carries no {URI_SCHEME}://<role>/<identity> SAN")


def write_private(path: Path, data: bytes) -> None:
    """Write `data` atomically to a file created 0600, so a key is never readable by others."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o600)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o644)


def _write_pair(directory: Path, authority: Authority) -> None:
    cert_pem, key_pem = authority.pem_pair()
    write_private(directory / CA_KEY, key_pem)
    _write_public(directory / CA_CERT, cert_pem)


def _new_ca(common_name: str) -> tuple[x509.Certificate, PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False)
    cert = (_builder(name, key.public_key(), _now(), CA_LIFETIME)
            .issuer_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _builder(subject: x509.Name, public_key, now: datetime, lifetime: timedelta) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + lifetime)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def _csr_public_key(csr_pem: bytes):
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ValueError(f"the certificate request is not a PEM CSR: {exc}") from exc
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature does not match its public key")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the certificate request's RSA key has {key.key_size} bits; use at least {MIN_RSA_BITS}")
    return key


def _check_identity(identity: str) -> None:
    if not IDENTITY.fullmatch(identity):
        raise ValueError(f"identity {identity!r} must be 1-128 letters, digits, '.', '_', '@' or '-', "
                         "starting with a letter or digit")


def _check_ca_pair(cert: x509.Certificate, key: PrivateKey) -> None:
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError("the CA key does not belong to the CA certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ValueError(f"{cert.subject.rfc4514_string()} is not a CA certificate (basicConstraints CA:false)")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _host_names(hosts: list[str]) -> list[str]:
    names = [h for h in hosts if h] + list(ALWAYS_HOSTS)
    return list(dict.fromkeys(names))  # dedupe, keep order: the first host names the certificate


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:CN_MAX])])


def _key_pem(key: PrivateKey) -> bytes:
    # Unencrypted PKCS#8: the file's 0600 mode protects it, and the server must start unattended.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_cert(data: bytes) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _now() -> datetime:
    return datetime.now(timezone.utc)
