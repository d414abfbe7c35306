"""API keys: what lets a program (or a person with curl) read ``/api/``.

A key is 32 random bytes, shown once when it is made (``mb_`` + base64url).
Only its SHA-256 is stored: a key has 256 bits of entropy, so a fast hash is
as good as a slow one here (nothing to brute-force), and checking a request
costs one hash and one indexed lookup. ``prefix`` (the first characters) is
kept in clear so a listing can tell keys apart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailbeacon.errors import MailbeaconError
from mailbeacon.store.schema import api_keys
from mailbeacon.store.sql import SqlStore

KEY_PREFIX = "mb_"
SHOWN_PREFIX = 10  # characters of a key a listing shows
MAX_NAME = 200
TOUCH_EVERY = 60.0  # seconds: last_used_at is a hint, not a write per request


class ApiKeyError(MailbeaconError):
    """An API key cannot be made or found."""


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def create(store: SqlStore, name: str, now: float) -> tuple[ApiKey, str]:
    """Make a key called ``name``; returns it and the secret, which is not kept."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ApiKeyError(f"an API key needs a name of 1 to {MAX_NAME} printable characters")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with store.engine.begin() as conn:
        result = conn.execute(api_keys.insert().values(
            name=name, prefix=secret[:SHOWN_PREFIX], sha256=digest(secret), created_at=now))
        key_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return ApiKey(key_id, name, secret[:SHOWN_PREFIX], now, None, None), secret


def listing(store: SqlStore) -> list[ApiKey]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id))
        return [_key(r) for r in rows]


def revoke(store: SqlStore, key_id: int, now: float) -> ApiKey:
    """Revoke key ``key_id``: requests with it are refused from now on."""
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise ApiKeyError(f"no API key {key_id} (see `mailbeacon apikey list`)")
        if row.revoked_at is None:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id)
                         .values(revoked_at=now))
    found = _key(row)
    return ApiKey(found.id, found.name, found.prefix, found.created_at, found.last_used_at,
                  row.revoked_at or now)


def verify(store: SqlStore, presented: str, now: float) -> ApiKey | None:
    """The active key ``presented`` is, or None (unknown, malformed or revoked)."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    wanted = digest(presented)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.sha256 == wanted)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.sha256, wanted):  # equal by the lookup; constant time anyway
        return None
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        with store.engine.begin() as conn:
            conn.execute(api_keys.update().where(api_keys.c.id == row.id)
                         .values(last_used_at=now))
    return _key(row)


def _key(row: Any) -> ApiKey:
    return ApiKey(int(row.id), row.name, row.prefix, float(row.created_at),
                  row.last_used_at, row.revoked_at)
