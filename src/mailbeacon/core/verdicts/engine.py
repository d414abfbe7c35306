"""Person or machine, for every hit of one recipient copy, with the reasons.

``judge`` is a pure function over *all* hits and the evidence of one copy.
Callers re-run it whenever a hit or a piece of evidence arrives and store the
result beside the raw hits, which are never changed; that is how a burst seen
at the fourth click re-labels the first three, and how a reply that arrives a
day later turns an "only by machines" copy into "opened by a person".

How signals combine: each verdict's score is ``1 - prod(1 - weight)`` over the
signals pointing to it; the highest score wins (ties go to the more machine-like
verdict), and the confidence is the winner's score lowered by the strongest
rival: ``win * (1 - rival * (1 - win))``, capped at 0.99 unless a signal is
certain (a hidden link).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Final, NamedTuple

from mailbeacon.core.verdicts import signals as sig
from mailbeacon.core.verdicts.clients import parse_client
from mailbeacon.core.verdicts.iplabels import IpLabels
from mailbeacon.core.verdicts.model import (
    CLICK,
    DOWNLOAD,
    ELSEWHERE,
    HUMAN,
    LINK_KINDS,
    NOT_OPENED,
    ONLY_MACHINES,
    OPEN,
    OPENED_BY_PERSON,
    PREFETCH,
    PROXY,
    SCANNER,
    SELF,
    UNKNOWN,
    Evidence,
    Hit,
    IPNetwork,
    SenderProfile,
    Verdict,
    parse_ip,
)  # fmt: skip
from mailbeacon.core.verdicts.signals import Signal

NO_LABELS: Final = IpLabels()
# ties go to the first: a wrongly doubted open costs less than a counted robot
_PRIORITY: Final = (SCANNER, PREFETCH, PROXY, SELF, HUMAN)
_STRONG_SCAN: Final = 0.85  # pattern signals this strong mark the scanning client
_MAX_CONFIDENCE: Final = 0.99
_ELSEWHERE_CONFIDENCE: Final = 0.8
_PERSON_VERDICTS: Final = frozenset({HUMAN, PROXY})  # proxy opens are human-likely
_OPENING_KINDS: Final = frozenset({OPEN, CLICK, DOWNLOAD})  # a click implies an open
IN_TIME: Final = attrgetter("at", "id")  # the order hits are judged in
_Look = tuple[str, str, str | None, str]  # kind, method, address, user agent


def judge(
    hits: Sequence[Hit],
    evidence: Evidence,
    sender: SenderProfile = SenderProfile(),  # noqa: B008 - frozen, so shared safely
    ip_labels: IpLabels = NO_LABELS,
) -> dict[int, Verdict]:
    """A verdict for every hit of one recipient copy, keyed by hit id.

    O(N log N) in the copy's hits. Hits with the same signals (kind, method,
    address, user agent, and the same time-dependent and pattern signals) are
    judged once as a group and share one Verdict object, so a copy hammered by
    one client costs a sort and a few dictionary look-ups per hit.
    """
    ordered = sorted(hits, key=IN_TIME)
    signals = _HitSignals(evidence, sender, ip_labels)
    base: dict[int, tuple[Signal, ...]] = {}
    others: list[Hit] = []  # the sender's own hits take no part in anything else
    for h in ordered:
        base[h.id], own = signals.of(h)
        if not own:
            others.append(h)
    extra = _pattern_signals(others, base, evidence, signals.strong)
    decisions = _Decisions()
    verdicts = {h.id: decisions.of(base[h.id], extra.get(h.id, ())) for h in ordered}
    flagged: dict[int, tuple[Verdict, Verdict]] = {}  # by id() of the shared verdict
    for hid in elsewhere(ordered, verdicts):
        v = verdicts[hid]
        if id(v) not in flagged:
            confidence = min(v.confidence, _ELSEWHERE_CONFIDENCE)
            flagged[id(v)] = (v, Verdict(v.verdict, confidence, (*v.reasons, ELSEWHERE)))
        verdicts[hid] = flagged[id(v)][1]
    return verdicts


class _Looks(NamedTuple):
    """What the signals of one look (kind, method, address, user agent) come to."""

    own: tuple[Signal, ...] | None  # the sender's signal, when it is the sender's device
    before: tuple[Signal, ...]  # the signals given before the timed ones ...
    after: tuple[Signal, ...]  # ... and after them
    quiet: tuple[Signal, ...]  # all of them, for a hit where no timed signal fires


class _HitSignals:
    """The per-hit signals of one copy, worked out once per look.

    Only three signals depend on the hit's time, and only near sending or
    delivery (``signals.no_timed_signal``); elsewhere hits that look alike get
    the very same tuple, which is what lets ``_Decisions`` judge them as one.
    """

    def __init__(self, evidence: Evidence, sender: SenderProfile, labels: IpLabels) -> None:
        self._evidence, self._sender, self._labels = evidence, sender, labels
        self._answered = sig.recipient_answered(evidence)
        self._looks: dict[_Look, _Looks] = {}
        self._timed: dict[tuple[object, ...], tuple[Signal, ...]] = {}
        self._strong: dict[int, tuple[tuple[Signal, ...], bool]] = {}

    def of(self, hit: Hit) -> tuple[tuple[Signal, ...], bool]:
        """The hit's own signals, in the order ``decide`` has always been given them,
        and whether the hit is the sender's."""
        look = (hit.kind, hit.method, hit.ip, hit.user_agent)
        known = self._looks.get(look)
        if known is None:
            known = self._looks[look] = self._work_out(hit)
        if known.own is not None:
            return known.own, True
        if sig.no_timed_signal(hit.at, self._evidence):
            return known.quiet, False
        ev = self._evidence
        timed = (
            sig.instant_after_send(hit, ev),
            sig.proxy_fetch_on_receipt(hit, ev),
            sig.clicked_soon_after_delivery(hit, ev),
        )
        return self._joined(look, known, _present(timed)), False

    def strong(self, signals: tuple[Signal, ...]) -> bool:
        """``_is_strong`` of a tuple ``of`` gave, worked out once per tuple."""
        known = self._strong.get(id(signals))
        if known is None:  # the entry keeps the tuple alive, so its id stays its own
            known = self._strong[id(signals)] = (signals, _is_strong(signals))
        return known[1]

    def _work_out(self, hit: Hit) -> _Looks:
        mine = sig.sender_device(hit, self._sender)
        before = _present(
            (
                sig.honeypot_link(hit),
                sig.apple_mpp_user_agent(hit),
                sig.gmail_image_proxy(hit),
                sig.yahoo_mail_proxy(hit),
                sig.office_existence_discovery(hit),
                sig.head_request(hit),
                sig.network_label(hit, self._labels),
            )
        )
        reader = sig.reader_software(hit)
        after = _present((reader, self._answered if reader is not None else None))
        return _Looks(None if mine is None else (mine,), before, after, before + after)

    def _joined(self, look: _Look, known: _Looks, timed: tuple[Signal, ...]) -> tuple[Signal, ...]:
        # a timed signal's reason names its delay, so (look, reasons) names the tuple
        key = (look, *(s.reason for s in timed))
        joined = self._timed.get(key)
        if joined is None:
            joined = self._timed[key] = known.before + timed + known.after
        return joined


