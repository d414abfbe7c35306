"""The pipeline on a real store: kept first, then matched to the right copy or quarantined."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon.clock import FixedClock
from mailbeacon.inbound.pipeline import Pipeline
from mailbeacon.store import delivery, queries, suppressions
from mailbeacon.store import inbound as db
from mailbeacon.store.sql import SqlStore
from reportmail import Copy, dsn, mdn, send_tracked
from smtpserver import SmtpSink


@pytest.fixture
def sent(store: SqlStore, smtp_sink: SmtpSink, tmp_path: Path) -> tuple[dict[str, Copy], Pipeline]:
    clock = FixedClock()
    copies, keyring, config = send_tracked(store, smtp_sink, tmp_path / "data", clock)
    clock.advance(600)
    return copies, Pipeline.from_config(config, store, keyring, clock)


def kinds(store: SqlStore, address: str) -> list[str]:
    return [v.kind for v in queries.timeline(store, address)]


def test_delivered_bounced_read_reach_the_right_recipients(
    sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    copies, pipeline = sent
    ann, bob, cat = copies.values()
    clock = pipeline.clock
    assert isinstance(clock, FixedClock)
    out = pipeline.receive(dsn(ann, "delivered", "2.0.0"), source="file")
    assert (out.status, out.kind, out.message, out.events) == (
        "matched",
        "dsn",
        ann.message,
        ("delivered",),
    )
    out = pipeline.receive(
        dsn(
            bob,
            "failed",
            "5.1.1",
            "550 5.1.1 <bob@example.org>: user unknown",
            envid="",
            message_id="<dsn-2@mx>",
        ),
        source="smtp",
        envelope_to=[bob.envelope_from],
    )
    assert (out.status, out.message, out.events) == ("matched", bob.message, ("bounced",))
    out = pipeline.receive(mdn(cat, clock), source="imap")
    assert (out.status, out.kind, out.message, out.events) == (
        "matched",
        "mdn",
        cat.message,
        ("read",),
    )
    assert kinds(store, ann.recipient) == ["sent", "delivered"]
    assert kinds(store, bob.recipient) == ["sent", "bounced"]
    assert kinds(store, cat.recipient) == ["sent", "read"]
    bounce = queries.timeline(store, bob.recipient)[-1].detail
    assert bounce["hard"] is True and bounce["status"] == "5.1.1"
    assert bounce["reason"] == "userunknown" and bounce["matched_by"] == "verp"
    assert suppressions.suppressed(store, [bob.recipient, ann.recipient]) == {
        bob.recipient: "hard bounce: 5.1.1 userunknown"
    }
    counts = delivery.delivery_counts(store)
    assert (counts.sent, counts.delivered, counts.bounced, counts.hard_bounced, counts.read) == (
        3,
        1,
        1,
        1,
        1,
    )


def test_the_same_report_twice_is_a_duplicate(
    sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    copies, pipeline = sent
    ann = copies["ann@example.org"]
    report = dsn(ann, "delivered", "2.0.0")
    assert pipeline.receive(report, source="imap").status == "matched"
    again = pipeline.receive(report, source="imap")
    assert again.status == "duplicate"
    assert kinds(store, ann.recipient) == ["sent", "delivered"]


def test_soft_bounces_suppress_only_when_they_repeat(
    sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    copies, pipeline = sent
    cat = copies["cat@example.net"]
    for n in range(3):
        report = dsn(cat, "failed", "4.2.2", "452 4.2.2 mailbox full", message_id=f"<soft-{n}@mx>")
        assert pipeline.receive(report, source="file").status == "matched"
        listed = suppressions.suppressed(store, [cat.recipient])
        assert bool(listed) == (n == 2), (n, listed)


def test_unmatched_is_quarantined_and_rematched(
    sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    copies, pipeline = sent
    ann = copies["ann@example.org"]
    stranger = Copy(
        "zed@example.org", 0, "<nope@x>", "", ann.data.replace(ann.message_id.encode(), b"<nope@x>")
    )
    out = pipeline.receive(dsn(stranger, "failed", "5.1.1", envid="nope@x"), source="file")
    assert out.status == "quarantined" and "zed@example.org" in out.reason
    [row] = db.listing(store, "quarantined")
    assert row.id == out.inbound and row.raw.startswith(b"From: MAILER-DAEMON")
    assert pipeline.rematch()[0].status == "quarantined"
