"""The judge: keeps a verdict on every hit, re-judging only what new events can change.

It reads the event stream behind a cursor, never the hot path: a hit is
answered as soon as it is committed, and judged a moment later. The stream is
read in commit order (``store.stream``), so an event whose id is below one
already judged, but that committed later, is judged too, once.

Each pass reads up to ``batch`` events and judges each copy they touch once,
from what it keeps of the copy (``store.copies``: the evidence, the first
human open, the verdict counts its engagement rests on) and the copy's hits
near the new ones: ``core.verdicts.reach`` says which hits a new hit can
change (``rejudge_span``) and which ones their verdicts rest on
(``context_span``). A copy is judged whole instead when it is small
(``WHOLE_COPY`` hits: cheaper than the windows), new to the judge, or when
evidence reaches every hit (a reply, a read receipt, a link count change, a
delivery report, a new first human open: one bounded re-judge per such event).

A hammered copy costs a bounded amount per pass: at most ``COPY_CAP`` of its
new hits are judged per pass (the rest wait, the stream moves on, so other
copies are judged meanwhile), and at most ``WINDOW`` hits are read on each
side of them. When more than ``WINDOW`` hits lie within reach (a flood), the
new hits and the ``WINDOW // 2`` nearest on each side are judged against the
``WINDOW`` hits read and earlier ones keep their verdicts: in a flood run of
over ``signals.RUN_BOUND`` hits the words no longer change, so this is exact
for one client's flood; it is the one place the judge is not exactly
``judge`` over all hits.

Raw hits are never changed: a verdict that changes gets a new row, the old one
stays as history, and the rollups move by the same changes in the same
transaction. Several judges may run at once: each pass moves the cursor (and
a deferred copy's own position) with a compare-and-set in the same
transaction as its verdicts; a pass that lost the race is rolled back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

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
    reach,
)
from mailbeacon.core.verdicts.clients import parse_client
from mailbeacon.core.verdicts.engine import IN_TIME
from mailbeacon.core.verdicts.engine import _network as network_of  # the engine's /24, /48
from mailbeacon.core.verdicts.model import LINK_KINDS, OPEN, SELF
from mailbeacon.core.verdicts.reach import Span
from mailbeacon.store import copies, rollups, stream
from mailbeacon.store.copies import EVIDENCE_KINDS, HIT_KINDS, CopyState
from mailbeacon.store.schema import events, judge_cursor, messages, verdicts
from mailbeacon.store.sql import SqlStore

log = logging.getLogger("mailbeacon.judge")

CURSOR = "main"
JUDGE_EVERY = 0.5  # seconds between passes of a running judge
WHOLE_COPY = 1000  # a copy with no more hits than this is judged whole
COPY_CAP = 5000  # new hits of one copy judged per pass; the rest wait for the next passes
WINDOW = 2500  # hits read on each side of a copy's new hits, at most (> 2 x RUN_BOUND)
PAGES_PER_PASS = 20  # stream pages one pass reads past a hammered copy's waiting hits
DEFERRED_PER_PASS = 20  # hammered copies whose waiting hits one pass takes up
ANALYZE_ROWS = 20_000  # PostgreSQL: verdict rows written before statistics are refreshed ...
ANALYZE_EVERY = 60.0  # ... at most this often (seconds)
_PERSON_VERDICTS: Final = frozenset({"human", "proxy"})
_OPENING_KINDS: Final = frozenset({"open", "click", "download"})


@dataclass(frozen=True)
class Judge:
    sender: SenderProfile = field(default_factory=SenderProfile)
    ip_labels: IpLabels = field(default_factory=IpLabels)

    @classmethod
    def from_config(cls, config: Config) -> Judge:
        labels = load_ip_labels(config.ip_labels) if config.ip_labels else IpLabels()
        return cls(SenderProfile(tuple(config.own_networks), tuple(config.own_user_agents)),
                   labels)

    def of(self, hits: Sequence[Hit], evidence: Evidence) -> dict[int, Verdict]:
        return judge(hits, evidence, self.sender, self.ip_labels)


def catch_up(store: SqlStore, judge_: Judge, now: float, batch: int = 5000,
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
            done = _one_pass(store, judge_, now, batch)
        except OperationalError as exc:  # another writer held the lock: next time
            log.debug("judge pass deferred: %s", exc)
            return total
        if done is None:  # another judge moved the cursor meanwhile: read on from there
            continue
        read, waiting = done
        total += read
        passes = None if passes is None else passes - 1
        if read < batch and not waiting:
            break
    return total


def rejudge_all(store: SqlStore, judge_: Judge, now: float) -> int:
    """Judge every copy again from scratch (after changing own networks, labels, ...);
    returns the verdicts that changed. Works through the copies in chunks."""
    with store.engine.connect() as conn:
        ids = sorted(int(m) for m in conn.scalars(sa.select(events.c.message).distinct().where(
            events.c.kind.in_(HIT_KINDS), events.c.message != 0)))
    written = 0
    for chunk in copies.chunks(ids):
        plan = _Plan()
        with store.engine.connect() as conn:
            _judge_whole(conn, judge_, plan, list(chunk), now)
        with store.engine.begin() as conn:
            plan.states, plan.existing = copies.keep_behind(conn, plan.states)
            _write(conn, plan, now)
        written += len(plan.verdicts)
    with store.engine.connect() as conn:
        anonymous = list(conn.execute(sa.select(events).where(
            events.c.message == 0, events.c.kind.in_(HIT_KINDS))))
    for first in range(0, len(anonymous), 500):
        plan = _Plan()
        with store.engine.connect() as conn:
            _judge_anonymous(conn, judge_, plan, anonymous[first:first + 500])
        with store.engine.begin() as conn:
            _write(conn, plan, now)
        written += len(plan.verdicts)
    _maybe_analyze(store, written, force=True)
    return written


class _LostRace(Exception):
    """Another judge moved the cursor while this pass worked: its verdicts stand, not ours."""


@dataclass
class _Plan:
    """What a pass will write: new verdict rows, the rows they replace, copy states."""

    verdicts: list[tuple[int, int, Verdict, str]] = field(default_factory=list)  # + reasons
    stale: list[int] = field(default_factory=list)  # verdict row ids no longer current
    changes: list[rollups.HitChange] = field(default_factory=list)
    states: list[CopyState] = field(default_factory=list)
    existing: set[int] = field(default_factory=set)  # copies whose state row exists
    expect_behind: dict[int, stream.Cursor | None] = field(default_factory=dict)
    engagement: dict[int, str | None] = field(default_factory=dict)  # only where it changed


@dataclass
class _Touched:
    """One copy's events in this pass, and where its waiting hits start afterwards."""

    rows: list[Any] = field(default_factory=list)
    deferred: bool = False  # it had waiting hits when the pass began
    behind: stream.Cursor | None = None  # after this pass


