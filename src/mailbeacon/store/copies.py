"""The judge's per-copy state and the reads a pass makes of one copy (``copy_state``).

A pass of the judge reads, for each copy the stream touched, this state and
the copy's hits near the new ones (``hits_between``, on the index
``events (message, at)``), never the copy's whole history, except when the
copy is small or new evidence reaches every hit. A hammered copy whose new hits
outnumber what one pass takes keeps where its unjudged hits start
(``behind``): later passes read them in stream order on ``events (message,
tx, id)``, so the rest of the stream is not held up behind it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbeacon.core.verdicts import Evidence
from mailbeacon.store import stream
from mailbeacon.store.schema import copy_state, events, messages, verdicts

HIT_KINDS = ("open", "click", "download", "honeypot")
EVIDENCE_KINDS = ("delivered", "replied", "read")
_CHUNK = 500
# "current = true": PostgreSQL folds it to "current" and so uses the partial index on
# current verdicts; "current IS true" it does not
CURRENT = verdicts.c.current == sa.true()
_ROW = (events.c.id, events.c.tx, events.c.at, events.c.kind, events.c.campaign,
        events.c.message, events.c.link, events.c.method, events.c.ip, events.c.user_agent,
        events.c.detail)


@dataclass(slots=True)
class CopyState:
    """What the judge keeps of one copy between passes (one ``copy_state`` row); a pass
    makes new ones with ``replace`` and sets only ``engagement`` in place, last."""

    message: int
    campaign: int
    known: bool
    sent_at: float
    link_count: int
    delivered_at: float | None = None
    replied_at: float | None = None
    read_at: float | None = None
    first_open: int | None = None
    first_open_at: float | None = None
    first_family: str | None = None
    first_network: str | None = None
    hits: int = 0
    person_hits: int = 0
    other_hits: int = 0
    engagement: str | None = None
    behind_tx: int | None = None
    behind_id: int | None = None

    @property
    def evidence(self) -> Evidence:
        return Evidence(sent_at=self.sent_at, delivered_at=self.delivered_at,
                        link_count=self.link_count, replied_at=self.replied_at,
                        read_receipt_at=self.read_at)

    @property
    def behind(self) -> stream.Cursor | None:
        if self.behind_id is None:
            return None
        return stream.Cursor(int(self.behind_tx or 0), int(self.behind_id))

    def with_evidence_of(self, rows: Iterable[Any]) -> CopyState:
        """The state once evidence events ``rows`` are known (the earliest of each counts)."""
        found = self
        for r in rows:
            at = float(r.at)
            if r.kind == "delivered":
                found = replace(found, delivered_at=_earliest(found.delivered_at, at))
            elif r.kind == "replied":
                found = replace(found, replied_at=_earliest(found.replied_at, at))
            elif r.kind == "read" and is_manual_receipt(r):
                found = replace(found, read_at=_earliest(found.read_at, at))
        return found


def is_manual_receipt(row: Any) -> bool:
    """A read receipt the reader sent by hand (an automatic one proves nothing)."""
    detail = json.loads(row.detail) if row.detail else {}
    return bool(detail.get("action_mode", "manual-action") == "manual-action")


def _earliest(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def chunks(ids: Sequence[int], size: int = _CHUNK) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def load(conn: Connection, ids: Sequence[int]) -> dict[int, CopyState]:
    found: dict[int, CopyState] = {}
    for chunk in chunks(sorted(ids)):
        for r in conn.execute(sa.select(copy_state).where(copy_state.c.message.in_(chunk))):
            found[r.message] = _state(r)
    return found


def deferred(conn: Connection, limit: int) -> list[CopyState]:
    """Copies with hits left for a later pass (a hammered copy), oldest deferral first."""
    rows = conn.execute(sa.select(copy_state).where(copy_state.c.behind_id.is_not(None))
                        .order_by(copy_state.c.behind_id).limit(limit))
    return [_state(r) for r in rows]


def _state(r: Any) -> CopyState:
    return CopyState(**{f.name: getattr(r, f.name) for f in fields(CopyState)})


def messages_rows(conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
    """The messages row (send time, links, engagement) of each copy that has one."""
    found: dict[int, Any] = {}
    for chunk in chunks(sorted(ids)):
        for r in conn.execute(sa.select(messages.c.id, messages.c.sent_at, messages.c.created_at,
                                        messages.c.links, messages.c.engagement)
                              .where(messages.c.id.in_(chunk))):
            found[r.id] = r
    return found


def link_count(row: Any) -> int:
    return len(json.loads(row.links or "[]"))


def seen_before(conn: Connection, ids: Sequence[int], cursor: stream.Cursor) -> set[int]:
    """Copies without state that have events at or before ``cursor``: judged before the
    judge kept state (a store upgraded to 0007), so they are judged whole once."""
    found: set[int] = set()
    at_or_before = (sa.tuple_(events.c.tx, events.c.id)
                    <= sa.tuple_(sa.literal(cursor.tx), sa.literal(cursor.id)))
    for chunk in chunks(sorted(ids)):
        found.update(int(m) for m in conn.scalars(
            sa.select(events.c.message).distinct()
            .where(events.c.message.in_(chunk), at_or_before,
                   events.c.kind.in_(HIT_KINDS + EVIDENCE_KINDS))))
    return found


def event_counts(conn: Connection, ids: Sequence[int]) -> dict[int, int]:
    """How many hits and evidence events each copy has in the store (for copies without
    state: how to judge them, and whether the pass has read them all)."""
    found = dict.fromkeys(ids, 0)
    for chunk in chunks(sorted(ids)):
        for m, n in conn.execute(sa.select(events.c.message, sa.func.count()).where(
                events.c.message.in_(chunk), events.c.kind.in_(HIT_KINDS + EVIDENCE_KINDS))
                .group_by(events.c.message)):
            found[int(m)] = int(n)
    return found


def all_events(conn: Connection, ids: Sequence[int]) -> dict[int, list[Any]]:
    """Every hit and evidence event of each copy, by copy, in id order."""
    found: dict[int, list[Any]] = {m: [] for m in ids}
    for chunk in chunks(sorted(ids)):
        for r in conn.execute(sa.select(*_ROW).where(
                events.c.message.in_(chunk), events.c.kind.in_(HIT_KINDS + EVIDENCE_KINDS))
                .order_by(events.c.id)):
            found[r.message].append(r)
    return found


def hits_between(conn: Connection, message: int, start: float, end: float, limit: int, *,
                 open_start: bool = False, open_end: bool = False, newest_first: bool = False,
                 before: stream.Cursor | None = None) -> list[Any]:
    """Up to ``limit`` hits of a copy timed from ``start`` to ``end`` (either end left out
    when open), nearest ``end`` first when ``newest_first``; ``before``: only hits that
    came earlier in the stream than that position."""
    q = sa.select(*_ROW).where(events.c.message == message, events.c.kind.in_(HIT_KINDS),
                               events.c.at > start if open_start else events.c.at >= start,
                               events.c.at < end if open_end else events.c.at <= end)
    if before is not None:
        q = q.where(sa.tuple_(events.c.tx, events.c.id)
                    < sa.tuple_(sa.literal(before.tx), sa.literal(before.id)))
    order = ((events.c.at.desc(), events.c.id.desc()) if newest_first
             else (events.c.at, events.c.id))
    return list(conn.execute(q.order_by(*order).limit(limit)))


def backlog(conn: Connection, message: int, after: stream.Cursor, upto: stream.Cursor,
            limit: int) -> list[Any]:
    """A deferred copy's events past ``after`` up to the stream cursor ``upto``, in order."""
    past = sa.tuple_(events.c.tx, events.c.id) > sa.tuple_(sa.literal(after.tx),
                                                          sa.literal(after.id))
    upto_ = sa.tuple_(events.c.tx, events.c.id) <= sa.tuple_(sa.literal(upto.tx),
                                                            sa.literal(upto.id))
    return list(conn.execute(sa.select(*_ROW).where(
        events.c.message == message, past, upto_,
        events.c.kind.in_(HIT_KINDS + EVIDENCE_KINDS))
        .order_by(events.c.tx, events.c.id).limit(limit)))


