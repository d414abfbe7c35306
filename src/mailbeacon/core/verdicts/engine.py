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
from collections.abc import Iterable, Sequence
from typing import Final

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


def judge(
    hits: Sequence[Hit],
    evidence: Evidence,
    sender: SenderProfile = SenderProfile(),  # noqa: B008 - frozen, so shared safely
    ip_labels: IpLabels = NO_LABELS,
) -> dict[int, Verdict]:
    """A verdict for every hit of one recipient copy, keyed by hit id."""
    ordered = sorted(hits, key=lambda h: (h.at, h.id))
    found: dict[int, list[Signal]] = {h.id: [] for h in ordered}
    own = set()
    for h in ordered:
        mine = sig.sender_device(h, sender)
        if mine is not None:  # the sender's hits take no part in anything else
            found[h.id].append(mine)
            own.add(h.id)
    others = [h for h in ordered if h.id not in own]
    answered = sig.recipient_answered(evidence)
    for h in others:
        found[h.id].extend(_hit_signals(h, evidence, ip_labels, answered))
    _add_patterns(found, others, evidence)
    verdicts = {hid: decide(signals) for hid, signals in found.items()}
    for hid in elsewhere(ordered, verdicts):
        v = verdicts[hid]
        confidence = min(v.confidence, _ELSEWHERE_CONFIDENCE)
        verdicts[hid] = Verdict(v.verdict, confidence, (*v.reasons, ELSEWHERE))
    return verdicts


def _hit_signals(
    hit: Hit, evidence: Evidence, labels: IpLabels, answered: Signal | None
) -> list[Signal]:
    candidates = (
        sig.honeypot_link(hit),
        sig.apple_mpp_user_agent(hit),
        sig.gmail_image_proxy(hit),
        sig.yahoo_mail_proxy(hit),
        sig.office_existence_discovery(hit),
        sig.head_request(hit),
        sig.network_label(hit, labels),
        sig.instant_after_send(hit, evidence),
        sig.proxy_fetch_on_receipt(hit, evidence),
        sig.clicked_soon_after_delivery(hit, evidence),
        reader := sig.reader_software(hit),
        answered if reader is not None else None,
    )
    return [s for s in candidates if s is not None]


def _add_patterns(found: dict[int, list[Signal]], hits: list[Hit], evidence: Evidence) -> None:
    links = [h for h in hits if h.kind in LINK_KINDS]
    tables = (
        sig.click_bursts(links),
        sig.every_link_clicked(links, evidence.link_count),
        sig.burst_after_delivery(links, evidence),
    )
    for table in tables:
        for hid, signal in table.items():
            found[hid].append(signal)
    scanning = {
        hid
        for hid, signals in found.items()
        if any(s.verdict == SCANNER and s.weight >= _STRONG_SCAN for s in signals)
    }
    for hid, signal in sig.scan_companions(hits, scanning).items():
        found[hid].append(signal)


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
        key=lambda h: (h.at, h.id),
    )
    if not opens:
        return set()
    first_family = parse_client(opens[0].user_agent).family
    first_network = _network(opens[0].ip)
    if first_network is None:
        return set()
    return {
        h.id
        for h in opens[1:]
        if parse_client(h.user_agent).family != first_family
        and (net := _network(h.ip)) is not None
        and net != first_network
    }


def estimated_human_open_rate(statuses: Iterable[str], delivered: int) -> float | None:
    """Copies opened by a person over copies delivered (sent minus bounced)."""
    if delivered <= 0:
        return None
    return sum(1 for s in statuses if s == OPENED_BY_PERSON) / delivered


def _verdict_of(verdicts: dict[int, Verdict], hid: int) -> str:
    v = verdicts.get(hid)
    return v.verdict if v is not None else UNKNOWN


def _network(ip: str | None) -> IPNetwork | None:
    addr = parse_ip(ip)
    if addr is None:
        return None
    return ipaddress.ip_network((addr, 24 if addr.version == 4 else 48), strict=False)
