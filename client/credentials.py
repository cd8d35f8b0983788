"""What a client proves and whom it trusts: a bearer token, the CA bundle, an optional client certificate.

`Credentials` is a plain value; `channel.locate_credentials` decides which ones to use (flags,
environment, the local `jobplane up`, the server's data directory) and `channel.open_channel`
turns them into a TLS channel. With `insecure` the channel is plaintext and carries no token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc

from jobplane.client.errors import CredentialsError
from jobplane.connect import ADMIN_TOKEN_FILE, CA_BUNDLE_FILE, read_secret  # noqa: F401 (the names re-exported)

PemSource = Path | bytes


@dataclass(frozen=True)
class Credentials:
    """A token (the secret itself), PEM files or bytes, and whether to skip TLS altogether.

    `ca=None` trusts the system's root certificates. `origin` says where each part came from,
    for error messages ("token from $JOBPLANE_TOKEN; CA from /…/ca-bundle.crt").
    """

    token: str | None = None
    ca: PemSource | None = None
    cert: PemSource | None = None
    key: PemSource | None = None
    insecure: bool = False
    origin: str = field(default="", compare=False)

    @classmethod
    def from_options(
        cls,
        *,
        token: str | None = None,
        token_file: str | Path | None = None,
        ca: str | Path | bytes | None = None,
        cert: str | Path | bytes | None = None,
        key: str | Path | bytes | None = None,
        insecure: bool = False,
        origin: str = "arguments",
    ) -> Credentials:
        """Credentials from options as a user gives them: a token may be `@PATH`, files are paths.

        Raises CredentialsError for token files that cannot be read and, as the constructor does,
        for contradictions (insecure with a token, a certificate without its key).
        """
        if token and token_file:
            raise CredentialsError("give the token either as --token or as --token-file, not both")
        secret = read_token(f"@{token_file}") if token_file else read_token(token) if token else None
        return cls(secret, pem_source(ca), pem_source(cert), pem_source(key), insecure, origin)

    def __post_init__(self) -> None:
        if self.insecure and (self.token or self.ca or self.cert):
            raise CredentialsError(
                "--insecure connects in plaintext and sends no credentials; drop it, or drop --token/--ca/--cert"
            )
        if (self.cert is None) != (self.key is None):
            raise CredentialsError("a client certificate needs its key: give both --cert and --key")

    @property
    def is_empty(self) -> bool:
        """Says nothing: no token, CA, certificate, nor insecure."""
        return not (self.insecure or self.token or self.ca or self.cert or self.key)

    @property
    def ca_path(self) -> Path | None:
        return self.ca if isinstance(self.ca, Path) else None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS trusting `ca`, presenting `cert` if any, with the token as `authorization: Bearer …`."""
        tls = grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca, "CA bundle"),
            private_key=read_pem(self.key, "client key"),
            certificate_chain=read_pem(self.cert, "client certificate"),
        )
        if not self.token:
            return tls
        return grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(self.token))


def read_token(value: str) -> str:
    """The secret in `value`, or in the file `@PATH` names (surrounding whitespace dropped)."""
    try:
        return read_secret(value)
    except ValueError as error:
        raise CredentialsError(str(error)) from None


def pem_source(value: str | Path | bytes | None) -> PemSource | None:
    """PEM text stays bytes; anything else is a path to a PEM file."""
    if value is None or isinstance(value, bytes):
        return value
    text = str(value)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    return Path(text).expanduser()


def read_pem(source: PemSource | None, what: str) -> bytes | None:
    """The PEM bytes of `source` (raises CredentialsError naming `what` and the file)."""
    if source is None or isinstance(source, bytes):
        return source
    try:
        return source.read_bytes()
    except OSError as error:
        raise CredentialsError(f"cannot read the {what} {source}: {error.strerror or error}") from None