def event_row(conn: Connection, event: int) -> Any:
    return conn.execute(sa.select(*_ROW).where(events.c.id == event)).first()


def first_human_open(conn: Connection, message: int, leaving_out: Sequence[int]) -> Any:
    """The copy's earliest open whose current verdict is human, other than ``leaving_out``."""
    q = (sa.select(*_ROW).select_from(events.join(verdicts, sa.and_(
        verdicts.c.event == events.c.id, CURRENT)))
        .where(events.c.message == message, events.c.kind == "open",
               verdicts.c.verdict == "human")
        .order_by(events.c.at, events.c.id))
    skip = set(leaving_out)
    for r in conn.execute(q.limit(len(skip) + 1)):
        if r.id not in skip:
            return r
    return None


def current_verdicts(conn: Connection, event_ids: Iterable[int]) -> dict[int, Any]:
    """The current verdict row of each event that has one (the partial index on current)."""
    found: dict[int, Any] = {}
    for chunk in chunks(sorted(set(event_ids))):
        for r in conn.execute(sa.select(verdicts.c.id, verdicts.c.event, verdicts.c.verdict,
                                        verdicts.c.confidence, verdicts.c.reasons)
                              .where(verdicts.c.event.in_(chunk), CURRENT)):
            found[r.event] = r
    return found


