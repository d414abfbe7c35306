"""The same report delivered several times at once is counted once: the store's unique key
decides, not a look before inserting. Threads racing through the pipeline, and real
parallel SMTP sessions to a running ``mailbeacon serve``, on SQLite and PostgreSQL."""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbeacon import keys
from mailbeacon.clock import FixedClock
from mailbeacon.inbound.pipeline import Outcome, Pipeline
from mailbeacon.store import delivery, queries, suppressions
from mailbeacon.store import inbound as db
from mailbeacon.store.sql import SqlStore
from reportmail import BOUNCE_DOMAIN, SENDER, Copy, dsn, mdn, send_tracked
from serverproc import ServerProcess, free_port
from smtpserver import SmtpSink

SESSIONS = 8  # deliveries of each report at once


def _reports(copies: dict[str, Copy], clock: FixedClock) -> list[tuple[str, bytes]]:
    """(envelope recipient, report): a delivery, a hard and a soft bounce, a read receipt."""
    ann, bob, cat = copies.values()
    return [
        (ann.envelope_from, dsn(ann, "delivered", "2.0.0", message_id="<p1@mx>")),
        (bob.envelope_from, dsn(bob, "failed", "5.1.1", "550 5.1.1 user unknown",
                                message_id="<p2@mx>")),
        (cat.envelope_from, dsn(cat, "failed", "4.2.2", "452 4.2.2 mailbox full",
                                message_id="<p3@mx>")),
        (SENDER, mdn(cat, clock)),
    ]


def _all_at_once(jobs: list[tuple[str, bytes]], deliver: Callable[[str, bytes], None]) -> None:
    """Run ``deliver(rcpt, raw)`` for every job on its own thread, released together."""
    start = threading.Barrier(len(jobs))
    failures: list[BaseException] = []

    def run(rcpt: str, raw: bytes) -> None:
        try:
            start.wait(30)
            deliver(rcpt, raw)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures


def _counted_once(store: SqlStore, copies: dict[str, Copy]) -> None:
    ann, bob, cat = copies.values()
    assert [v.kind for v in queries.timeline(store, ann.recipient)] == ["sent", "delivered"]
    assert [v.kind for v in queries.timeline(store, bob.recipient)] == ["sent", "bounced"]
    assert sorted(v.kind for v in queries.timeline(store, cat.recipient)) == [
        "bounced", "read", "sent"]
    counts = delivery.delivery_counts(store)
    assert (counts.delivered, counts.bounced, counts.hard_bounced, counts.soft_bounced,
            counts.read) == (1, 2, 1, 1, 1)
    # one soft bounce report is not three: only the hard bounce puts an address on the list
    assert [(s.address, s.source) for s in suppressions.listing(store)] == [
        (bob.recipient, "hard-bounce")]
    rows = db.listing(store)
    assert Counter(r.status for r in rows) == {"matched": 4, "duplicate": 4 * SESSIONS - 4}
    assert len({(r.message, r.kind) for r in rows if r.status == "matched"}) == 4
    assert all(r.reason.startswith("the same report as inbound ") or
               r.reason.startswith("the same message as inbound ")
               for r in rows if r.status == "duplicate")


def test_parallel_deliveries_through_the_pipeline_count_once(
        store: SqlStore, smtp_sink: SmtpSink, tmp_path: Path) -> None:
    clock = FixedClock()
    copies, keyring, config = send_tracked(store, smtp_sink, tmp_path / "data", clock)
    clock.advance(600)
    pipeline = Pipeline.from_config(config, store, keyring, clock)
    outcomes: list[Outcome] = []

    def deliver(rcpt: str, raw: bytes) -> None:
        outcomes.append(pipeline.receive(raw, source="smtp", envelope_to=[rcpt]))

    _all_at_once(_reports(copies, clock) * SESSIONS, deliver)
    assert Counter(o.status for o in outcomes) == {"matched": 4, "duplicate": 4 * SESSIONS - 4}
    assert sorted(e for o in outcomes for e in o.events) == [
        "bounced", "bounced", "delivered", "read"]
    _counted_once(store, copies)


def test_a_report_redelivered_after_it_was_quarantined_and_rematched_counts_once(
        store: SqlStore, smtp_sink: SmtpSink, tmp_path: Path) -> None:
    """The key names the report, not the delivery: a rematch of a copy already recorded
    by another delivery of the same report inserts nothing and is settled as a duplicate."""
    clock = FixedClock()
    copies, keyring, config = send_tracked(store, smtp_sink, tmp_path / "data", clock)
    clock.advance(600)
    pipeline = Pipeline.from_config(config, store, keyring, clock)
    sent = copies["bob@example.org"]
    # only the VERP address tells which copy (the quoted headers lost their Message-ID)
    bob = Copy(sent.recipient, sent.message, sent.message_id, sent.envelope_from,
               sent.data.replace(sent.message_id.encode(), b"<lost@x>"))
    report = dsn(bob, "failed", "5.1.1", "550 5.1.1 user unknown", envid="",
                 message_id="<q1@mx>")
    # kept by a server whose keyring was rotated away: the VERP token fails, it waits
    lost = Pipeline(store, keys.load_or_create(tmp_path / "old-keys"), clock, BOUNCE_DOMAIN)
    kept = lost.receive(report, source="smtp", envelope_to=[bob.envelope_from])
    assert kept.status == "quarantined", kept
    by_smtp = b"Received: from mx.example.org by mailbeacon\r\n" + report  # other bytes
    first = pipeline.receive(by_smtp, source="smtp", envelope_to=[bob.envelope_from])
    assert first.status == "matched"  # not a duplicate of a quarantined message
    [again] = pipeline.rematch()
    assert (again.status, again.reason) == ("duplicate",
                                            f"the same report as inbound {first.inbound}")
    assert [v.kind for v in queries.timeline(store, bob.recipient)] == ["sent", "bounced"]


@pytest.mark.slow
def test_parallel_smtp_sessions_to_serve_count_each_report_once(
        tmp_path: Path, store: SqlStore, store_url: str, smtp_sink: SmtpSink) -> None:
    data_dir = tmp_path / "data"
    clock = FixedClock()
    copies, _, _ = send_tracked(store, smtp_sink, data_dir, clock)
    port = free_port()
    with ServerProcess(data_dir, store_url, "--inbound-smtp", f"127.0.0.1:{port}",
                       "--bounce-domain", BOUNCE_DOMAIN, "--receipt-addresses", SENDER):

        def deliver(rcpt: str, raw: bytes) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
                c.ehlo("mx.example.org")
                c.sendmail("", [rcpt], raw)

        _all_at_once(_reports(copies, clock) * SESSIONS, deliver)
        deadline = time.monotonic() + 30
        while any(r.status == "received" for r in db.listing(store)):
            assert time.monotonic() < deadline, "inbound messages left unprocessed"
            time.sleep(0.2)
    _counted_once(store, copies)
