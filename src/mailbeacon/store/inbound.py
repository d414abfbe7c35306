"""The store side of what comes back: inbound messages, their outcomes, and the lookups that
match them to the copies we sent. (The suppression list is ``store.suppressions``; delivery
figures are ``store.delivery``.)

An inbound message is written (and committed) before anything is made of it;
its outcome (matched with its events, quarantined with the reason, or a
duplicate) is written later in one transaction with the events and any
suppression it causes.

The same report may arrive several times at once (a mail server retrying on
parallel SMTP sessions, the same bounce by SMTP and by IMAP). Each event made
from a report carries an idempotency key naming the report, the copy and the
kind; the store's unique index on ``events.key`` keeps the first, and a copy
whose events were all recorded already is settled as a duplicate. Suppressions
and soft-bounce counts follow only from events that were actually inserted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mailbeacon.core.events import Event
from mailbeacon.core.matching import SentCopy
from mailbeacon.store.schema import events, inbound, messages
from mailbeacon.store.sql import SqlStore
from mailbeacon.store.suppressions import soft_bounces_in, suppress_in

MAX_HEADER_ID = 250


@dataclass(frozen=True)
class InboundRow:
    id: int
    received_at: float
    source: str
    envelope_from: str
    envelope_to: tuple[str, ...]
    status: str
    kind: str
    reason: str
    matched_by: str
    message: int | None
    raw: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at,
            "source": self.source,
            "envelope_from": self.envelope_from,
            "envelope_to": list(self.envelope_to),
            "status": self.status,
            "kind": self.kind,
            "reason": self.reason,
            "matched_by": self.matched_by,
            "message": self.message,
            "size": len(self.raw),
        }


def save(
    store: SqlStore,
    raw: bytes,
    *,
    source: str,
    at: float,
    envelope_from: str = "",
    envelope_to: Sequence[str] = (),
    header_message_id: str = "",
) -> int:
    """Keep ``raw`` as it came; committed when this returns."""
    with store.engine.begin() as conn:
        result = conn.execute(
            inbound.insert().values(
                received_at=at,
                source=source,
                envelope_from=envelope_from[:1000],
                envelope_to=json.dumps(list(envelope_to)),
                raw=raw,
                header_message_id=header_message_id[:MAX_HEADER_ID],
                sha256=hashlib.sha256(raw).hexdigest(),
                status="received",
                kind="",
                reason="",
                matched_by="",
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def _row(r: Any) -> InboundRow:
    return InboundRow(
        r.id,
        r.received_at,
        r.source,
        r.envelope_from,
        tuple(json.loads(r.envelope_to or "[]")),
        r.status,
        r.kind,
        r.reason,
        r.matched_by,
        r.message,
        bytes(r.raw),
    )


def get(store: SqlStore, inbound_id: int) -> InboundRow | None:
    with store.connect() as conn:
        r = conn.execute(sa.select(inbound).where(inbound.c.id == inbound_id)).first()
    return _row(r) if r is not None else None


def listing(store: SqlStore, status: str | None = None, limit: int = 1000) -> list[InboundRow]:
    q = sa.select(inbound).order_by(inbound.c.id).limit(limit)
    if status:
        q = q.where(inbound.c.status == status)
    with store.connect() as conn:
        return [_row(r) for r in conn.execute(q)]


def duplicate_of(
    store: SqlStore, inbound_id: int, sha256: str, header_message_id: str
) -> int | None:
    """An earlier message with the same bytes, or the same Message-ID that was matched."""
    same = inbound.c.sha256 == sha256
    if header_message_id:
        same = sa.or_(
            same,
            sa.and_(
                inbound.c.header_message_id == header_message_id[:250],
                inbound.c.status == "matched",
            ),
        )
    q = (
        sa.select(inbound.c.id)
        .where(inbound.c.id < inbound_id, inbound.c.status != "received", same)
        .limit(1)
    )
    with store.connect() as conn:
        found = conn.scalar(q)
    return int(found) if found is not None else None


def sha_of(store: SqlStore, inbound_id: int) -> tuple[str, str]:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(inbound.c.sha256, inbound.c.header_message_id).where(
                inbound.c.id == inbound_id
            )
        ).one()
    return str(row.sha256), str(row.header_message_id)


def settle(
    store: SqlStore,
    inbound_id: int,
    *,
    status: str,
    kind: str,
    reason: str,
    at: float,
    matched_by: str = "",
    copy: SentCopy | None = None,
    new_events: Sequence[Event] = (),
    suppress: Sequence[tuple[str, str, str]] = (),
) -> None:
    """The outcome of one inbound message, its events and suppressions, in one transaction."""
    with store.engine.begin() as conn:
        conn.execute(
            inbound.update()
            .where(inbound.c.id == inbound_id)
            .values(
                status=status,
                kind=kind,
                reason=reason[:2000],
                matched_by=matched_by,
                campaign=copy.campaign if copy else None,
                message=copy.id if copy else None,
                processed_at=at,
            )
        )
        for e in new_events:
            _insert_once(conn, e)
        for address, why, source in suppress:
            suppress_in(conn, address, why, source, inbound_id, at)


SoftBounces = Callable[[str, float], int]  # (address, since) -> soft bounce reports
SuppressionsFor = Callable[[Sequence[Event], SoftBounces], Sequence[tuple[str, str, str]]]


@dataclass(frozen=True)
class Recorded:
    """What ``record_matched`` wrote: the events that were new, or whose report it repeats."""

    inserted: tuple[Event, ...]
    duplicate: bool = False  # every event was recorded already, from an earlier delivery
    reason: str = ""  # for a duplicate: which inbound message recorded them


def record_matched(
    store: SqlStore,
    inbound_id: int,
    *,
    kind: str,
    at: float,
    matched_by: str,
    copy: SentCopy,
    new_events: Sequence[Event],
    suppressions_for: SuppressionsFor,
) -> Recorded:
    """A matched report's events, each inserted unless its key is stored already, then the
    suppressions ``suppressions_for`` draws from the inserted ones, in one transaction.

    The key's unique index decides, not a look beforehand: of parallel deliveries of the
    same report, one inserts and the others wait for it and then insert nothing (they are
    settled as duplicates). Soft bounces are counted inside the transaction, so the count
    includes this report's own bounce and no duplicate of it.
    """
    with store.engine.begin() as conn:
        inserted = tuple(e for e in new_events if _insert_once(conn, e))
        duplicate = bool(new_events) and not inserted
        reason = _recorded_by(conn, new_events[0].key) if duplicate else ""
        suppress = suppressions_for(
            inserted, lambda address, since: soft_bounces_in(conn, address, since))
        conn.execute(
            inbound.update()
            .where(inbound.c.id == inbound_id)
            .values(
                status="duplicate" if duplicate else "matched",
                kind=kind,
                reason=reason,
                matched_by=matched_by,
                campaign=copy.campaign,
                message=copy.id,
                processed_at=at,
            )
        )
        for address, why, source in suppress:
            suppress_in(conn, address, why, source, inbound_id, at)
    return Recorded(inserted, duplicate, reason)


def _insert_once(conn: Connection, event: Event) -> bool:
    """Insert ``event``; False when an event with its key is stored (or being stored)."""
    if event.key is None:
        conn.execute(events.insert(), [event.row()])
        return True
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: with psycopg an INSERT that returns its id reports -1 rows.
    result = conn.execute(insert(events).values(**event.row())
                          .on_conflict_do_nothing(index_elements=[events.c.key])
                          .returning(events.c.id))
    return result.first() is not None


def _recorded_by(conn: Connection, key: str | None) -> str:
    """Which inbound message recorded the event holding ``key``, as a reason."""
    detail = conn.scalar(sa.select(events.c.detail).where(events.c.key == key))
    found = json.loads(detail).get("inbound") if detail else None
    if isinstance(found, int):
        return f"the same report as inbound {found}"
    return "the same report was recorded already"


# -- matching lookups ---------------------------------------------------------------------


class SqlLookup:
    """matching.Lookup over the messages table."""

    def __init__(self, store: SqlStore):
        self.store = store

    def _one(self, where: Any) -> SentCopy | None:
        q = (
            sa.select(
                messages.c.id,
                messages.c.campaign,
                messages.c.message_id,
                messages.c.recipient,
                messages.c.sent_at,
            )
            .where(where)
            .limit(2)
        )
        with self.store.connect() as conn:
            rows = conn.execute(q).all()
        return _copy(rows[0]) if len(rows) == 1 else None

    def by_id(self, message: int) -> SentCopy | None:
        return self._one(messages.c.id == message)

    def by_message_id(self, message_id: str) -> SentCopy | None:
        return self._one(messages.c.message_id == message_id) if message_id else None

    def by_envelope_id(self, envid: str) -> SentCopy | None:
        found = self.by_message_id(f"<{envid}>")
        if found is None and "@" not in envid and envid:
            like = envid.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            found = self._one(messages.c.message_id.like(f"<{like}@%", escape="\\"))
        return found

    def sent_to(self, address: str, since: float) -> list[SentCopy]:
        q = sa.select(
            messages.c.id,
            messages.c.campaign,
            messages.c.message_id,
            messages.c.recipient,
            messages.c.sent_at,
        ).where(
            messages.c.recipient == address.lower(),
            messages.c.status == "sent",
            messages.c.sent_at >= since,
        )
        with self.store.connect() as conn:
            return [_copy(r) for r in conn.execute(q)]


def _copy(r: Any) -> SentCopy:
    return SentCopy(int(r.id), int(r.campaign), r.message_id or "", r.recipient, r.sent_at)

