"""Each documented sign of a person or a machine, as its own small function.

A signal is a verdict it points to, a weight (how strongly it points there on
its own, 0..1) and a reason a user can read. Per-hit signals look at one hit;
the pattern signals at the end look at all the link hits of a recipient copy,
which is why a later hit can change the verdict on earlier ones. Sources are in
docs/verdicts.md; no signal here rests on an IP range or a scanner user agent
that its owner does not publish.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from mailbeacon.core.verdicts.clients import parse_client
from mailbeacon.core.verdicts.iplabels import LABEL_VERDICTS, IpLabels
from mailbeacon.core.verdicts.model import (
    CLICK,
    HONEYPOT,
    HUMAN,
    OPEN,
    PREFETCH,
    PROXY,
    SCANNER,
    SELF,
    UNKNOWN,
    Evidence,
    Hit,
    SenderProfile,
    parse_ip,
)  # fmt: skip

APPLE_MPP_UA: Final = "Mozilla/5.0"  # the whole user agent, nothing more (Mailgun)
GMAIL_PROXY_MARKS: Final = ("GoogleImageProxy", "via ggpht.com")
YAHOO_PROXY_MARK: Final = "YahooMailProxy"
OFFICE_DISCOVERY_UA: Final = "Microsoft Office Existence Discovery"

INSTANT_AFTER_SEND: Final = 2.0  # Mautic's BotRatioHelper: a hit under 2 s after sending
PROXY_RECEIPT_WINDOW: Final = 60.0  # Nylas: a Gmail proxy fetch within ~1 min of delivery
CLICK_AFTER_DELIVERY: Final = 10.0  # a single click this soon after delivery: scanner-like
BURST_CLICKS: Final = 4  # this many link hits ...
BURST_WINDOW: Final = 5.0  # ... within this many seconds is a burst
EVERY_LINK_MIN: Final = 3  # "every link clicked" needs a message with 3+ links
EVERY_LINK_WINDOW: Final = 10.0
DELIVERY_SCAN_WINDOW: Final = 120.0  # a burst that starts this soon after delivery
DELIVERY_BURST_CLICKS: Final = 2  # needs only this many link hits within BURST_WINDOW
COMPANION_WINDOW: Final = 30.0  # other hits of the same client around a scan
RUN_BOUND: Final = 1000  # a run of more marked link hits than this is a flood (see _per_run)


@dataclass(frozen=True, slots=True)
class Signal:
    verdict: str
    weight: float  # 0..1; 1.0 means certain
    reason: str


# -- one hit at a time ---------------------------------------------------------


def apple_mpp_user_agent(hit: Hit) -> Signal | None:
    if hit.kind == OPEN and hit.user_agent.strip() == APPLE_MPP_UA:
        return Signal(PREFETCH, 0.9, "user agent is the Apple MPP form")
    return None


def gmail_image_proxy(hit: Hit) -> Signal | None:
    if any(mark in hit.user_agent for mark in GMAIL_PROXY_MARKS):
        return Signal(PROXY, 0.9, "user agent is the Gmail image proxy")
    return None


def yahoo_mail_proxy(hit: Hit) -> Signal | None:
    if YAHOO_PROXY_MARK in hit.user_agent:
        return Signal(PROXY, 0.9, "user agent is the Yahoo Mail proxy")
    return None


def office_existence_discovery(hit: Hit) -> Signal | None:
    if OFFICE_DISCOVERY_UA in hit.user_agent:
        return Signal(PREFETCH, 0.95, "Microsoft Office existence check")
    return None


def head_request(hit: Hit) -> Signal | None:
    if hit.method.upper() == "HEAD":
        return Signal(PREFETCH, 0.8, "HEAD request")
    return None


def honeypot_link(hit: Hit) -> Signal | None:
    if hit.kind == HONEYPOT:
        return Signal(SCANNER, 1.0, "hidden link clicked")
    return None


def sender_device(hit: Hit, sender: SenderProfile) -> Signal | None:
    addr = parse_ip(hit.ip) if sender.networks else None
    on_network = addr is not None and any(addr in net for net in sender.networks)
    with_agent = any(part in hit.user_agent for part in sender.user_agents)
    if on_network and with_agent:
        return Signal(SELF, 0.95, "the sender's own network and user agent")
    if on_network:
        return Signal(SELF, 0.8, "the sender's own network")
    if with_agent:
        return Signal(SELF, 0.7, "the sender's own user agent")
    return None


def network_label(hit: Hit, labels: IpLabels) -> Signal | None:
    label = labels.label(hit.ip)
    if label is None:
        return None
    verdict = LABEL_VERDICTS.get(label)
    if verdict is None:  # a label the engine does not act on: shown, never decisive
        return Signal(UNKNOWN, 0.0, f"address is in a network labelled {label!r}")
    return Signal(verdict, 0.75, f"address is in a network labelled {label!r}")


def instant_after_send(hit: Hit, evidence: Evidence) -> Signal | None:
    delay = hit.at - evidence.sent_at
    if delay < INSTANT_AFTER_SEND:
        verdict = PREFETCH if hit.kind == OPEN else SCANNER
        return Signal(verdict, 0.6, f"{_secs(delay)} after sending")
    return None


def proxy_fetch_on_receipt(hit: Hit, evidence: Evidence) -> Signal | None:
    """A proxy open right after delivery may be a fetch on receipt: doubt, not a verdict."""
    if evidence.delivered_at is None or hit.kind != OPEN:
        return None
    if gmail_image_proxy(hit) is None and yahoo_mail_proxy(hit) is None:
        return None
    delay = hit.at - evidence.delivered_at
    if 0 <= delay <= PROXY_RECEIPT_WINDOW:
        return Signal(
            PREFETCH, 0.3, f"proxy fetch {_secs(delay)} after delivery (may be on receipt)"
        )
    return None


def clicked_soon_after_delivery(hit: Hit, evidence: Evidence) -> Signal | None:
    if hit.kind != CLICK or evidence.delivered_at is None:
        return None
    delay = hit.at - evidence.delivered_at
    if 0 <= delay <= CLICK_AFTER_DELIVERY:
        return Signal(SCANNER, 0.45, f"clicked {_secs(delay)} after delivery")
    return None


def no_timed_signal(at: float, evidence: Evidence) -> bool:
    """True when none of the three time-dependent signals above can fire at ``at``.

    A fast path: the rest of a hit's signals depend on its kind, method, address
    and user agent only, so hits that share those and fall here share them all.
    """
    if at - evidence.sent_at < INSTANT_AFTER_SEND:
        return False
    if evidence.delivered_at is None:
        return True
    return not 0 <= at - evidence.delivered_at <= max(PROXY_RECEIPT_WINDOW, CLICK_AFTER_DELIVERY)


def reader_software(hit: Hit) -> Signal | None:
    """A named mail client or browser on a named system, as people's software reports."""
    client = parse_client(hit.user_agent)
    if not client.is_reader_software or "Proxy" in (client.family or ""):
        return None
    return Signal(HUMAN, 0.6, f"a reader's client: {client.client} on {client.os}")