def _one_pass(store: SqlStore, judge_: Judge, now: float,
              batch: int) -> tuple[int, bool] | None:
    """One pass: (events read from the stream, whether hits are left waiting), or None
    when another judge got there first."""
    with store.engine.connect() as conn:  # read phase: no write lock held
        saved = _saved_cursor(conn)
        start = stream.resolve(conn, saved or stream.START)
        waiting = copies.deferred(conn, DEFERRED_PER_PASS)
        rows, to, read = _read_pages(conn, start, batch, {s.message for s in waiting})
        if not read and not waiting:
            return 0, False
        touched = _touch(conn, rows, waiting, to)
        plan = _plan(conn, judge_, touched, now, start, {s.message for s in waiting})
        _judge_anonymous(conn, judge_, plan,
                         [r for r in rows if not r.message and r.kind in HIT_KINDS])
    try:
        with store.engine.begin() as conn:  # write phase: short
            if read:
                _move_cursor(conn, saved, to)
            _write(conn, plan, now)
    except (_LostRace, IntegrityError):  # IntegrityError: two first passes made the cursor
        return None
    _maybe_analyze(store, len(plan.verdicts))
    more = len(waiting) == DEFERRED_PER_PASS  # more copies may be waiting than it took
    return read, more or any(t.behind is not None for t in touched.values())


