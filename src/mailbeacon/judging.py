"""The judge: keeps a verdict on every hit, re-judging a copy when anything new arrives.

It reads the event stream behind a cursor, never the hot path: a hit is
answered as soon as it is committed, and judged a moment later. For every
recipient copy touched by new events (a hit, a delivery report, a reply, a
read receipt) it runs the pure ``core.verdicts.judge`` over *all* that copy's
hits and evidence, so evidence that arrives later re-labels earlier hits. Raw
hits are never changed: a verdict that changes gets a new row, and the old one
stays as history.

Several judges (several tracking servers on one PostgreSQL, or ``mailbeacon
report`` beside a running server) may run at once: each pass moves the
cursor with a compare-and-set in the same transaction as its verdicts, and a
pass that lost the race is rolled back and does nothing.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from mailbeacon.config import Config
from mailbeacon.core.verdicts import (
    Evidence,
    Hit,
    IpLabels,
    SenderProfile,
    Verdict,
    judge,
    load_ip_labels,
    message_status,
)
from mailbeacon.store.schema import events, judge_cursor, messages, verdicts
from mailbeacon.store.sql import SqlStore

log = logging.getLogger("mailbeacon.judge")

HIT_KINDS = ("open", "click", "download", "honeypot")
EVIDENCE_KINDS = ("delivered", "replied", "read")
CURSOR = "main"
JUDGE_EVERY = 0.5  # seconds between passes of a running judge


@dataclass(frozen=True)
class Judge:
    sender: SenderProfile = field(default_factory=SenderProfile)
    ip_labels: IpLabels = field(default_factory=IpLabels)

    @classmethod
    def from_config(cls, config: Config) -> Judge:
        labels = load_ip_labels(config.ip_labels) if config.ip_labels else IpLabels()
        return cls(SenderProfile(tuple(config.own_networks), tuple(config.own_user_agents)),
                   labels)


def catch_up(store: SqlStore, judge_: Judge, now: float, batch: int = 5000) -> int:
    """Judge everything that arrived since the last pass; returns the events read."""
    total = 0
    while True:
        try:
            read = _one_pass(store, judge_, now, batch)
        except OperationalError as exc:  # another writer held the lock: next time
            log.debug("judge pass deferred: %s", exc)
            return total
        total += read
        if read < batch:
            return total


def rejudge_all(store: SqlStore, judge_: Judge, now: float) -> int:
    """Judge every copy again from scratch (after changing own networks, labels, ...)."""
    with store.engine.begin() as conn:
        ids = [int(m) for m in conn.scalars(sa.select(events.c.message).distinct().where(
            events.c.kind.in_(HIT_KINDS)))]
        anonymous = list(conn.execute(sa.select(events).where(
            events.c.message == 0, events.c.kind.in_(HIT_KINDS))))
        changed = sum(_judge_copy(conn, m, judge_, now) for m in ids if m)
        changed += _judge_anonymous(conn, anonymous, judge_, now)
    return changed


class _LostRace(Exception):
    """Another judge moved the cursor while this pass worked: roll this one back."""


def _one_pass(store: SqlStore, judge_: Judge, now: float, batch: int) -> int:
    try:
        return _pass_in_transaction(store, judge_, now, batch)
    except (_LostRace, IntegrityError):  # IntegrityError: two first passes made the cursor
        return 0


def _pass_in_transaction(store: SqlStore, judge_: Judge, now: float, batch: int) -> int:
    with store.engine.begin() as conn:
        seen = conn.scalar(sa.select(judge_cursor.c.last_event).where(
            judge_cursor.c.name == CURSOR))
        if seen is None:
            conn.execute(judge_cursor.insert().values(name=CURSOR, last_event=0))
            seen = 0
        rows = list(conn.execute(sa.select(events).where(events.c.id > seen)
                                 .order_by(events.c.id).limit(batch)))
        if not rows:
            return 0
        touched = {r.message for r in rows if r.message and r.kind in HIT_KINDS + EVIDENCE_KINDS}
        for message in sorted(touched):
            _judge_copy(conn, message, judge_, now)
        anonymous = [r for r in rows if not r.message and r.kind in HIT_KINDS]
        _judge_anonymous(conn, anonymous, judge_, now)
        moved = conn.execute(judge_cursor.update().where(
            judge_cursor.c.name == CURSOR, judge_cursor.c.last_event == seen,
        ).values(last_event=rows[-1].id))
        if moved.rowcount != 1:
            raise _LostRace
        return len(rows)


def _judge_copy(conn: Connection, message: int, judge_: Judge, now: float) -> int:
    row = conn.execute(sa.select(messages.c.sent_at, messages.c.created_at, messages.c.links)
                       .where(messages.c.id == message)).first()
    copy_events = list(conn.execute(sa.select(events).where(events.c.message == message)))
    hits = [_hit(e) for e in copy_events if e.kind in HIT_KINDS]
    if row is None:  # a signed token for a copy this store does not know
        sent_at, links = min((h.at for h in hits), default=now), 0
    else:
        sent_at, links = row.sent_at or row.created_at, len(json.loads(row.links or "[]"))
    evidence = Evidence(
        sent_at=sent_at, link_count=links,
        delivered_at=_first(copy_events, "delivered"),
        replied_at=_first(copy_events, "replied"),
        read_receipt_at=_first(copy_events, "read", manual_only=True),
    )
    found = judge(hits, evidence, judge_.sender, judge_.ip_labels)
    changed = _store(conn, message, found, now)
    if row is not None:
        conn.execute(messages.update().where(messages.c.id == message).values(
            engagement=message_status(hits, found, evidence) if hits or evidence.replied_at
            or evidence.read_receipt_at else None))
    return changed


def _judge_anonymous(conn: Connection, rows: Iterable[Any], judge_: Judge, now: float) -> int:
    """Hits tied to no copy: each judged alone, on what it says of itself."""
    changed = 0
    for r in rows:
        hit = _hit(r)
        evidence = Evidence(sent_at=hit.at - 86_400)  # no send time to measure against
        changed += _store(conn, 0, judge([hit], evidence, judge_.sender, judge_.ip_labels), now)
    return changed


def _hit(e: Any) -> Hit:
    return Hit(id=int(e.id), kind=e.kind, at=float(e.at), method=e.method or "GET",
               ip=e.ip or None, user_agent=e.user_agent or "", link=int(e.link or 0))


def _first(rows: list[Any], kind: str, manual_only: bool = False) -> float | None:
    times = []
    for e in rows:
        if e.kind != kind:
            continue
        if manual_only:
            detail = json.loads(e.detail) if e.detail else {}
            if detail.get("action_mode", "manual-action") != "manual-action":
                continue
        times.append(float(e.at))
    return min(times, default=None)


def _store(conn: Connection, message: int, found: dict[int, Verdict], now: float) -> int:
    if not found:
        return 0
    current: dict[int, Any] = defaultdict(lambda: None)
    for r in conn.execute(sa.select(verdicts).where(
            verdicts.c.event.in_(list(found)), verdicts.c.current.is_(True))):
        current[r.event] = r
    changed = []
    for event, v in found.items():
        old = current[event]
        reasons = json.dumps(list(v.reasons))
        if old is not None and (old.verdict, round(old.confidence, 2), old.reasons) == (
                v.verdict, round(v.confidence, 2), reasons):
            continue
        changed.append((event, old, v, reasons))
    if not changed:
        return 0
    stale = [old.id for _, old, _, _ in changed if old is not None]
    if stale:
        conn.execute(verdicts.update().where(verdicts.c.id.in_(stale)).values(current=False))
    conn.execute(verdicts.insert(), [
        {"event": event, "message": message, "verdict": v.verdict, "confidence": v.confidence,
         "reasons": reasons, "judged_at": now, "current": True}
        for event, _, v, reasons in changed])
    return len(changed)
