"""One path for everything that comes back, whatever brought it (SMTP, LMTP, IMAP, a file).

    raw bytes -> kept in the store (committed) -> parsed -> matched to a copy
              -> events (+ suppression)   or   quarantine with the reason

Keeping comes first, so a message the parser or the matcher chokes on is
still there to be re-matched (``mailbeacon inbound quarantine rematch``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.core import reports
from mailbeacon.core.delivery import events_for
from mailbeacon.core.events import Event, EventKind
from mailbeacon.core.matching import Context, Match, SentCopy, match
from mailbeacon.core.reports import mime
from mailbeacon.core.tokens import Keyring
from mailbeacon.store import inbound as db
from mailbeacon.store.sql import SqlStore

log = logging.getLogger("mailbeacon.inbound")
DAY = 86400.0
# Headers an MTA adds when it delivers to a mailbox: the envelope recipient,
# which for a bounce domain delivered to IMAP is the VERP address.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


@dataclass(frozen=True)
class Outcome:
    inbound: int
    status: str  # matched | quarantined | duplicate
    kind: str
    reason: str = ""
    message: int | None = None
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    store: SqlStore
    keyring: Keyring
    clock: Clock
    bounce_domain: str = ""
    match_window_days: int = 30
    soft_bounce_limit: int = 3
    soft_bounce_days: int = 7

    @classmethod
    def from_config(
        cls, config: Config, store: SqlStore, keyring: Keyring, clock: Clock
    ) -> Pipeline:
        return cls(
            store,
            keyring,
            clock,
            config.bounce_domain or "",
            config.match_window,
            config.soft_bounce_limit,
            config.soft_bounce_days,
        )

    def receive(
        self, raw: bytes, *, source: str, envelope_from: str = "", envelope_to: Sequence[str] = ()
    ) -> Outcome:
        """Keep ``raw``, then make what can be made of it. Raises only if it cannot be kept."""
        inbound_id = db.save(
            self.store,
            raw,
            source=source,
            at=self.clock.now(),
            envelope_from=envelope_from,
            envelope_to=envelope_to,
            header_message_id=header_message_id(raw),
        )
        return self.process(inbound_id)

    def process(self, inbound_id: int) -> Outcome:
        """Parse and match one kept message; a failure here quarantines it, never loses it."""
        row = db.get(self.store, inbound_id)
        if row is None:
            raise LookupError(f"no inbound message {inbound_id}")
        try:
            return self._process(
                inbound_id, row.raw, row.envelope_to, rematch=row.status != "received"
            )
        except Exception as exc:  # a bug must not lose the message: it waits in quarantine
            log.exception("inbound message %s could not be processed", inbound_id)
            reason = f"could not be processed: {type(exc).__name__}: {exc}"[:500]
            db.settle(
                self.store,
                inbound_id,
                status="quarantined",
                kind="",
                reason=reason,
                at=self.clock.now(),
            )
            return Outcome(inbound_id, "quarantined", "", reason)

    def _process(
        self, inbound_id: int, raw: bytes, envelope_to: Sequence[str], rematch: bool
    ) -> Outcome:
        now = self.clock.now()
        report = reports.parse(raw)
        sha, header_id = db.sha_of(self.store, inbound_id)
        if not rematch:  # the common case early; parallel copies are left to the key
            earlier = db.duplicate_of(self.store, inbound_id, sha, header_id)
            if earlier is not None:
                reason = f"the same message as inbound {earlier}"
                db.settle(
                    self.store,
                    inbound_id,
                    status="duplicate",
                    kind=report.kind,
                    reason=reason,
                    at=now,
                )
                return Outcome(inbound_id, "duplicate", report.kind, reason)
        recipients = [*envelope_to, *_delivered_to(raw)]
        ctx = Context(self.keyring, self.bounce_domain, now, self.match_window_days * DAY)
        found = match(report, recipients, db.SqlLookup(self.store), ctx)
        if not isinstance(found, Match):
            db.settle(
                self.store,
                inbound_id,
                status="quarantined",
                kind=report.kind,
                reason=found.reason,
                at=now,
            )
            return Outcome(inbound_id, "quarantined", report.kind, found.reason)
        copy = found.copy
        new = report_keys(
            events_for(
                report,
                found.about,
                at=now,
                campaign=copy.campaign,
                message=copy.id,
                inbound=inbound_id,
                matched_by=found.by,
            ),
            report=f"mid:{header_id}" if header_id else f"sha256:{sha}",
            copy=copy.id,
        )
        done = db.record_matched(
            self.store,
            inbound_id,
            kind=report.kind,
            at=now,
            matched_by=found.by,
            copy=copy,
            new_events=new,
            suppressions_for=lambda inserted, soft: self._suppressions(copy, inserted, now, soft),
        )
        if done.duplicate:
            return Outcome(inbound_id, "duplicate", report.kind, done.reason, copy.id)
        return Outcome(
            inbound_id, "matched", report.kind, "", copy.id,
            tuple(str(e.kind) for e in done.inserted),
        )  # fmt: skip

    def _suppressions(
        self, copy: SentCopy, inserted: Sequence[Event], now: float, soft_bounces: db.SoftBounces
    ) -> list[tuple[str, str, str]]:
        """What the events just inserted put on the suppression list. ``soft_bounces`` counts
        in the same transaction, this report's own bounce included."""
        out = []
        for e in inserted:
            d = e.detail
            if e.kind is EventKind.BOUNCED and d.get("hard"):
                out.append((copy.recipient, _bounce_words("hard bounce", d), "hard-bounce"))
            elif e.kind is EventKind.BOUNCED:
                since = now - self.soft_bounce_days * DAY
                soft = soft_bounces(copy.recipient, since)
                if soft >= self.soft_bounce_limit:
                    why = _bounce_words(f"{soft} soft bounces in {self.soft_bounce_days} days", d)
                    out.append((copy.recipient, why, "soft-bounces"))
            elif e.kind is EventKind.COMPLAINED and d.get("feedback_type") != "not-spam":
                out.append(
                    (
                        copy.recipient,
                        f"complaint ({d.get('feedback_type') or 'abuse'})",
                        "complaint",
                    )
                )
        return out

    def rematch(self, ids: Sequence[int] | None = None) -> list[Outcome]:
        """Try quarantined messages again (all of them, or ``ids``)."""
        if ids is None:
            ids = [r.id for r in db.listing(self.store, "quarantined", limit=100_000)]
        rows = [db.get(self.store, i) for i in ids]
        return [self.process(r.id) for r in rows if r is not None and r.status == "quarantined"]


