"""The linear engine gives exactly the verdicts the quadratic one gave.

The old engine (commit e02185d, signals.py patterns and engine.py judge) is kept
here, and only here, to compare with: on every labelled scenario and on random
hit sets drawn to crowd the windows the signals look at. The per-hit signal
functions did not change and are shared.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbeacon.core.verdicts import signals as sig
from mailbeacon.core.verdicts.accuracy import load_scenarios
from mailbeacon.core.verdicts.clients import parse_client
from mailbeacon.core.verdicts.engine import NO_LABELS, judge
from mailbeacon.core.verdicts.iplabels import IpLabels, parse_ip_labels
from mailbeacon.core.verdicts.model import (
    CLICK,
    ELSEWHERE,
    HUMAN,
    LINK_KINDS,
    OPEN,
    SCANNER,
    UNKNOWN,
    Evidence,
    Hit,
    IPNetwork,
    SenderProfile,
    Verdict,
    parse_ip,
)
from mailbeacon.core.verdicts.signals import (
    BURST_CLICKS,
    BURST_WINDOW,
    COMPANION_WINDOW,
    DELIVERY_BURST_CLICKS,
    DELIVERY_SCAN_WINDOW,
    EVERY_LINK_MIN,
    EVERY_LINK_WINDOW,
    Signal,
)

_PRIORITY = ("scanner", "prefetch", "proxy", "self", "human")
_STRONG_SCAN = 0.85
_MAX_CONFIDENCE = 0.99
_ELSEWHERE_CONFIDENCE = 0.8

# -- the old implementation ------------------------------------------------------


def click_bursts(links: Sequence[Hit]) -> dict[int, Signal]:
    """BURST_CLICKS or more link hits within BURST_WINDOW seconds."""
    marked = _dense(links, BURST_WINDOW, BURST_CLICKS)
    return _per_run(links, marked, BURST_WINDOW, 0.9, lambda n, span: f"{n} clicks within {span}")


def every_link_clicked(links: Sequence[Hit], link_count: int) -> dict[int, Signal]:
    """Every tracked link of a message with 3+ links, within EVERY_LINK_WINDOW seconds."""
    if link_count < EVERY_LINK_MIN:
        return {}
    clicks = [h for h in links if h.kind == CLICK and 1 <= h.link <= link_count]
    marked: set[int] = set()
    seen: Counter[int] = Counter()
    left = 0
    for right, hit in enumerate(clicks):
        seen[hit.link] += 1
        while hit.at - clicks[left].at > EVERY_LINK_WINDOW:
            gone = clicks[left].link
            seen[gone] -= 1
            if not seen[gone]:
                del seen[gone]
            left += 1
        if len(seen) == link_count:
            marked.update(h.id for h in clicks[left : right + 1])
    return _per_run(
        clicks, marked, EVERY_LINK_WINDOW, 0.95,
        lambda n, span: f"all {link_count} links clicked within {span}",
    )  # fmt: skip


def burst_after_delivery(links: Sequence[Hit], evidence: Evidence) -> dict[int, Signal]:
    """A smaller burst that starts within DELIVERY_SCAN_WINDOW of delivery."""
    if evidence.delivered_at is None:
        return {}
    start = evidence.delivered_at
    early = [h for h in links if 0 <= h.at - start <= DELIVERY_SCAN_WINDOW + BURST_WINDOW]
    marked = _dense(early, BURST_WINDOW, DELIVERY_BURST_CLICKS)
    return _per_run(
        early, marked, BURST_WINDOW, 0.85,
        lambda n, span: f"{n} clicks within {span}, right after delivery",
    )  # fmt: skip


def scan_companions(hits: Sequence[Hit], scanner_ids: set[int]) -> dict[int, Signal]:
    """Other hits from the same address and user agent as a scan, close to it in time."""
    scans: dict[tuple[str | None, str], list[float]] = {}
    for h in hits:
        if h.id in scanner_ids:
            scans.setdefault((h.ip, h.user_agent), []).append(h.at)
    found: dict[int, Signal] = {}
    for h in hits:
        times = scans.get((h.ip, h.user_agent))
        if h.id in scanner_ids or not times:
            continue
        gap = min(abs(h.at - t) for t in times)
        if gap <= COMPANION_WINDOW:
            found[h.id] = Signal(SCANNER, 0.8, f"same client as a link scan {sig._secs(gap)} away")
    return found


def _dense(hits: Sequence[Hit], window: float, count: int) -> set[int]:
    """Ids of hits lying in some span of `window` seconds that holds `count` or more hits."""
    marked: set[int] = set()
    left = 0
    for right, hit in enumerate(hits):
        while hit.at - hits[left].at > window:
            left += 1
        if right - left + 1 >= count:
            marked.update(h.id for h in hits[left : right + 1])
    return marked


def _per_run(
    hits: Sequence[Hit],
    marked: set[int],
    gap: float,
    weight: float,
    describe: Callable[[int, str], str],
) -> dict[int, Signal]:
    """One scanner signal per run of marked hits, its reason naming the run's size and span."""
    runs: list[list[Hit]] = []
    for h in hits:
        if h.id not in marked:
            continue
        if runs and h.at - runs[-1][-1].at <= gap:
            runs[-1].append(h)
        else:
            runs.append([h])
    found: dict[int, Signal] = {}
    for run in runs:
        span = f"{max(1, math.ceil(run[-1].at - run[0].at))} s"
        signal = Signal(SCANNER, weight, describe(len(run), span))
        found.update((h.id, signal) for h in run)
    return found


