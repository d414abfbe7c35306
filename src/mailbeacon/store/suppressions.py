"""The suppression list: addresses ``send`` skips (hard bounces, repeated soft bounces,
complaints, and addresses put there by hand).

The first reason an address was listed for stays: a second report about it
changes nothing. The ``*_in`` functions work inside a caller's transaction, so
the inbound pipeline lists an address in the same transaction as the events
that caused it (``store.inbound``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mailbeacon.core.events import EventKind
from mailbeacon.store.schema import events, messages, suppressions
from mailbeacon.store.sql import SqlStore


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    source: str
    inbound: int | None
    created_at: float


def suppress_in(
    conn: Connection, address: str, reason: str, source: str, inbound_id: int | None, at: float
) -> None:
    """Put ``address`` on the list unless it is there (the first reason stays). Two reports
    about one address settled at once both try: the primary key keeps one, without an error."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        insert(suppressions)
        .values(
            address=address.strip().lower(),
            reason=reason[:500],
            source=source,
            inbound=inbound_id,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=[suppressions.c.address])
    )


def suppress(
    store: SqlStore, address: str, reason: str, *, at: float, source: str = "manual"
) -> None:
    with store.engine.begin() as conn:
        suppress_in(conn, address, reason, source, None, at)


def unsuppress(store: SqlStore, address: str) -> bool:
    """Take ``address`` off the list; False when it was not on it."""
    with store.engine.begin() as conn:
        result = conn.execute(
            suppressions.delete().where(suppressions.c.address == address.strip().lower())
        )
        return bool(result.rowcount)


def listing(store: SqlStore) -> list[Suppression]:
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(suppressions).order_by(suppressions.c.created_at, suppressions.c.address)
        )
        return [Suppression(r.address, r.reason, r.source, r.inbound, r.created_at) for r in rows]


def suppressed(store: SqlStore, addresses: Iterable[str]) -> dict[str, str]:
    """Of ``addresses``, those on the list, with the reason."""
    wanted = {a.strip().lower(): a for a in addresses}
    if not wanted:
        return {}
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(suppressions.c.address, suppressions.c.reason).where(
                suppressions.c.address.in_(list(wanted))
            )
        )
        return {wanted[a]: reason for a, reason in rows}


def listed(conn: Connection) -> int:
    """How many addresses are on the list (all campaigns)."""
    return int(conn.scalar(sa.select(sa.func.count()).select_from(suppressions)) or 0)


def soft_bounces(store: SqlStore, address: str, since: float) -> int:
    """Soft bounce reports for copies sent to ``address`` since ``since``."""
    with store.connect() as conn:
        return soft_bounces_in(conn, address, since)


def soft_bounces_in(conn: Connection, address: str, since: float) -> int:
    q = (
        sa.select(events.c.detail)
        .select_from(events.join(messages, messages.c.id == events.c.message))
        .where(
            messages.c.recipient == address.lower(),
            events.c.kind == EventKind.BOUNCED,
            events.c.at >= since,
        )
    )
    details = [json.loads(d) if d else {} for d in conn.scalars(q)]
    return sum(1 for d in details if d.get("source") == "report" and not d.get("hard"))