class _Decisions:
    """``decide`` once per distinct set of signal objects, the verdict shared by all.

    Keys are the ids of the (shared) signal tuples and pattern signals; each
    entry keeps its objects alive, so an id cannot be reused while it is a key.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, ...], tuple[object, Verdict]] = {}

    def of(self, base: tuple[Signal, ...], extra: Sequence[Signal]) -> Verdict:
        key = (id(base), *map(id, extra))
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = ((base, extra), decide((*base, *extra)))
        return found[1]


def _pattern_signals(
    hits: list[Hit],
    base: dict[int, tuple[Signal, ...]],
    evidence: Evidence,
    strong: Callable[[tuple[Signal, ...]], bool],
) -> dict[int, list[Signal]]:
    """The pattern signals of each hit that has any, in the order they were always added."""
    links = [h for h in hits if h.kind in LINK_KINDS]
    tables = (
        sig.click_bursts(links),
        sig.every_link_clicked(links, evidence.link_count),
        sig.burst_after_delivery(links, evidence),
    )
    extra: dict[int, list[Signal]] = {}
    scanning = {h.id for h in hits if strong(base[h.id])}
    for table in tables:
        distinct = {id(s): s for s in table.values()}  # one signal per run: few of them
        strong_ones = {key for key, s in distinct.items() if _is_strong((s,))}
        for hid, signal in table.items():
            extra.setdefault(hid, []).append(signal)
            if id(signal) in strong_ones:
                scanning.add(hid)
    for hid, signal in sig.scan_companions(hits, scanning).items():
        extra.setdefault(hid, []).append(signal)
    return extra


def _is_strong(signals: Iterable[Signal]) -> bool:
    """A scanner signal strong enough to mark the client that scanned."""
    return any(s.verdict == SCANNER and s.weight >= _STRONG_SCAN for s in signals)


def _present(signals: Iterable[Signal | None]) -> tuple[Signal, ...]:
    return tuple(s for s in signals if s is not None)


def decide(signals: Iterable[Signal]) -> Verdict:
    """Combine the signals of one hit into its verdict (see the module docstring)."""
    listed = sorted(signals, key=lambda s: -s.weight)
    remaining: dict[str, float] = {}
    for s in listed:
        if s.verdict != UNKNOWN:
            remaining[s.verdict] = remaining.get(s.verdict, 1.0) * (1.0 - s.weight)
    scores = {v: 1.0 - left for v, left in remaining.items()}
    notes = tuple(s.reason for s in listed if s.verdict == UNKNOWN)
    if not scores or max(scores.values()) <= 0:
        return Verdict(UNKNOWN, 0.0, notes or ("nothing points either way",))
    winner = max(scores, key=lambda v: (scores[v], -_PRIORITY.index(v)))
    win = scores[winner]
    rival = max((score for v, score in scores.items() if v != winner), default=0.0)
    confidence = 1.0 if win >= 1.0 else min(_MAX_CONFIDENCE, win * (1 - rival * (1 - win)))
    reasons = tuple(s.reason for s in listed if s.verdict == winner)
    doubts = tuple(f"but {s.reason}" for s in listed if s.verdict not in (winner, UNKNOWN))
    return Verdict(winner, round(confidence, 2), reasons + doubts + notes)


def message_status(hits: Sequence[Hit], verdicts: dict[int, Verdict], evidence: Evidence) -> str:
    """ "opened by a person", "only by machines" or "not opened", for one copy.

    A reply, a manual read receipt, a human click or open, or a proxy open
    (the proxy fetches when a reader opens) counts as a person. The sender's
    own hits count as nothing. A prefetch alone (Apple MPP) never does.
    """
    if evidence.replied_at is not None or evidence.read_receipt_at is not None:
        return OPENED_BY_PERSON
    seen = [(h, verdicts.get(h.id)) for h in hits]
    if any(h.kind in _OPENING_KINDS and v and v.verdict in _PERSON_VERDICTS for h, v in seen):
        return OPENED_BY_PERSON
    if any(v is None or v.verdict != SELF for _, v in seen):
        return ONLY_MACHINES
    return NOT_OPENED


def elsewhere(hits: Sequence[Hit], verdicts: dict[int, Verdict]) -> set[int]:
    """Human opens after the first one from another client family *and* another network.

    Networks are compared at /24 (IPv4) or /48 (IPv6). Such an open is a re-read
    on another device or a forward; nothing documents how to tell which.
    """
    opens = sorted(
        (h for h in hits if h.kind == OPEN and _verdict_of(verdicts, h.id) == HUMAN),
        key=IN_TIME,
    )
    if not opens:
        return set()
    first = opens[0]
    flags: dict[tuple[str | None, str], bool] = {}  # the flag rests on address and agent
    found = set()
    for h in opens[1:]:
        client = (h.ip, h.user_agent)
        flag = flags.get(client)
        if flag is None:
            flag = flags[client] = opened_elsewhere(first, h)
        if flag:
            found.add(h.id)
    return found


def opened_elsewhere(first: Hit, hit: Hit) -> bool:
    """Whether a later human open is "elsewhere" from the copy's first human open.

    The flag depends on these two hits only, so a caller that keeps the first
    human open of a copy can flag a new open without the others.
    """
    first_network = _network(first.ip)
    if first_network is None:
        return False
    if parse_client(hit.user_agent).family == parse_client(first.user_agent).family:
        return False
    network = _network(hit.ip)
    return network is not None and network != first_network


def estimated_human_open_rate(statuses: Iterable[str], delivered: int) -> float | None:
    """Copies opened by a person over copies delivered (sent minus bounced)."""
    if delivered <= 0:
        return None
    return sum(1 for s in statuses if s == OPENED_BY_PERSON) / delivered


def _verdict_of(verdicts: dict[int, Verdict], hid: int) -> str:
    v = verdicts.get(hid)
    return v.verdict if v is not None else UNKNOWN


@lru_cache(maxsize=16384)  # the same few addresses come back on every re-judging
def _network(ip: str | None) -> IPNetwork | None:
    addr = parse_ip(ip)
    if addr is None:
        return None
    return ipaddress.ip_network((addr, 24 if addr.version == 4 else 48), strict=False)