def recipient_answered(evidence: Evidence) -> Signal | None:
    """A reply or a manual read receipt: someone read this copy."""
    if evidence.replied_at is not None:
        return Signal(HUMAN, 0.3, "the recipient replied")
    if evidence.read_receipt_at is not None:
        return Signal(HUMAN, 0.3, "the recipient sent a read receipt")
    return None


# -- patterns over all link hits of one copy (sorted by time) -------------------


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
    covered = 0  # clicks[:covered] are already marked: each click is marked once
    for right, hit in enumerate(clicks):
        seen[hit.link] += 1
        while hit.at - clicks[left].at > EVERY_LINK_WINDOW:
            gone = clicks[left].link
            seen[gone] -= 1
            if not seen[gone]:
                del seen[gone]
            left += 1
        if len(seen) == link_count:
            covered = _mark(marked, clicks, max(left, covered), right + 1)
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
    for scan_times in scans.values():
        scan_times.sort()
    found: dict[int, Signal] = {}
    said: dict[str, Signal] = {}  # one Signal per wording: a flood shares a handful
    for h in hits:
        times = scans.get((h.ip, h.user_agent))
        if h.id in scanner_ids or not times:
            continue
        gap = nearest_gap(times, h.at)
        if gap <= COMPANION_WINDOW:
            reason = f"same client as a link scan {_secs(gap)} away"
            if reason not in said:
                said[reason] = Signal(SCANNER, 0.8, reason)
            found[h.id] = said[reason]
    return found


def nearest_gap(times: Sequence[float], at: float) -> float:
    """``min(abs(at - t) for t in times)`` for sorted, non-empty ``times``, by bisection.

    The two neighbours of ``at`` suffice: a rounded subtraction is monotone in
    each argument, so no farther time can give a smaller rounded gap.
    """
    i = bisect_left(times, at)
    if i == 0:
        return abs(at - times[0])
    if i == len(times):
        return abs(at - times[-1])
    return min(abs(at - times[i - 1]), abs(at - times[i]))


def _dense(hits: Sequence[Hit], window: float, count: int) -> set[int]:
    """Ids of hits lying in some span of `window` seconds that holds `count` or more hits."""
    marked: set[int] = set()
    left = 0
    covered = 0  # hits[:covered] are already marked: each hit is marked once
    for right, hit in enumerate(hits):
        while hit.at - hits[left].at > window:
            left += 1
        if right - left + 1 >= count:
            covered = _mark(marked, hits, max(left, covered), right + 1)
    return marked


def _mark(marked: set[int], hits: Sequence[Hit], start: int, stop: int) -> int:
    """Mark hits[start:stop]; returns stop, the new end of what is marked.

    The windows of a sliding scan start and end later and later, so what they
    mark is hits[left:right+1] minus what earlier windows marked, i.e. starting
    at max(left, covered): linear in all, where re-marking each window was not.
    """
    marked.update(hits[i].id for i in range(start, stop))
    return stop


def _per_run(
    hits: Sequence[Hit],
    marked: set[int],
    gap: float,
    weight: float,
    describe: Callable[[str, str], str],
) -> dict[int, Signal]:
    """One scanner signal per run of marked hits, its reason naming the run's size and span.

    A run of more than RUN_BOUND hits (only a flood makes one) is described by
    its gap instead: the same words however long it grows, so one more hit of a
    flood leaves the verdicts of the rest unchanged (same verdict and weight).
    """
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
        if len(run) > RUN_BOUND:
            reason = describe(f"over {RUN_BOUND}", f"a run of {gap:.0f} s gaps")
        else:
            reason = describe(str(len(run)), f"{max(1, math.ceil(run[-1].at - run[0].at))} s")
        signal = Signal(SCANNER, weight, reason)
        found.update((h.id, signal) for h in run)
    return found


def _secs(seconds: float) -> str:
    """A delay as people say it: "under 1 s", "40 s", "12 min", "26 h"."""
    seconds = abs(seconds)
    if seconds < 1:
        return "under 1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
