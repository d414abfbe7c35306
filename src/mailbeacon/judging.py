"""The judge: keeps a verdict on every hit, re-judging a copy when anything new arrives.

It reads the event stream behind a cursor, never the hot path: a hit is
answered as soon as it is committed, and judged a moment later. The stream is
read in commit order (``store.stream``), so an event whose id is below one
already judged, but that committed later, is judged too, once. For every
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
import threading
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
from mailbeacon.store import stream
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


def catch_up(store: SqlStore, judge_: Judge, now: float, batch: int = 2000,
             stop: threading.Event | None = None, passes: int | None = None,
             settle: float = 0.0) -> int:
    """Judge everything that arrived since the last pass; returns the events read.

    Each pass reads without holding a write lock, judges in memory, then writes
    in one short transaction, so the tracking server's group commits are never
    kept waiting behind the judge for long. ``stop`` ends it between passes.
    ``settle``: wait up to that many seconds for transactions already running
    to end first, so that everything committed before the call is judged (a
    one-off judge such as ``report``; see ``store.stream.settle``).
    """
    if settle > 0:
        stream.settle(store, settle)
    total = 0
    while (stop is None or not stop.is_set()) and passes != 0:
        try:
            read = _one_pass(store, judge_, now, batch)
        except OperationalError as exc:  # another writer held the lock: next time
            log.debug("judge pass deferred: %s", exc)
            return total
        if read is None:  # another judge moved the cursor meanwhile: read on from there
            continue
        total += read
        passes = None if passes is None else passes - 1
        if read < batch:
            break
    return total


def rejudge_all(store: SqlStore, judge_: Judge, now: float) -> int:
    """Judge every copy again from scratch (after changing own networks, labels, ...)."""
    with store.engine.connect() as conn:
        ids = [int(m) for m in conn.scalars(sa.select(events.c.message).distinct().where(
            events.c.kind.in_(HIT_KINDS), events.c.message != 0))]
        anonymous = list(conn.execute(sa.select(events).where(
            events.c.message == 0, events.c.kind.in_(HIT_KINDS))))
        work = _read_copies(conn, ids)
        current = _current_verdicts(conn, [e.id for rows in work.values() for e in rows[1]]
                                    + [e.id for e in anonymous])
    plan = _plan(work, anonymous, judge_, now, current)
    with store.engine.begin() as conn:
        _write(conn, plan, now)
    return len(plan.verdicts)


class _LostRace(Exception):
    """Another judge moved the cursor while this pass worked: its verdicts stand, not ours."""


@dataclass
class _Plan:
    """What a pass will write: new verdict rows, the rows they replace, copy statuses."""

    verdicts: list[tuple[int, int, Verdict]] = field(default_factory=list)  # event, copy, v
    stale: list[int] = field(default_factory=list)  # verdict row ids no longer current
    engagement: dict[int, str | None] = field(default_factory=dict)


def _one_pass(store: SqlStore, judge_: Judge, now: float, batch: int) -> int | None:
    """One pass; the events it read, or None when another judge got there first.

    It reads the stream in commit order (``store.stream``), so an event that
    commits after a higher id is still judged; a transaction left open on
    PostgreSQL holds the judge back until it ends (see ``store.stream``).
    """
    with store.engine.connect() as conn:  # read phase: no write lock held
        saved = _saved_cursor(conn)
        rows = stream.page(conn, saved or stream.START, batch)
        if not rows:
            return 0
        touched = sorted({r.message for r in rows
                          if r.message and r.kind in HIT_KINDS + EVIDENCE_KINDS})
        work = _read_copies(conn, touched)
        anonymous = [r for r in rows if not r.message and r.kind in HIT_KINDS]
        current = _current_verdicts(conn, [e.id for _, es in work.values() for e in es]
                                    + [e.id for e in anonymous])
    plan = _plan(work, anonymous, judge_, now, current)
    try:
        with store.engine.begin() as conn:  # write phase: short
            _move_cursor(conn, saved, stream.of(rows[-1]))
            _write(conn, plan, now)
    except (_LostRace, IntegrityError):  # IntegrityError: two first passes made the cursor
        return None
    return len(rows)


def _saved_cursor(conn: Connection) -> stream.Cursor | None:
    row = conn.execute(sa.select(judge_cursor.c.last_tx, judge_cursor.c.last_event)
                       .where(judge_cursor.c.name == CURSOR)).first()
    return None if row is None else stream.Cursor(int(row.last_tx), int(row.last_event))


def _move_cursor(conn: Connection, saved: stream.Cursor | None, to: stream.Cursor) -> None:
    """Compare-and-set from the cursor this pass started at (as stored: a cursor saved
    before ``last_tx`` existed is moved from its plain id)."""
    if saved is None:
        conn.execute(judge_cursor.insert().values(name=CURSOR, last_tx=to.tx, last_event=to.id))
        return
    moved = conn.execute(judge_cursor.update().where(
        judge_cursor.c.name == CURSOR, judge_cursor.c.last_tx == saved.tx,
        judge_cursor.c.last_event == saved.id,
    ).values(last_tx=to.tx, last_event=to.id))
    if moved.rowcount != 1:
        raise _LostRace


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _read_copies(conn: Connection, ids: list[int]) -> dict[int, tuple[Any, list[Any]]]:
    """For each copy: its messages row (or None) and all its events."""
    found: dict[int, tuple[Any, list[Any]]] = {m: (None, []) for m in ids}
    for chunk in _chunks(ids):
        for row in conn.execute(sa.select(messages.c.id, messages.c.sent_at,
                                          messages.c.created_at, messages.c.links)
                                .where(messages.c.id.in_(chunk))):
            found[row.id] = (row, found[row.id][1])
        for e in conn.execute(sa.select(events).where(events.c.message.in_(chunk))
                              .order_by(events.c.id)):
            found[e.message][1].append(e)
    return found


def _current_verdicts(conn: Connection, event_ids: list[int]) -> dict[int, Any]:
    current: dict[int, Any] = {}
    for chunk in _chunks(sorted(set(event_ids))):
        for r in conn.execute(sa.select(verdicts).where(
                verdicts.c.event.in_(chunk), verdicts.c.current.is_(True))):
            current[r.event] = r
    return current


def _plan(work: dict[int, tuple[Any, list[Any]]], anonymous: list[Any], judge_: Judge,
          now: float, current: dict[int, Any]) -> _Plan:
    plan = _Plan()
    for message, (row, copy_events) in work.items():
        hits = [_hit(e) for e in copy_events if e.kind in HIT_KINDS]
        evidence = _evidence(row, copy_events, hits, now)
        found = judge(hits, evidence, judge_.sender, judge_.ip_labels)
        _compare(plan, message, found, current)
        if row is not None:
            answered = evidence.replied_at or evidence.read_receipt_at
            plan.engagement[message] = (message_status(hits, found, evidence)
                                        if hits or answered else None)
    for r in anonymous:  # tied to no copy: each judged alone, on what it says of itself
        hit = _hit(r)
        evidence = Evidence(sent_at=hit.at - 86_400)  # no send time to measure against
        _compare(plan, 0, judge([hit], evidence, judge_.sender, judge_.ip_labels), current)
    return plan


def _evidence(row: Any, copy_events: list[Any], hits: list[Hit], now: float) -> Evidence:
    if row is None:  # a signed token for a copy this store does not know
        sent_at, links = min((h.at for h in hits), default=now), 0
    else:
        sent_at, links = row.sent_at or row.created_at, len(json.loads(row.links or "[]"))
    return Evidence(
        sent_at=sent_at, link_count=links,
        delivered_at=_first(copy_events, "delivered"),
        replied_at=_first(copy_events, "replied"),
        read_receipt_at=_first(copy_events, "read", manual_only=True),
    )


def _compare(plan: _Plan, message: int, found: dict[int, Verdict],
             current: dict[int, Any]) -> None:
    for event, v in found.items():
        old = current.get(event)
        if old is not None and (old.verdict, round(old.confidence, 2), old.reasons) == (
                v.verdict, round(v.confidence, 2), json.dumps(list(v.reasons))):
            continue
        if old is not None:
            plan.stale.append(old.id)
        plan.verdicts.append((event, message, v))


def _write(conn: Connection, plan: _Plan, now: float) -> None:
    for chunk in _chunks(plan.stale):
        conn.execute(verdicts.update().where(verdicts.c.id.in_(chunk)).values(current=False))
    if plan.verdicts:
        conn.execute(verdicts.insert(), [
            {"event": event, "message": message, "verdict": v.verdict,
             "confidence": v.confidence, "reasons": json.dumps(list(v.reasons)),
             "judged_at": now, "current": True} for event, message, v in plan.verdicts])
    if plan.engagement:
        conn.execute(messages.update().where(messages.c.id == sa.bindparam("copy"))
                     .values(engagement=sa.bindparam("new_engagement")),
                     [{"copy": m, "new_engagement": st} for m, st in plan.engagement.items()])


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
