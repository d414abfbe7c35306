"""Matching, as a table: each report says which copy it is about, or lands in quarantine.

Hostile input must give a quarantine entry with a reason, never a crash and never a
match to the wrong copy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailbeacon.clock import FixedClock
from mailbeacon.core import reports
from mailbeacon.core.matching import Context, Match, NoMatch, SentCopy, match, verp_token
from mailbeacon.core.tokens import Claims, Keyring, TokenKind, encode
from mailbeacon.inbound.pipeline import Pipeline
from mailbeacon.store.sql import SqlStore
from reportmail import BOUNCE_DOMAIN, Copy, dsn, mdn, send_tracked
from smtpserver import SmtpSink

Sent = tuple[dict[str, Copy], Pipeline]


@pytest.fixture
def sent(store: SqlStore, smtp_sink: SmtpSink, tmp_path: Path) -> Sent:
    clock = FixedClock()
    copies, keyring, config = send_tracked(store, smtp_sink, tmp_path / "data", clock)
    clock.advance(3600)
    return copies, Pipeline.from_config(config, store, keyring, clock)


def _ann_bob_cat(c: dict[str, Copy]) -> tuple[Copy, Copy, Copy]:
    return c["ann@example.org"], c["bob@example.org"], c["cat@example.net"]


def forged_verp(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    _, bob, _ = _ann_bob_cat(c)
    local = bob.envelope_from.split("@")[0]
    forged = local[:-4] + ("aaaa" if not local.endswith("aaaa") else "bbbb")
    stranger = Copy("zed@example.org", 0, "<gone@x>", "", b"Subject: x\r\n")
    return dsn(stranger, "failed", "5.1.1", envid=""), [f"{forged}@{BOUNCE_DOMAIN}"]


def verp_of_bob_quoting_ann(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    ann, bob, _ = _ann_bob_cat(c)
    return dsn(ann, "failed", "5.1.1", envid=""), [bob.envelope_from]


def mdn_from_cat_about_anns_copy(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    ann, _, cat = _ann_bob_cat(c)
    return mdn(Copy(cat.recipient, 0, ann.message_id, "", ann.data), clock), []


def envid_of_ann_about_bob(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    ann, bob, _ = _ann_bob_cat(c)
    return dsn(bob, "failed", "5.1.1", envid=ann.envid), []


def truncated(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    _, bob, _ = _ann_bob_cat(c)
    raw = dsn(bob, "failed", "5.1.1")
    return raw[: raw.index(b"Final-Recipient") + 8], []


def huge_header(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    return b"Subject: " + b"A" * 2_000_000 + b"\r\nX: " + b"\t" * 100_000 + b"\r\n\r\nbody\r\n", []


def wrong_charset(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    ann, _, _ = _ann_bob_cat(c)
    raw = dsn(ann, "failed", "5.1.1").replace(
        b"Content-Type: text/plain", b"Content-Type: text/plain; charset=x-klingon"
    )
    return raw.replace(b"This is the mail system", b"\xff\xfe\xc3(\xa0 mail system"), []


def forged_tracking_header(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    ann, _, _ = _ann_bob_cat(c)
    other = Keyring({1: b"k" * 32}, 1)
    token = encode(Claims(TokenKind.BOUNCE, 1, ann.message), other)
    data = b"X-Mailbeacon-ID: " + token.encode() + b"\r\nSubject: hi\r\n\r\nx"
    fake = Copy("ann@example.org", 0, "<nope@x>", "", data)
    return dsn(fake, "failed", "5.1.1", envid=""), []


def garbage(c: dict[str, Copy], clock: FixedClock) -> tuple[bytes, list[str]]:
    return b"\x00\xff\xfe" * 1000, []


Case = Callable[[dict[str, Copy], FixedClock], tuple[bytes, list[str]]]
HOSTILE: list[tuple[Case, str]] = [
    (forged_verp, "fails verification"),
    (verp_of_bob_quoting_ann, "evidence disagrees"),
    (mdn_from_cat_about_anns_copy, "sent to ann@example.org"),
    (envid_of_ann_about_bob, "sent to ann@example.org"),
    (huge_header, "not recognised"),
    (forged_tracking_header, "fails verification"),
    (garbage, "not recognised"),
]


@pytest.mark.parametrize(("case", "words"), HOSTILE, ids=[c.__name__ for c, _ in HOSTILE])
def test_hostile_reports_are_quarantined_with_the_reason(
    sent: Sent, case: Case, words: str
) -> None:
    copies, pipeline = sent
    assert isinstance(pipeline.clock, FixedClock)
    raw, envelope_to = case(copies, pipeline.clock)
    out = pipeline.receive(raw, source="smtp", envelope_to=envelope_to)
    assert out.status == "quarantined", out
    assert words in out.reason, out.reason
    assert out.events == ()


@pytest.mark.parametrize("case", [truncated, wrong_charset])
def test_damaged_reports_match_the_right_copy_or_none(sent: Sent, case: Case) -> None:
    copies, pipeline = sent
    assert isinstance(pipeline.clock, FixedClock)
    raw, envelope_to = case(copies, pipeline.clock)
    out = pipeline.receive(raw, source="file", envelope_to=envelope_to)
    about = "bob@example.org" if case is truncated else "ann@example.org"
    assert out.status in ("matched", "quarantined")
    if out.status == "matched":
        assert out.message == copies[about].message


class Table:
    """matching.Lookup over a list, for pure tests."""

    def __init__(self, *copies: SentCopy) -> None:
        self.copies = copies

    def by_id(self, message: int) -> SentCopy | None:
        return next((c for c in self.copies if c.id == message), None)

    def by_message_id(self, message_id: str) -> SentCopy | None:
        return next((c for c in self.copies if c.message_id == message_id), None)

    def by_envelope_id(self, envid: str) -> SentCopy | None:
        return next(
            (
                c
                for c in self.copies
                if c.message_id.strip("<>") == envid or c.message_id.startswith(f"<{envid}@")
            ),
            None,
        )

    def sent_to(self, address: str, since: float) -> list[SentCopy]:
        return [c for c in self.copies if c.recipient == address and (c.sent_at or 0) >= since]


KEYS = Keyring({1: b"s" * 32}, 1)
CTX = Context(KEYS, BOUNCE_DOMAIN, now=10 * 86400.0, window_seconds=7 * 86400.0)
ANN = SentCopy(1, 1, "<a1@b.example.com>", "ann@example.org", 9 * 86400.0)
ANN_OLD = SentCopy(2, 1, "<a0@b.example.com>", "ann@example.org", 1 * 86400.0)
BOB = SentCopy(3, 1, "<b1@b.example.com>", "bob@example.org", 9 * 86400.0)


def plain_bounce(recipient: str, extra: str = "") -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\n{extra}"
        "Content-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your "
        f"message could not be delivered.\r\n\r\n<{recipient}>: 550 5.1.1 user unknown\r\n"
    ).encode()


def test_recipient_window_matches_only_one_copy_within_the_window() -> None:
    found = match(reports.parse(plain_bounce("ann@example.org")), [], Table(ANN, ANN_OLD, BOB), CTX)
    assert isinstance(found, Match) and (found.copy, found.by) == (ANN, "recipient-window")
    two = Table(ANN, BOB, SentCopy(4, 2, "<a2@b>", "ann@example.org", 9.5 * 86400))
    ambiguous = match(reports.parse(plain_bounce("ann@example.org")), [], two, CTX)
    assert isinstance(ambiguous, NoMatch) and "2 copies" in ambiguous.reason


def test_references_tie_a_reply_to_its_copy() -> None:
    reply = (
        b"From: Ann <ann@example.org>\r\nSubject: Re: news\r\nIn-Reply-To: <zz@elsewhere>"
        b"\r\nReferences: <b1@b.example.com> <zz@elsewhere>\r\n\r\nThanks!\r\n"
    )
    report = reports.parse(reply)
    found = match(report, [], Table(ANN, BOB), CTX)
    assert report.kind == "reply"
    assert isinstance(found, Match) and (found.copy, found.by) == (BOB, "references")


def test_envid_local_part_and_verp_parsing() -> None:
    long_id = SentCopy(5, 1, "<" + "f" * 40 + "@" + "d" * 80 + ".example>", "bob@example.org")
    report = reports.parse(
        dsn(
            Copy("bob@example.org", 5, long_id.message_id, "", b"X: y\r\n"),
            "failed",
            "5.1.1",
            envid="f" * 40,
        )
    )
    found = match(report, [], Table(long_id), CTX)
    assert isinstance(found, Match) and found.by == "envid"
    assert verp_token("Bounces+abc@BOUNCE.example.com", BOUNCE_DOMAIN) == "abc"
    assert verp_token("bounces+abc@other.example", BOUNCE_DOMAIN) is None
    assert verp_token("news@bounce.example.com", BOUNCE_DOMAIN) is None
