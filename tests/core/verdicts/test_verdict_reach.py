"""reach.py: a new hit or new evidence changes verdicts only inside the span it names.

Checked against judge() itself on random copies: judge all hits before and
after, and every verdict that changed must lie in the span (or be a human
open whose "opened elsewhere" flag moved with the first human open); judging
only the hits in the context span gives the same verdicts for the span.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from test_linear_equivalence import LABELS, T, copies

from mailbeacon.core.verdicts import reach
from mailbeacon.core.verdicts import signals as sig
from mailbeacon.core.verdicts.engine import judge
from mailbeacon.core.verdicts.model import (
    CLICK,
    ELSEWHERE,
    HUMAN,
    LINK_KINDS,
    OPEN,
    SCANNER,
    Evidence,
    Hit,
    SenderProfile,
    Verdict,
)

Copy = tuple[list[Hit], Evidence, SenderProfile]


def link_times(hits: list[Hit]) -> list[float]:
    return sorted(h.at for h in hits if h.kind in LINK_KINDS)


def without_elsewhere(v: Verdict) -> tuple[str, tuple[str, ...]]:
    return v.verdict, tuple(r for r in v.reasons if r != ELSEWHERE)


def changed_outside(before: dict[int, Verdict], after: dict[int, Verdict], hits: list[Hit],
                    span: reach.Span) -> list[int]:  # fmt: skip
    """Hits outside the span whose verdict changed other than by the "elsewhere" flag."""
    return [
        h.id
        for h in hits
        if h.at not in span
        and before[h.id] != after[h.id]
        and not (
            h.kind == OPEN and without_elsewhere(before[h.id]) == without_elsewhere(after[h.id])
        )
    ]


def same_in_span(hits: list[Hit], evidence: Evidence, sender: SenderProfile,
                 span: reach.Span) -> None:  # fmt: skip
    """Judging only the context gives every hit in the span its verdict (flag aside)."""
    whole = judge(hits, evidence, sender, LABELS)
    context = reach.context_span(span)
    part = judge([h for h in hits if h.at in context], evidence, sender, LABELS)
    for h in hits:
        if h.at in span:
            assert without_elsewhere(part[h.id]) == without_elsewhere(whole[h.id]), h


NEAR = st.sampled_from([-41.0, -35.0, -12.0, -9.5, -4.0, 0.0, 4.0, 9.5, 12.0, 35.0, 41.0])


@settings(max_examples=300, deadline=None)
@given(copies(), st.sampled_from([OPEN, CLICK, "honeypot"]), NEAR, st.floats(-1, 1), st.data())
def test_a_new_hit_changes_verdicts_only_inside_its_span(
    copy: Copy, kind: str, near: float, jitter: float, data: st.DataObject
):
    """The new hit comes from a client of the copy, at a window's length from one of its hits."""
    hits, evidence, sender = copy
    source = data.draw(st.sampled_from(hits)) if hits else Hit(0, OPEN, T, "GET", "192.0.2.1", "")
    link = data.draw(st.integers(0, max(evidence.link_count, 1)))
    at = source.at + near + jitter
    new = Hit(10_000, kind, at, "GET", source.ip, source.user_agent, link)
    span = reach.rejudge_span(new, link_times(hits))
    before = judge(hits, evidence, sender, LABELS)
    after = judge([*hits, new], evidence, sender, LABELS)
    assert changed_outside(before, after, hits, span) == []
    assert new.at in span
    same_in_span([*hits, new], evidence, sender, span)


EVIDENCE_CHANGES = st.sampled_from(
    [
        {"delivered_at": None},
        {"delivered_at": T + 0.5},
        {"delivered_at": T + 600.0},
        {"sent_at": T - 30.0},
        {"link_count": 3},
        {"replied_at": T + 9.0},
    ]
)


@settings(max_examples=150, deadline=None)
@given(copies(), EVIDENCE_CHANGES)
def test_new_evidence_changes_verdicts_only_inside_its_span(copy: Copy, change: dict[str, object]):
    hits, old, sender = copy
    new = Evidence(**{**{f: getattr(old, f) for f in old.__dataclass_fields__}, **change})  # type: ignore[arg-type]
    span = reach.evidence_span(old, new, link_times(hits))
    before = judge(hits, old, sender, LABELS)
    after = judge(hits, new, sender, LABELS)
    if span is None:
        assert before == after
        return
    assert changed_outside(before, after, hits, span) == []
    same_in_span(hits, new, sender, span)


def test_spans_close_over_chains_of_link_hits():
    chain = [T + 8.0 * k for k in range(10)]  # link hits 8 s apart: one chain of 72 s
    far = [T + 500.0]
    span = reach.rejudge_span(Hit(1, CLICK, T + 100, "GET", None, "", 1), [*chain, *far])
    assert span == reach.Span(T, T + 140)  # back to the chain's first hit, and t + 40 s
    lone_open = reach.rejudge_span(Hit(2, OPEN, T + 300, "GET", None, ""), chain)
    assert lone_open == reach.Span(T + 300, T + 300)
    assert reach.evidence_span(Evidence(T), Evidence(T), chain) is None
    assert reach.evidence_span(Evidence(T), Evidence(T, link_count=3), chain) == reach.EVERYTHING
    assert math.isinf(reach.evidence_span(Evidence(T), Evidence(T - 1), chain).start)  # type: ignore[union-attr]


def test_a_flood_run_keeps_its_words_so_one_more_hit_changes_no_other_verdict():
    def flood(n: int) -> list[Hit]:
        return [Hit(i, CLICK, T + 600 + i * 0.01, "GET", "192.0.2.9", "x", 1) for i in range(n)]

    small = judge(flood(sig.RUN_BOUND), Evidence(T))
    assert small[0].reasons == (f"{sig.RUN_BOUND} clicks within 10 s",)
    big, bigger = (
        judge(flood(sig.RUN_BOUND + 1), Evidence(T)),
        judge(flood(sig.RUN_BOUND + 2), Evidence(T)),
    )
    assert big[0].reasons == (f"over {sig.RUN_BOUND} clicks within a run of 5 s gaps",)
    assert (
        (big[0].verdict, big[0].confidence)
        == (small[0].verdict, small[0].confidence)
        == (SCANNER, 0.9)
    )
    assert all(bigger[i] == big[i] for i in big)


def test_identical_hits_share_one_verdict_object():
    hits = [Hit(i, OPEN, T + 3600 + i, "GET", "192.0.2.9", "Mozilla/5.0") for i in range(500)]
    verdicts = judge(hits, Evidence(T))
    assert len({id(v) for v in verdicts.values()}) == 1
    assert verdicts[0].verdict != HUMAN  # the Apple MPP form: a prefetch