def report_keys(new: Sequence[Event], *, report: str, copy: int) -> list[Event]:
    """``new`` with idempotency keys: the report (its Message-ID, else the sha256 of its
    bytes), the copy, the kind, and a count when one kind comes twice for one copy.

    The report is hashed so a long Message-ID fits the column; the copy and kind stay
    readable. Two deliveries of one report make the same keys, whatever brought them.
    """
    digest = hashlib.sha256(report.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    seen: dict[str, int] = {}
    out = []
    for e in new:
        n = seen.get(str(e.kind), 0)
        seen[str(e.kind)] = n + 1
        suffix = f":{n}" if n else ""
        out.append(replace(e, key=f"report:{digest}:{copy}:{e.kind}{suffix}"))
    return out


def _bounce_words(what: str, detail: dict[str, object]) -> str:
    parts = [str(detail.get(k, "")) for k in ("status", "reason")]
    return f"{what}: {' '.join(p for p in parts if p)}".rstrip(": ")


def header_message_id(raw: bytes) -> str:
    try:
        return mime.header(mime.load(raw[:65536]), "Message-ID").strip()
    except Exception:
        return ""


def _delivered_to(raw: bytes) -> list[str]:
    """Envelope recipients an MTA wrote into the message when it delivered it to a mailbox."""
    try:
        msg = mime.load(raw[:65536])
        return [
            a
            for name in ENVELOPE_HEADERS
            for v in (msg.get_all(name) or [])
            for a in mime.addresses(str(v))
        ]
    except Exception:
        return []
