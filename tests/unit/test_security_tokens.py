"""Bearer tokens: enough entropy, only a hash is kept, malformed tokens are refused by name."""

from __future__ import annotations

import base64

import pytest

from jobplane.server.security.tokens import TokenKind, hash_secret, new_token, parse, verify


@pytest.mark.parametrize("kind, prefix", [(TokenKind.AGENT, "jpa_"), ("u", "jpu_")])
def test_a_new_token_says_its_kind_and_parses_back_to_its_id(kind, prefix):
    plaintext, token_id = new_token(kind)

    assert plaintext.startswith(prefix)
    assert parse(plaintext) == (kind, token_id)
    assert len(token_id) == 8


def test_the_secret_has_at_least_128_bits_and_tokens_differ():
    first, _ = new_token(TokenKind.USER)
    second, _ = new_token(TokenKind.USER)

    secret = first.split("_", 2)[2]
    assert len(base64.urlsafe_b64decode(secret + "==")) >= 16
    assert first != second


def test_only_the_hash_is_kept_and_it_verifies_the_right_token_only():
    plaintext, _ = new_token(TokenKind.AGENT)
    other, _ = new_token(TokenKind.AGENT)

    stored = hash_secret(plaintext)

    assert plaintext not in stored and stored != plaintext
    assert verify(plaintext, stored)
    assert not verify(other, stored)
    assert not verify(plaintext, "")


@pytest.mark.parametrize("text", [
    "",
    "jpa_abc",
    "jpx_abcd1234_" + "s" * 32,  # unknown kind
    "jpa_abcd123_" + "s" * 32,  # id too short
    "jpa_abcd1234_" + "s" * 31,  # secret too short
    "jpa_abcd1234_" + "s" * 32 + "\n",
    "xxa_abcd1234_" + "s" * 32,
])
def test_a_malformed_token_is_refused_without_echoing_it(text):
    with pytest.raises(ValueError, match="not a jobplane token") as caught:
        parse(text)
    assert "s" * 31 not in str(caught.value)


def test_an_unknown_kind_cannot_be_minted():
    with pytest.raises(ValueError):
        new_token("x")
