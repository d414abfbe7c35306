"""Signed tokens: what they carry, and that nothing forged, altered or cut is accepted."""

from __future__ import annotations

import base64

import pytest

from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, Keyring, TokenKind, TrackLevel
from mailbeacon.errors import TokenError

KEYRING = Keyring({1: b"k" * 32}, 1)
CLICK = Claims(TokenKind.CLICK, campaign=7, message=123456, link=3,
               url="https://example.com/p?a=1&b=é#frag")


def _raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("claims", [
    Claims(TokenKind.OPEN, 1, 1),
    Claims(TokenKind.OPEN, 2**31, 2**40),
    CLICK,
    Claims(TokenKind.DOWNLOAD, 3, 4, link=99),
    Claims(TokenKind.OPEN, 5, 0, level=TrackLevel.ANONYMOUS),
])
def test_round_trip(claims: Claims) -> None:
    token = tokens.encode(claims, KEYRING)
    assert token.isascii() and "/" not in token and "+" not in token and "=" not in token
    assert tokens.decode(token, KEYRING) == claims


def test_pixel_token_is_compact() -> None:
    assert len(tokens.encode(Claims(TokenKind.OPEN, 1000, 10_000_000), KEYRING)) <= 40


@pytest.mark.parametrize("position", [0, 1, 2, 3, 5, -17, -1])
def test_any_flipped_bit_is_refused(position: int) -> None:
    raw = _raw(tokens.encode(CLICK, KEYRING))
    raw[position] ^= 0x01
    with pytest.raises(TokenError):
        tokens.decode(_token(raw), KEYRING)


def test_altered_url_is_refused() -> None:
    raw = bytes(_raw(tokens.encode(CLICK, KEYRING)))
    forged = raw.replace(b"example.com", b"evil.example")
    assert forged != raw
    with pytest.raises(TokenError, match="signature"):
        tokens.decode(_token(forged), KEYRING)


@pytest.mark.parametrize("cut", [1, 5, 16, 20])
def test_truncated_is_refused(cut: int) -> None:
    token = tokens.encode(CLICK, KEYRING)
    with pytest.raises(TokenError):
        tokens.decode(token[:-cut], KEYRING)


@pytest.mark.parametrize("junk", ["", "!!!!", "a" * 5000, "%00", "AAAA", "é"])
def test_junk_is_refused(junk: str) -> None:
    with pytest.raises(TokenError):
        tokens.decode(junk, KEYRING)


def test_other_key_is_refused() -> None:
    token = tokens.encode(CLICK, Keyring({1: b"x" * 32}, 1))
    with pytest.raises(TokenError):
        tokens.decode(token, KEYRING)


def test_rotated_keyring_still_verifies_old_tokens() -> None:
    old = tokens.encode(CLICK, KEYRING)
    rotated = Keyring({1: b"k" * 32, 2: b"n" * 32}, 2)
    new = tokens.encode(CLICK, rotated)
    assert tokens.decode(old, rotated) == CLICK
    assert tokens.decode(new, rotated) == CLICK
    with pytest.raises(TokenError, match="unknown key"):
        tokens.decode(new, KEYRING)


def test_anonymous_token_never_names_a_recipient() -> None:
    with pytest.raises(TokenError):
        tokens.encode(Claims(TokenKind.OPEN, 1, 5, level=TrackLevel.ANONYMOUS), KEYRING)
    with pytest.raises(TokenError):
        tokens.encode(Claims(TokenKind.OPEN, 1, 5, level=TrackLevel.OFF), KEYRING)


def test_verp_token_survives_case_folding() -> None:
    claims = Claims(TokenKind.BOUNCE, 12, 3456789)
    token = tokens.encode_verp(claims, KEYRING)
    assert token == token.lower() and len("bounces+" + token) <= 64
    assert tokens.decode_verp(token.upper(), KEYRING) == claims
    with pytest.raises(TokenError):
        tokens.decode_verp(token[:-2] + ("a" if token[-2] != "a" else "b") + token[-1], KEYRING)


def test_keyring_refuses_weak_keys() -> None:
    with pytest.raises(TokenError):
        Keyring({1: b"short"}, 1)
    with pytest.raises(TokenError):
        Keyring({1: b"k" * 32}, 2)


def _respelled(token: str) -> list[str]:
    """Other spellings of the same bytes that a lax decoder takes."""
    std = token.replace("-", "+").replace("_", "/")
    padded = token + "=" * (-len(token) % 4)
    return [t for t in (std, padded, token + "==", token + "=", token[:5] + "\n" + token[5:],
                        " " + token, token[:5] + "=" + token[5:], token + "\x00")
            if t != token]


@pytest.mark.parametrize("claims", [CLICK, Claims(TokenKind.OPEN, 1, 1),
                                    Claims(TokenKind.OPEN, 2**31, 2**40)])
def test_one_spelling_per_token(claims: Claims) -> None:
    token = tokens.encode(claims, KEYRING)
    alternatives = _respelled(token)
    assert len(alternatives) >= 6
    for other in alternatives:
        with pytest.raises(TokenError, match="base64url"):
            tokens.decode(other, KEYRING)


def test_standard_alphabet_is_refused() -> None:
    """Find a token with - or _ in it, and spell it with + and / instead."""
    token = next(t for t in (tokens.encode(Claims(TokenKind.OPEN, 1, n), KEYRING)
                             for n in range(1, 500)) if "-" in t or "_" in t)
    assert tokens.decode(token, KEYRING).kind is TokenKind.OPEN
    with pytest.raises(TokenError, match="canonical"):
        tokens.decode(token.replace("-", "+").replace("_", "/"), KEYRING)


def test_unused_trailing_bits_must_be_zero() -> None:
    """A token whose length leaves spare bits in its last character: set one of them."""
    token = next(t for t in (tokens.encode(Claims(TokenKind.OPEN, 1, n), KEYRING)
                             for n in range(1, 500)) if len(t) % 4 in (2, 3))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tweaked = token[:-1] + alphabet[alphabet.index(token[-1]) | 1]
    assert tweaked != token
    assert bytes(_raw(tweaked)) == bytes(_raw(token))  # the same bytes to a lax decoder
    with pytest.raises(TokenError, match="canonical"):
        tokens.decode(tweaked, KEYRING)


def test_verp_token_has_one_spelling_but_its_case() -> None:
    claims = Claims(TokenKind.BOUNCE, 12, 3456789)
    token = tokens.encode_verp(claims, KEYRING)
    assert len(token) % 8 not in (0,)  # there is padding to leave off, and spare bits
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    spare = token[:-1] + alphabet[alphabet.index(token[-1]) | 1]
    assert base64.b32decode((spare + "=" * (-len(spare) % 8)).upper()) == base64.b32decode(
        (token + "=" * (-len(token) % 8)).upper())  # a lax decoder cannot tell them apart
    for other in (token + "=" * (-len(token) % 8), spare, token + "=", " " + token,
                  token.replace("i", "\u0131"), token[:4] + "\u017f" + token[5:]):
        with pytest.raises(TokenError):
            tokens.decode_verp(other, KEYRING)
    assert tokens.decode_verp(token, KEYRING) == tokens.decode_verp(token.upper(), KEYRING)
