"""Signed tracking tokens.

A token carries everything a tracking hit needs (what was hit, which campaign,
which recipient copy, which link) so the hot path verifies it with one HMAC and
reads no database. Layout before encoding::

    version(1) key_id(1) kind(1) level(1) varint(campaign) varint(message)
    varint(link) url-bytes...  mac(16)

The MAC is HMAC-SHA256 over a domain tag and the payload, truncated to 128
bits. The key id selects the key in a keyring, so keys rotate without breaking
mail already sent. URL tokens use unpadded base64url; VERP tokens (which live
in an address local part that some MTAs lower-case) use lower-case base32.

One token, one spelling: decoding is strict, so a token is accepted only in
the exact form ``encode`` gives (a VERP token in either letter case, since
MTAs fold it). The standard alphabet (``+`` ``/``), ``=`` padding, whitespace,
non-ASCII look-alikes and unused trailing bits that are not zero are refused:
otherwise one signed token has many spellings, and anything that counts or
compares hits by token (logs, caches, a proxy's dedup) is fooled.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from mailbeacon.errors import TokenError

VERSION = 1
MAC_SIZE = 16
_DOMAIN = b"mailbeacon-token/1\x00"
MAX_TOKEN_CHARS = 4096  # a click URL is long, not this long
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_STD_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


class TokenKind(enum.IntEnum):
    OPEN = 1
    CLICK = 2
    DOWNLOAD = 3
    BOUNCE = 4  # VERP return path and tracking header
    HONEYPOT = 5  # a link no person can see


class TrackLevel(enum.Enum):
    IDENTIFIED = "identified"
    ANONYMOUS = "anonymous"
    OFF = "off"

    @property
    def code(self) -> int:
        return _LEVEL_CODES[self]


_LEVEL_CODES = {TrackLevel.IDENTIFIED: 1, TrackLevel.ANONYMOUS: 2, TrackLevel.OFF: 3}
_LEVEL_BY_CODE = {v: k for k, v in _LEVEL_CODES.items()}
_KIND_BY_CODE = {int(k): k for k in TokenKind}


@dataclass(frozen=True, slots=True)
class Claims:
    """What a token says. ``message`` is 0 when the level is anonymous."""

    kind: TokenKind
    campaign: int
    message: int = 0
    link: int = 0
    url: str = ""
    level: TrackLevel = TrackLevel.IDENTIFIED


@dataclass(frozen=True)
class Keyring:
    """Signing keys by id; ``active`` signs, every key verifies."""

    keys: dict[int, bytes]
    active: int

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise TokenError(f"active key id {self.active} is not in the keyring")
        for kid, secret in self.keys.items():
            if not 0 < kid < 256:
                raise TokenError(f"key id {kid} is outside 1..255")
            if len(secret) < 32:
                raise TokenError(f"key {kid} is shorter than 32 bytes")


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos < len(data) and data[pos] < 0x80:  # one byte: the link, often the campaign
        return data[pos], pos + 1
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise TokenError("token is truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.digest(secret, _DOMAIN + payload, "sha256")[:MAC_SIZE]


@functools.lru_cache(maxsize=64)
def _keyed(secret: bytes) -> tuple[Any, Any]:
    """SHA-256 states with the HMAC key pads (and the domain tag) already absorbed.

    RFC 2104 by hand, so that verifying a token copies two hash states instead of
    setting up a keyed HMAC each time (a quarter of the cost). ``seal`` keeps
    ``hmac.digest``: every token a test signs and verifies checks one against the other.
    """
    block = hashlib.sha256().block_size
    key = hashlib.sha256(secret).digest() if len(secret) > block else secret
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + _DOMAIN)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _verify_mac(secret: bytes, payload: bytes) -> bytes:
    inner, outer = _keyed(secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(payload)
    outer.update(inner.digest())
    return outer.digest()[:MAC_SIZE]


def seal(claims: Claims, keyring: Keyring) -> bytes:
    """The signed binary form of ``claims``."""
    if claims.level is TrackLevel.OFF:
        raise TokenError("tracking is off: no token is issued")
    if claims.level is TrackLevel.ANONYMOUS and claims.message:
        raise TokenError("an anonymous token must not name a recipient copy")
    payload = (
        bytes([VERSION, keyring.active, claims.kind, claims.level.code])
        + _varint(claims.campaign)
        + _varint(claims.message)
        + _varint(claims.link)
        + claims.url.encode("utf-8")
    )
    return payload + _mac(keyring.keys[keyring.active], payload)


def unseal(raw: bytes, keyring: Keyring) -> Claims:
    """Verify and decode; raises TokenError for anything not ours and intact."""
    if len(raw) < 4 + 3 + MAC_SIZE:
        raise TokenError("token is truncated")
    payload, mac = raw[:-MAC_SIZE], raw[-MAC_SIZE:]
    if payload[0] != VERSION:
        raise TokenError("unknown token version")
    secret = keyring.keys.get(payload[1])
    if secret is None:
        raise TokenError("token was signed by an unknown key")
    if not hmac.compare_digest(mac, _verify_mac(secret, payload)):
        raise TokenError("token signature does not match")
    try:
        kind = _KIND_BY_CODE[payload[2]]
        level = _LEVEL_BY_CODE[payload[3]]
        campaign, pos = _read_varint(payload, 4)
        message, pos = _read_varint(payload, pos)
        link, pos = _read_varint(payload, pos)
        url = payload[pos:].decode("utf-8")
    except (KeyError, UnicodeDecodeError) as exc:
        raise TokenError("token is malformed") from exc
    return Claims(kind, campaign, message, link, url, level)


def encode(claims: Claims, keyring: Keyring) -> str:
    """A URL-safe token (base64url, no padding)."""
    return base64.urlsafe_b64encode(seal(claims, keyring)).rstrip(b"=").decode("ascii")


def decode(token: str, keyring: Keyring) -> Claims:
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("token is empty or too long")
    try:
        spelled = token.encode("ascii")
        raw = binascii.a2b_base64(spelled.translate(_URLSAFE_TO_STD) + b"=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("token is not base64url") from exc
    # The one spelling: encoding what was decoded gives the token back, byte for byte.
    if binascii.b2a_base64(raw, newline=False).translate(_STD_TO_URLSAFE).rstrip(b"=") != spelled:
        raise TokenError("token is not in canonical base64url")
    return unseal(raw, keyring)


def encode_verp(claims: Claims, keyring: Keyring) -> str:
    """A case-insensitive token for an address local part (lower-case base32)."""
    return base64.b32encode(seal(claims, keyring)).rstrip(b"=").decode("ascii").lower()


def decode_verp(token: str, keyring: Keyring) -> Claims:
    """Either letter case (an MTA may fold the local part), one spelling otherwise."""
    if not token or len(token) > 200 or not token.isascii():  # "ı".upper() == "I"
        raise TokenError("VERP token is empty, too long or not ASCII")
    spelled = token.upper().encode("ascii")
    try:
        raw = base64.b32decode(spelled + b"=" * (-len(token) % 8))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("VERP token is not base32") from exc
    if base64.b32encode(raw).rstrip(b"=") != spelled:
        raise TokenError("VERP token is not in canonical base32")
    return unseal(raw, keyring)