def _read_pages(conn: Connection, start: stream.Cursor, batch: int,
                waiting: set[int]) -> tuple[list[Any], stream.Cursor, int]:
    """The stream past ``start``: the rows this pass judges, the cursor past what it read,
    and how many events it read.

    It reads ``batch`` events, and more pages while most of them belong to hammered
    copies (over a quarter of a page, or already waiting): a copy's events past its
    first COPY_CAP hits wait for later passes, so they are read here only as ids, and
    the rest of the stream is judged without waiting behind them.
    """
    narrow: list[Any] = []
    per_copy: dict[int, int] = {}
    position = start
    for _ in range(PAGES_PER_PASS):
        page = list(conn.execute(stream.after(
            sa.select(events.c.id, events.c.tx, events.c.message, events.c.kind),
            position, conn.dialect.name, batch)))
        narrow.extend(page)
        for r in page:
            per_copy[r.message] = per_copy.get(r.message, 0) + 1
        if len(page) < batch:
            break
        position = stream.of(page[-1])
        others = sum(n for m, n in per_copy.items()
                     if m not in waiting and (n <= batch // 4 or not m))
        if others >= batch // 2:
            break
    if not narrow:
        return [], start, 0
    wanted, hits = [], dict[int, int]()
    for r in narrow:
        if r.kind not in HIT_KINDS + EVIDENCE_KINDS or r.message in waiting:
            continue
        if r.message:  # one hit past COPY_CAP is kept: it tells ``_cap`` to defer the rest
            if hits.get(r.message, 0) > COPY_CAP:
                continue
            hits[r.message] = hits.get(r.message, 0) + (r.kind in HIT_KINDS)
        wanted.append(r.id)
    full: dict[int, Any] = {}
    for chunk in copies.chunks(wanted):
        full.update((r.id, r) for r in conn.execute(sa.select(events)
                                                     .where(events.c.id.in_(chunk))))
    return [full[i] for i in wanted], stream.of(narrow[-1]), len(narrow)


def _touch(conn: Connection, rows: list[Any], waiting: list[CopyState],
           to: stream.Cursor) -> dict[int, _Touched]:
    """The events of each copy this pass judges, at most COPY_CAP hits per copy."""
    touched: dict[int, _Touched] = {}
    held = {s.message for s in waiting}
    for r in rows:
        if r.message and r.kind in HIT_KINDS + EVIDENCE_KINDS and r.message not in held:
            touched.setdefault(r.message, _Touched()).rows.append(r)
    for t in touched.values():
        _cap(t)
    for s in waiting:  # its events in the stream so far lie past where it waits
        behind = s.behind
        assert behind is not None
        backlog = copies.backlog(conn, s.message, behind, to, COPY_CAP)
        t = touched[s.message] = _Touched(backlog, deferred=True)
        if len(backlog) == COPY_CAP:  # perhaps more than it could read
            t.behind = stream.of(backlog[-1])
    return touched


def _cap(t: _Touched) -> None:
    hits = 0
    for i, r in enumerate(t.rows):
        hits += r.kind in HIT_KINDS
        if hits > COPY_CAP:
            t.behind, t.rows = stream.of(t.rows[i - 1]), t.rows[:i]
            return


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


# -- planning a pass -------------------------------------------------------------------


def _plan(conn: Connection, judge_: Judge, touched: dict[int, _Touched], now: float,
          start: stream.Cursor, waiting: set[int]) -> _Plan:
    plan = _Plan()
    ids = sorted(touched)
    states = copies.load(conn, ids)
    plan.existing = set(states)
    rows_of = copies.messages_rows(conn, ids)
    whole: list[int] = []
    at_hand: dict[int, list[Any]] = {}  # new copies whose every event is in this pass
    fresh = [m for m in ids if m not in states]
    counts = copies.event_counts(conn, fresh) if fresh else {}
    legacy = copies.seen_before(conn, [m for m in fresh if counts[m] > WHOLE_COPY], start)
    for m in ids:
        t = touched[m]
        if m in waiting or t.behind is not None:
            plan.expect_behind[m] = states[m].behind if m in states else None
        state = states.get(m)
        if state is None:
            if counts[m] <= WHOLE_COPY or m in legacy:
                whole.append(m)
                if counts[m] == len(t.rows):
                    at_hand[m] = t.rows
                continue
            state = _fresh(m, t.rows)
        elif state.hits + len(t.rows) <= WHOLE_COPY:
            whole.append(m)
            continue
        if not _judge_window(conn, judge_, plan, state, rows_of.get(m), t.rows,
                             fresh=m not in states):
            whole.append(m)
    _judge_whole(conn, judge_, plan, whole, now, rows_of, at_hand)
    plan.states = [_behind(s, touched[s.message].behind) for s in plan.states]
    return plan


def _behind(state: CopyState, behind: stream.Cursor | None) -> CopyState:
    """The state with where its waiting hits start after this pass (None: none wait)."""
    if behind is None:
        return state if state.behind_id is None else replace(state, behind_tx=None,
                                                             behind_id=None)
    return replace(state, behind_tx=behind.tx, behind_id=behind.id)


def _fresh(message: int, rows: list[Any]) -> CopyState:
    """The state of a copy the judge has not seen before (its messages row fills it in)."""
    campaign = int(rows[0].campaign) if rows else 0
    return CopyState(message=message, campaign=campaign, known=False, sent_at=0.0,
                     link_count=0)


def _judge_whole(conn: Connection, judge_: Judge, plan: _Plan, ids: list[int], now: float,
                 rows_of: dict[int, Any] | None = None,
                 at_hand: dict[int, list[Any]] | None = None) -> None:
    """Judge each copy on all its hits and evidence (what the judge always did), and make
    its state from scratch. ``at_hand``: new copies whose every event the pass has read
    (they have no verdicts yet)."""
    if not ids:
        return
    at_hand = at_hand or {}
    rows_of = copies.messages_rows(conn, ids) if rows_of is None else rows_of
    every = copies.all_events(conn, [m for m in ids if m not in at_hand])
    current = copies.current_verdicts(conn, [e.id for m in every for e in every[m]
                                             if e.kind in HIT_KINDS])
    every.update(at_hand)
    for m in ids:
        row, copy_events = rows_of.get(m), every[m]
        hit_rows = {e.id: e for e in copy_events if e.kind in HIT_KINDS}
        hits = [_hit(e) for e in hit_rows.values()]
        evidence = _evidence(row, copy_events, hits, now)
        found = judge_.of(hits, evidence)
        _compare(plan, m, found, current, hit_rows)
        campaign = int(copy_events[0].campaign) if copy_events else 0
        person, other = _counts(hits, found)
        state = CopyState(message=m, campaign=campaign, known=row is not None,
                          sent_at=evidence.sent_at, link_count=evidence.link_count,
                          delivered_at=evidence.delivered_at, replied_at=evidence.replied_at,
                          read_at=evidence.read_receipt_at, hits=len(hits),
                          person_hits=person, other_hits=other,
                          **_first_fields(_first_human_open(hits, found)))
        _settle_engagement(plan, state, row)


def _judge_window(conn: Connection, judge_: Judge, plan: _Plan, state: CopyState,
                  row: Any, rows: list[Any], fresh: bool) -> bool:
    """Judge a copy's new hits and what they can change, reading only the hits within
    reach; False when the copy must be judged whole (evidence or a first human open
    that reaches every hit)."""
    new_state = _with_send(state.with_evidence_of(
        [r for r in rows if r.kind in EVIDENCE_KINDS]), row, rows)
    if not fresh and reach.evidence_span(state.evidence, new_state.evidence, ()) is not None:
        return False  # it reaches hits of any time: judged whole, once
    new_rows = sorted((r for r in rows if r.kind in HIT_KINDS), key=lambda r: (r.at, r.id))
    if not new_rows:
        _settle_engagement(plan, new_state, row)
        return True
    window = _read_window(conn, state.message, new_rows)
    if window is None:
        return False
    known_rows, known, rejudged = window
    context = list(known.values())
    if state.first_open is not None and state.first_open not in known:
        first_row = copies.event_row(conn, state.first_open)
        if first_row is not None:  # the flag of later opens rests on it
            context.append(_hit(first_row))
    found = judge_.of(context, new_state.evidence)
    relabelled = {hid: found[hid] for hid in rejudged}
    what, first = _next_first(state, [known[h] for h in rejudged], relabelled)
    if what == "whole":
        return False
    current = copies.current_verdicts(conn, rejudged)
    hit_rows = {hid: known_rows[hid] for hid in rejudged}
    person, other, added = state.person_hits, state.other_hits, 0
    for hid, v in relabelled.items():
        old = current.get(hid)
        hit = known[hid]
        if old is None:
            added += 1
        else:
            person -= _is_person(hit.kind, old.verdict)
            other -= old.verdict != SELF
        person += _is_person(hit.kind, v.verdict)
        other += v.verdict != SELF
    _compare(plan, state.message, relabelled, current, hit_rows)
    new_state = replace(new_state, hits=state.hits + added, person_hits=person,
                        other_hits=other)
    if what == "set":
        new_state = _with_first(new_state, first)
    _settle_engagement(plan, new_state, row)
    return True


def _read_window(conn: Connection, message: int, new_rows: list[Any],
                 ) -> tuple[dict[int, Any], dict[int, Hit], list[int]] | None:
    """The hits near the new ones (event rows and hits by id: what their verdicts rest on)
    and the ids whose verdicts they can change."""
    new_hits = [_hit(r) for r in new_rows]
    lo, hi = new_hits[0].at, new_hits[-1].at
    reach_out = 4 * reach.COMPANION_REACH
    first_new = min(stream.of(r) for r in new_rows)
    # only hits that came before the new ones in the stream (the new ones are at hand):
    # a hit later in the stream re-judges what it changes when its turn comes, so the
    # verdicts are those of everything up to the stream's position
    middle = copies.hits_between(conn, message, lo, hi, WINDOW, before=first_new)
    crowded = len(middle) == WINDOW
    for _ in range(6):
        left = copies.hits_between(conn, message, lo - reach_out, lo, WINDOW, open_end=True,
                                   newest_first=True, before=first_new)
        right = copies.hits_between(conn, message, hi, hi + reach_out, WINDOW, open_start=True,
                                    before=first_new)
        left_cut, right_cut = len(left) == WINDOW or crowded, len(right) == WINDOW or crowded
        edge = Span(float(left[-1].at) if left and left_cut else lo - reach_out,
                    float(right[-1].at) if right and right_cut else hi + reach_out)
        rows = {r.id: r for r in [*left, *middle, *right, *new_rows]}
        ordered = sorted(map(_hit, rows.values()), key=IN_TIME)
        hits = {h.id: h for h in ordered}
        links = [h.at for h in ordered if h.kind in LINK_KINDS]
        span = reach.rejudge_span(new_hits[0], links)
        for h in new_hits[1:]:
            span = span.hull(reach.rejudge_span(h, links))
        context = reach.context_span(span)
        short_left = context.start < edge.start and not left_cut
        short_right = context.end > edge.end and not right_cut
        if not (short_left or short_right):
            flood_left = left_cut and context.start <= edge.start
            flood_right = right_cut and context.end >= edge.end
            first = WINDOW // 2 if flood_left else 0
            last = len(ordered) - (WINDOW // 2 if flood_right else 0)
            inner = {h.id for h in ordered[first:last] if h.at in span}
            if not (flood_left or flood_right):
                hits = {h.id: h for h in ordered if h.at in context}
            rejudged = sorted(inner | {h.id for h in new_hits})
            return rows, hits, rejudged
        reach_out *= 8
    return None  # a chain of link hits longer than every window read: judge it whole


def _next_first(state: CopyState, rejudged: list[Hit],
                relabelled: dict[int, Verdict]) -> tuple[str, Hit | None]:
    """What becomes of the copy's first human open: ("keep", None), ("set", the new one
    or None), or ("whole", None) when it moved and later opens' "opened elsewhere" flags,
    outside what was re-judged, rest on it."""
    human = [h for h in rejudged if h.kind == OPEN and relabelled[h.id].verdict == "human"]
    candidate = min(human, key=IN_TIME, default=None)
    if state.first_open is None:  # no human open outside what was re-judged
        return "set", candidate
    if state.first_open not in relabelled:  # it stays human, so it stays first unless ...
        was = (float(state.first_open_at or 0.0), state.first_open)
        moved = candidate is not None and (candidate.at, candidate.id) < was
        return ("whole", None) if moved else ("keep", None)
    if candidate is not None and candidate.id == state.first_open:
        return "keep", None
    return "whole", None


def _with_first(state: CopyState, first: Hit | None) -> CopyState:
    return replace(state, **_first_fields(first))


def _first_fields(first: Hit | None) -> dict[str, Any]:
    """The state's fields for the copy's first human open (kept, and its client family
    and network: what "opened elsewhere" compares later opens with)."""
    if first is None:
        return {"first_open": None, "first_open_at": None, "first_family": None,
                "first_network": None}
    network = network_of(first.ip)
    return {"first_open": first.id, "first_open_at": first.at,
            "first_family": parse_client(first.user_agent).family,
            "first_network": None if network is None else str(network)}


def _with_send(state: CopyState, row: Any, rows: list[Any]) -> CopyState:
    """The send time and link count: from the messages row, or the copy's first hit."""
    if row is not None:
        return replace(state, known=True, sent_at=float(row.sent_at or row.created_at),
                       link_count=copies.link_count(row))
    times = [float(r.at) for r in rows if r.kind in HIT_KINDS]
    if state.hits:
        times.append(state.sent_at)
    return replace(state, known=False, link_count=0,
                   sent_at=min(times, default=state.sent_at))


def _first_human_open(hits: list[Hit], found: dict[int, Verdict]) -> Hit | None:
    human = [h for h in hits if h.kind == OPEN and found[h.id].verdict == "human"]
    return min(human, key=IN_TIME, default=None)


def _counts(hits: list[Hit], found: dict[int, Verdict]) -> tuple[int, int]:
    person = sum(_is_person(h.kind, found[h.id].verdict) for h in hits)
    return person, sum(found[h.id].verdict != SELF for h in hits)


def _is_person(kind: str, verdict: str) -> bool:
    return kind in _OPENING_KINDS and verdict in _PERSON_VERDICTS


def _engagement(state: CopyState) -> str | None:
    """``engine.message_status`` from the counts the state keeps."""
    answered = state.replied_at is not None or state.read_at is not None
    if not state.known or (not state.hits and not answered):
        return None
    if answered or state.person_hits:
        return "opened by a person"
    return "only by machines" if state.other_hits else "not opened"


def _settle_engagement(plan: _Plan, state: CopyState, row: Any) -> None:
    state.engagement = _engagement(state)  # the state was made for this pass alone
    plan.states.append(state)
    if row is not None and row.engagement != state.engagement:
        plan.engagement[state.message] = state.engagement


def _judge_anonymous(conn: Connection, judge_: Judge, plan: _Plan, rows: list[Any]) -> None:
    """Hits tied to no copy: each judged alone, on what it says of itself."""
    current = copies.current_verdicts(conn, [r.id for r in rows])
    for r in rows:
        hit = _hit(r)
        evidence = Evidence(sent_at=hit.at - 86_400)  # no send time to measure against
        _compare(plan, 0, judge_.of([hit], evidence), current, {r.id: r})


def _evidence(row: Any, copy_events: list[Any], hits: list[Hit], now: float) -> Evidence:
    if row is None:  # a signed token for a copy this store does not know
        sent_at, links = min((h.at for h in hits), default=now), 0
    else:
        sent_at, links = row.sent_at or row.created_at, copies.link_count(row)
    return Evidence(
        sent_at=sent_at, link_count=links,
        delivered_at=_first(copy_events, "delivered"),
        replied_at=_first(copy_events, "replied"),
        read_receipt_at=_first(copy_events, "read", manual_only=True),
    )


def _compare(plan: _Plan, message: int, found: dict[int, Verdict], current: dict[int, Any],
             hit_rows: dict[int, Any]) -> None:
    """Queue the verdicts that differ from the current ones, and their rollup changes."""
    said: dict[int, tuple[Verdict, str]] = {}  # look-alike hits share one Verdict
    for event, v in found.items():
        old = current.get(event)
        known = said.get(id(v))
        if known is None:
            known = said[id(v)] = (v, json.dumps(list(v.reasons)))
        reasons = known[1]
        if old is not None and (old.verdict, round(old.confidence, 2), old.reasons) == (
                v.verdict, round(v.confidence, 2), reasons):
            continue
        if old is not None:
            plan.stale.append(old.id)
        plan.verdicts.append((event, message, v, reasons))
        r = hit_rows[event]
        plan.changes.append(rollups.HitChange(
            event=event, campaign=int(_campaign(r)), message=message, kind=r.kind,
            link=int(r.link or 0), at=float(r.at), ip=r.ip or "", user_agent=r.user_agent or "",
            old=None if old is None else old.verdict, new=v.verdict))


def _campaign(r: Any) -> int:
    return int(getattr(r, "campaign", 0) or 0)


def _write(conn: Connection, plan: _Plan, now: float) -> None:
    for chunk in copies.chunks(plan.stale):
        conn.execute(verdicts.update().where(verdicts.c.id.in_(chunk)).values(current=False))
    if plan.verdicts:  # the driver's executemany: no statement work per row
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            "INSERT INTO verdicts (event, message, verdict, confidence, reasons, judged_at, "
            f"current) VALUES ({', '.join([mark] * 7)})",
            [(event, message, v.verdict, v.confidence, reasons, now, True)
             for event, message, v, reasons in plan.verdicts])
    rollups.apply(conn, plan.changes)
    if plan.states and not copies.save(conn, plan.states, plan.existing, plan.expect_behind):
        raise _LostRace
    if plan.engagement:
        conn.execute(messages.update().where(messages.c.id == sa.bindparam("copy"))
                     .values(engagement=sa.bindparam("new_engagement")),
                     [{"copy": m, "new_engagement": st} for m, st in plan.engagement.items()])


_analyze_lock = threading.Lock()
_analyze = {"rows": 0, "at": 0.0}


def _maybe_analyze(store: SqlStore, written: int, force: bool = False) -> None:
    """PostgreSQL: refresh the planner's statistics after bulk verdict writes, at most
    once every ANALYZE_EVERY seconds, so the judge's look-ups keep using the indexes."""
    if store.dialect != "postgresql":
        return
    with _analyze_lock:
        _analyze["rows"] += written
        due = _analyze["rows"] >= ANALYZE_ROWS and (
            force or time.monotonic() - _analyze["at"] >= ANALYZE_EVERY)
        if not due:
            return
        _analyze["rows"], _analyze["at"] = 0, time.monotonic()
    with store.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE verdicts"))
        conn.execute(sa.text("ANALYZE copy_state"))
        conn.commit()


def _hit(e: Any) -> Hit:
    return Hit(e.id, e.kind, e.at, e.method or "GET", e.ip or None, e.user_agent or "",
               e.link or 0)


def _first(rows: list[Any], kind: str, manual_only: bool = False) -> float | None:
    times = [float(e.at) for e in rows
             if e.kind == kind and (not manual_only or copies.is_manual_receipt(e))]
    return min(times, default=None)