def save(conn: Connection, states: Sequence[CopyState], existing: set[int],
         expect_behind: dict[int, stream.Cursor | None]) -> bool:
    """Write states: insert the new ones, update the rest; False when a deferred copy's
    ``behind`` moved since it was read (another judge took that backlog)."""
    new = [{"message": s.message, **_values(s)} for s in states if s.message not in existing]
    if new:
        conn.execute(copy_state.insert(), new)
    plain = [s for s in states if s.message in existing and s.message not in expect_behind]
    if plain:
        conn.execute(copy_state.update().where(copy_state.c.message == sa.bindparam("m"))
                     .values({c: sa.bindparam(c) for c in _COLUMNS}),
                     [{"m": s.message, **_values(s)} for s in plain])
    for s in states:
        if s.message in existing and s.message in expect_behind:
            was = expect_behind[s.message]
            guard = (copy_state.c.behind_id.is_(None) if was is None else sa.and_(
                copy_state.c.behind_tx == was.tx, copy_state.c.behind_id == was.id))
            done = conn.execute(copy_state.update().where(copy_state.c.message == s.message, guard)
                                .values(**_values(s)))
            if done.rowcount != 1:
                return False
    return True


_COLUMNS = tuple(f.name for f in fields(CopyState) if f.name != "message")


def _values(s: CopyState) -> dict[str, Any]:
    return {c: getattr(s, c) for c in _COLUMNS}


def keep_behind(conn: Connection, states: Sequence[CopyState]) -> tuple[list[CopyState],
                                                                         set[int]]:
    """``states`` with the deferral stored now, and which of them have a row (for
    ``rejudge_all``, which moves no cursor)."""
    stored = {r.message: (r.behind_tx, r.behind_id) for chunk in chunks(
        [s.message for s in states]) for r in conn.execute(
        sa.select(copy_state.c.message, copy_state.c.behind_tx, copy_state.c.behind_id)
        .where(copy_state.c.message.in_(chunk)))}
    return ([replace(s, behind_tx=stored[s.message][0], behind_id=stored[s.message][1])
             if s.message in stored else s for s in states], set(stored))
