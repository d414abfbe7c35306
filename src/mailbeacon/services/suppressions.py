"""The suppression list as users manage it: addresses ``send`` skips (docs/inbound.md)."""

from __future__ import annotations

from collections.abc import Sequence

from mailbeacon.errors import MailbeaconError
from mailbeacon.store import suppressions as db
from mailbeacon.store.sql import SqlStore
from mailbeacon.store.suppressions import Suppression


def listing(store: SqlStore) -> list[Suppression]:
    return db.listing(store)


def add(store: SqlStore, addresses: Sequence[str], reason: str, now: float) -> None:
    """Put ``addresses`` on the list by hand; none is added if one is not an address."""
    for address in addresses:
        if address.count("@") != 1:
            raise MailbeaconError(f"{address!r} is not an email address")
    for address in addresses:
        db.suppress(store, address, reason, at=now)


def remove(store: SqlStore, addresses: Sequence[str]) -> None:
    """Take ``addresses`` off the list; an error names those that were not on it."""
    missing = [a for a in addresses if not db.unsuppress(store, a)]
    if missing:
        raise MailbeaconError(f"not on the list: {', '.join(missing)}")
