"""How far a new hit or new evidence reaches: which verdicts it can change (pure).

An incremental judge re-judges only the hits inside ``rejudge_span`` of what
arrived, by calling ``judge`` over the hits inside ``context_span`` of that
span and keeping the verdicts of the hits inside the span. Why the spans are
what they are (the windows are the constants of ``signals``):

- A link hit marks, and is marked by, link hits at most ``PATTERN_REACH``
  (10 s) away: every pattern window is that long or shorter, and marks only grow
  as hits are added.
- A marked run's reason names the run's size and span, and a run chains link
  hits at most ``PATTERN_REACH`` apart: a span must hold every chain it touches
  (``chain closure``). Runs longer than ``signals.RUN_BOUND`` keep their words.
- A hit whose scanner signal is strong labels same-client hits up to
  ``COMPANION_WINDOW`` (30 s) away as companions; its strength rests on hits
  ``PATTERN_REACH`` away: ``COMPANION_REACH`` = 40 s. Only link hits can be
  strong (a hidden link or a pattern; every per-hit scanner signal of an open
  is weaker), so an open reaches no other hit.
- "Opened elsewhere" compares a human open with the copy's *first* human open
  (``engine.opened_elsewhere``): no span bounds that. When a re-judged hit is,
  or becomes, the first human open, re-flag every later human open.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mailbeacon.core.verdicts import signals as sig
from mailbeacon.core.verdicts.model import LINK_KINDS, Evidence, Hit

PATTERN_REACH: Final = max(sig.BURST_WINDOW, sig.EVERY_LINK_WINDOW)
COMPANION_REACH: Final = sig.COMPANION_WINDOW + PATTERN_REACH
# link hits this soon after delivery can take part in the burst-after-delivery pattern
DELIVERY_REACH: Final = sig.DELIVERY_SCAN_WINDOW + sig.BURST_WINDOW


@dataclass(frozen=True, slots=True)
class Span:
    """Hit times from ``start`` to ``end``, both included; infinite ends for "all"."""

    start: float
    end: float

    def __contains__(self, at: float) -> bool:
        return self.start <= at <= self.end

    def hull(self, other: Span) -> Span:
        return Span(min(self.start, other.start), max(self.end, other.end))


EVERYTHING: Final = Span(-math.inf, math.inf)


def rejudge_span(hit: Hit, link_times: Sequence[float]) -> Span:
    """The hits whose verdicts a new ``hit`` can change lie in this span.

    ``link_times``: the sorted times of the copy's link hits (click, download,
    honeypot), with or without the new one. Costs a bisection plus the length
    of the chains the span touches. Besides these, "opened elsewhere" flags can
    change (see the module docstring).
    """
    if hit.kind not in LINK_KINDS:
        return chain_closure(Span(hit.at, hit.at), link_times)
    near = Span(hit.at - COMPANION_REACH, hit.at + COMPANION_REACH)
    return chain_closure(near, link_times)


def evidence_span(old: Evidence, new: Evidence, link_times: Sequence[float]) -> Span | None:
    """The hits whose verdicts a change of evidence can change; None when none can."""
    if old.link_count != new.link_count:
        return EVERYTHING  # "every link clicked" is asked again of every window
    if sig.recipient_answered(old) != sig.recipient_answered(new):
        return EVERYTHING  # it backs every hit from a reader's software
    spans: list[Span] = []
    if old.sent_at != new.sent_at:  # "instant after send" holds for any hit before +2 s
        before = Span(-math.inf, max(old.sent_at, new.sent_at) + sig.INSTANT_AFTER_SEND)
        spans.append(chain_closure(before, link_times))
    if old.delivered_at != new.delivered_at:
        for delivered in (old.delivered_at, new.delivered_at):
            if delivered is not None:
                start, end = delivered, delivered + DELIVERY_REACH
                early = Span(start - COMPANION_REACH, end + COMPANION_REACH)
                spans.append(chain_closure(early, link_times))
    if not spans:
        return None
    found = spans[0]
    for span in spans[1:]:
        found = found.hull(span)
    return found


def context_span(span: Span) -> Span:
    """The hits ``judge`` must be given for exact verdicts of the hits in a closed span.

    A closed span (one from ``rejudge_span`` or ``evidence_span``) holds whole
    chains, so run reasons are complete; a companion needs the strength of hits
    ``COMPANION_WINDOW`` away, which rests on hits ``PATTERN_REACH`` beyond.
    """
    return Span(span.start - COMPANION_REACH, span.end + COMPANION_REACH)


def chain_closure(span: Span, link_times: Sequence[float]) -> Span:
    """``span`` grown until no link hit outside it is within PATTERN_REACH of a link hit inside.

    ``link_times`` must be sorted. A chain is a maximal series of link hits each
    at most PATTERN_REACH after the last; marked runs never cross chains.
    """
    first = bisect_left(link_times, span.start)
    last = bisect_right(link_times, span.end) - 1
    if first > last:  # no link hit inside: no chain to complete
        return span
    while first > 0 and link_times[first] - link_times[first - 1] <= PATTERN_REACH:
        first -= 1
    while last + 1 < len(link_times) and link_times[last + 1] - link_times[last] <= PATTERN_REACH:
        last += 1
    return Span(min(span.start, link_times[first]), max(span.end, link_times[last]))
