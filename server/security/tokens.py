"""Bearer tokens: agent join tokens (`jpa_…`) and user API tokens (`jpu_…`).

A token reads `jp<kind>_<id>_<secret>`. The id is not secret: it finds the stored row, so a lookup
never compares secrets in SQL. Only `hash_secret(plaintext)` is stored; the plaintext is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from enum import StrEnum

ID_LENGTH = 8
ID_ALPHABET = string.ascii_letters + string.digits  # no '_': it separates the parts
SECRET_BYTES = 24  # 192 bits; at least 128 are required
SECRET_LENGTH = 32  # len(secrets.token_urlsafe(SECRET_BYTES))
PREFIX = "jp"


class TokenKind(StrEnum):
    """The letter after `jp` that says what a token is for."""

    AGENT = "a"  # joins an agent to the cluster once, to enroll for a certificate
    USER = "u"  # authenticates a user's API calls


TOKEN = re.compile(rf"{PREFIX}([{''.join(TokenKind)}])_([A-Za-z0-9]{{{ID_LENGTH}}})_([A-Za-z0-9_-]{{{SECRET_LENGTH}}})")


def new_token(kind: str) -> tuple[str, str]:
    """(plaintext, token_id) for a new token of `kind` (`TokenKind.AGENT` or `TokenKind.USER`)."""
    kind = TokenKind(kind)
    token_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
    return f"{PREFIX}{kind}_{token_id}_{secrets.token_urlsafe(SECRET_BYTES)}", token_id


def parse(plaintext: str) -> tuple[TokenKind, str]:
    """(kind, token_id) of a well-formed token; ValueError otherwise, without echoing the secret."""
    match = TOKEN.fullmatch(plaintext)
    if match is None:
        raise ValueError(f"not a jobplane token: expected {PREFIX}<{'|'.join(TokenKind)}>_<{ID_LENGTH} "
                         "letters or digits>_<secret>, as printed when the token was created")
    return TokenKind(match.group(1)), match.group(2)


def hash_secret(plaintext: str) -> str:
    """SHA-256 hex of the whole token: what the store keeps.

    A fast hash is right here: the secret has 192 random bits, so there is nothing for a slow
    password hash (bcrypt, scrypt) to protect against guessing, and it would only slow each call.
    """
    return hashlib.sha256(plaintext.encode()).hexdigest()


def verify(plaintext: str, stored_hash: str) -> bool:
    """Whether `plaintext` is the token `stored_hash` was made from, in constant time."""
    return hmac.compare_digest(hash_secret(plaintext).encode(), stored_hash.encode())