def old_judge(
    hits: Sequence[Hit],
    evidence: Evidence,
    sender: SenderProfile = SenderProfile(),  # noqa: B008 - frozen, so shared safely
    ip_labels: IpLabels = NO_LABELS,
) -> dict[int, Verdict]:
    """The engine before it was made linear, kept to compare with."""
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
        click_bursts(links),
        every_link_clicked(links, evidence.link_count),
        burst_after_delivery(links, evidence),
    )
    for table in tables:
        for hid, signal in table.items():
            found[hid].append(signal)
    scanning = {
        hid
        for hid, signals in found.items()
        if any(s.verdict == SCANNER and s.weight >= _STRONG_SCAN for s in signals)
    }
    for hid, signal in scan_companions(hits, scanning).items():
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


def _verdict_of(verdicts: dict[int, Verdict], hid: int) -> str:
    v = verdicts.get(hid)
    return v.verdict if v is not None else UNKNOWN


def _network(ip: str | None) -> IPNetwork | None:
    addr = parse_ip(ip)
    if addr is None:
        return None
    return ipaddress.ip_network((addr, 24 if addr.version == 4 else 48), strict=False)


# -- the comparison -------------------------------------------------------------

DATA = Path(__file__).parents[2] / "data" / "verdicts"
T = 1_767_225_600.0
USER_AGENTS = (
    "Mozilla/5.0",  # Apple MPP
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (X11; Linux x86_64) YahooMailProxy; https://help.yahoo.com",
    "Microsoft Office Existence Discovery",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
    "",
    "SenderBox/1.0",
)
ADDRESSES = (
    "192.0.2.1", "192.0.2.77", "198.51.100.4", "203.0.113.9", "10.1.2.3",
    "2001:db8::1", "2001:db8:1::9", None, "not-an-ip",
)  # fmt: skip
LABELS = parse_ip_labels("198.51.100.0/24 scanner\n2001:db8:1::/48 apple-mpp\n192.0.2.77 gateway")
SENDERS = (SenderProfile(), SenderProfile.of(("10.1.0.0/16",), ("SenderBox",)))
# offsets from sending that crowd every window: sending, delivery, +10/+60/+125 s, bursts
CROWDED = st.one_of(
    st.sampled_from([-3.0, 0.0, 0.5, 1.9, 2.0, 4.0, 9.0, 14.0, 64.0, 129.0, 600.0, 3600.0]),
    st.floats(min_value=-5, max_value=200, allow_nan=False),
    st.floats(min_value=590, max_value=640, allow_nan=False),
)


@st.composite
def copies(draw: st.DrawFn) -> tuple[list[Hit], Evidence, SenderProfile]:
    link_count = draw(st.integers(min_value=0, max_value=6))
    n = draw(st.integers(min_value=0, max_value=40))
    # a few clients per copy, so scans have companions and openers come back
    clients = draw(
        st.lists(
            st.tuples(st.sampled_from(ADDRESSES), st.sampled_from(USER_AGENTS)),
            min_size=1,
            max_size=4,
        )
    )
    hits = [
        Hit(
            id=i,
            kind=draw(st.sampled_from([OPEN, OPEN, CLICK, CLICK, "download", "honeypot"])),
            at=T + draw(CROWDED),
            method=draw(st.sampled_from(["GET", "GET", "HEAD"])),
            ip=(client := draw(st.sampled_from(clients)))[0],
            user_agent=client[1],
            link=draw(st.integers(min_value=0, max_value=link_count + 1)),
        )
        for i in range(n)
    ]
    maybe = st.none() | st.sampled_from([T + 4.0, T + 30.0, T + 3 * 3600.0])
    evidence = Evidence(
        sent_at=T,
        delivered_at=draw(st.none() | st.sampled_from([T + 4.0, T + 0.5, T + 590.0])),
        link_count=link_count,
        replied_at=draw(maybe),
        read_receipt_at=draw(maybe),
    )
    return hits, evidence, draw(st.sampled_from(SENDERS))


def test_every_labelled_scenario_is_judged_exactly_as_before():
    scenarios = load_scenarios(DATA)
    for sc in scenarios:
        before = old_judge(sc.hits, sc.evidence, sc.sender, sc.ip_labels)
        assert judge(sc.hits, sc.evidence, sc.sender, sc.ip_labels) == before, sc.name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(copies(), st.booleans())
def test_random_copies_are_judged_exactly_as_before(
    copy: tuple[list[Hit], Evidence, SenderProfile], labelled: bool
):
    hits, evidence, sender = copy
    labels = LABELS if labelled else NO_LABELS
    assert judge(hits, evidence, sender, labels) == old_judge(hits, evidence, sender, labels)


@settings(max_examples=100, deadline=None)
@given(copies(), st.integers(min_value=2, max_value=30))
def test_floods_of_identical_hits_are_judged_exactly_as_before(
    copy: tuple[list[Hit], Evidence, SenderProfile], repeat: int
):
    """Copies where each hit comes back many times, 0.3 s apart: the grouped path."""
    hits, evidence, sender = copy
    flood = [
        Hit(h.id * 100 + k, h.kind, h.at + 0.3 * k, h.method, h.ip, h.user_agent, h.link)
        for h in hits[:4]
        for k in range(repeat)
    ]
    assert judge(flood, evidence, sender, LABELS) == old_judge(flood, evidence, sender, LABELS)
