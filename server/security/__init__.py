"""Security primitives for mTLS and enrollment: the certificate authority (`pki`) and bearer tokens (`tokens`).

Pure functions over bytes and files: no gRPC and no database here, so the server, the CLI and the tests
share one implementation.
"""

from .pki import Authority, ServerFiles, identity_of
from .tokens import TokenKind, hash_secret, new_token, parse, verify

__all__ = ["Authority", "ServerFiles", "TokenKind", "hash_secret", "identity_of", "new_token", "parse", "verify"]
