"""Sending tracked mail: compose a draft, store the copies, instrument them, hand them to
the relay.

The order keeps nothing unaccounted for: every recipient copy gets a row
(status ``queued``) before it is instrumented, so its tokens can name it; the
relay's answer for each copy is written with its event as soon as it comes.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from urllib.parse import urlsplit

from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.core import instrument as inst
from mailbeacon.core.events import Event, EventKind
from mailbeacon.core.mime import parse as parse_mime
from mailbeacon.core.reports.classify import classify
from mailbeacon.core.reports.records import RecipientReport
from mailbeacon.core.tokens import Keyring, TrackLevel
from mailbeacon.errors import MailbeaconError, MimeError
from mailbeacon.smtp.dsn import ENVID_MAX_CHARS, xtext_encode
from mailbeacon.smtp.relay import DsnRequest, Relay, SendResult, parse_notify, parse_relay_url
from mailbeacon.store import suppressions as suppression
from mailbeacon.store.sql import NewMessage, SqlStore

CHUNK = 200  # copies instrumented and held in memory at once


@dataclass(frozen=True)
class Outgoing:
    """What the user asked to send."""

    sender: str
    recipients: tuple[str, ...]
    source: bytes  # the message as composed or read from --eml
    subject: str = ""
    campaign: str = "default"
    level: TrackLevel = TrackLevel.IDENTIFIED
    receipt: bool = False
    legacy_receipt: bool = False
    dsn: DsnRequest = field(default_factory=DsnRequest)
    track_attachments: bool = False
    composed: bool = True  # True: To: is set per recipient
    include_suppressed: bool = False  # send to addresses on the suppression list too


@dataclass(frozen=True)
class Sent:
    recipient: str
    message_id: str
    status: str  # sent | bounced | deferred | suppressed
    code: int | None
    detail: str
    dsn: bool
    attempts: int

    def as_json(self) -> dict[str, object]:
        return {"recipient": self.recipient, "message_id": self.message_id,
                "status": self.status, "code": self.code, "detail": self.detail,
                "dsn_requested": self.dsn, "attempts": self.attempts}


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Draft:
    """A message as a person describes it: a body to compose (``html`` and/or ``text``, with
    attachments), or a whole message (``eml``) sent as it is, apart from instrumenting."""

    sender: str
    recipients: tuple[str, ...]
    subject: str = ""
    html: str | None = None
    text: str | None = None
    eml: bytes | None = None
    attachments: tuple[Attachment, ...] = ()
    campaign: str = "default"
    receipt: bool = False
    legacy_receipt: bool = False
    dsn: str = "failure,delay"  # success,failure,delay or never (RFC 3461 NOTIFY)
    track_attachments: bool = False
    include_suppressed: bool = False


def check_addresses(sender: str, recipients: Sequence[str]) -> None:
    """Refuse a sender that is not an email address or a recipient that is not a bare one."""
    if not parseaddr(sender)[1] or "@" not in parseaddr(sender)[1]:
        raise MailbeaconError(f"--from {sender!r} is not an email address")
    for address in recipients:
        if "@" not in address or parseaddr(address)[1] != address.strip():
            raise MailbeaconError(f"--to {address!r} is not a bare email address")


def outgoing(draft: Draft, *, config: Config, clock: Clock) -> Outgoing:
    """What ``draft`` sends: composed here unless it is a whole message already."""
    check_addresses(draft.sender, draft.recipients)
    if draft.eml is not None and (draft.attachments or draft.html or draft.text):
        raise MailbeaconError("a whole message (--eml) takes no body or attachments")
    dsn = DsnRequest(notify=parse_notify(draft.dsn))
    source = draft.eml if draft.eml is not None else compose(
        sender=draft.sender, to=draft.recipients, subject=draft.subject, html=draft.html,
        text=draft.text, attach=draft.attachments, clock=clock,
        domain=message_id_domain(config, draft.sender))
    return Outgoing(
        sender=draft.sender, recipients=draft.recipients, source=source,
        subject="" if draft.eml is not None else draft.subject, campaign=draft.campaign,
        level=TrackLevel(config.track), receipt=draft.receipt,
        legacy_receipt=draft.legacy_receipt, dsn=dsn, track_attachments=draft.track_attachments,
        composed=draft.eml is None, include_suppressed=draft.include_suppressed)


def send_draft(draft: Draft, *, config: Config, store: SqlStore, keyring: Keyring,
               clock: Clock, relay: Relay | None = None) -> list[Sent]:
    """Compose ``draft`` and send one copy per recipient (see ``send``)."""
    return send(outgoing(draft, config=config, clock=clock), config=config, store=store,
                keyring=keyring, clock=clock, relay=relay)


def all_sent(results: Sequence[Sent]) -> bool:
    """True when the relay accepted every copy (none bounced, deferred or suppressed)."""
    return all(r.status == "sent" for r in results)


def compose(*, sender: str, to: Sequence[str], subject: str, html: str | None,
            text: str | None, attach: Sequence[Attachment], clock: Clock,
            domain: str) -> bytes:
    files = [(a.filename, mimetypes.guess_type(a.filename)[0] or "application/octet-stream",
              a.data) for a in attach]
    return inst.compose(sender=sender, to=to, subject=subject, html=html, text=text,
                        attachments=files, clock=clock, message_id_domain=domain)


def message_id_domain(config: Config, sender: str) -> str:
    if config.bounce_domain:
        return str(config.bounce_domain)
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain or urlsplit(config.public_url).hostname or "mailbeacon.invalid"


def send(out: Outgoing, *, config: Config, store: SqlStore, keyring: Keyring,
         clock: Clock, relay: Relay | None = None) -> list[Sent]:
    """Send one copy per recipient; returns the relay's answer for each."""
    if not out.recipients:
        raise MimeError("no recipients: give at least one --to")
    skipped = {} if out.include_suppressed else suppression.suppressed(store, out.recipients)
    if skipped:  # the suppression list (docs/inbound.md): no copy, a "suppressed" result
        rest = tuple(r for r in out.recipients if r not in skipped)
        done = iter(send(replace(out, recipients=rest, include_suppressed=True), config=config,
                         store=store, keyring=keyring, clock=clock, relay=relay) if rest else [])
        return [Sent(r, "", "suppressed", None, skipped[r], False, 0) if r in skipped
                else next(done) for r in out.recipients]
    parse_mime(out.source)  # a message we cannot send is refused before anything is made
    own = relay is None  # and so is a relay URL we cannot use: no phantom "queued" copy
    relay = relay or Relay(parse_relay_url(config.smtp), attempts=config.send_attempts,
                           backoff=config.send_backoff)
    now = clock.now()
    campaign = store.campaign(out.campaign, now)
    source = out.source
    downloads: tuple[inst.Download, ...] = ()
    if out.track_attachments and out.level is not TrackLevel.OFF:
        source, downloads = _store_attachments(source, store, now)
    envelope_sender = parseaddr(out.sender)[1] or out.sender
    ids = store.add_messages([NewMessage(campaign, envelope_sender, r, out.subject,
                                         out.level.value) for r in out.recipients], now)
    options = inst.Options(
        campaign=campaign, public_url=config.public_url, level=out.level,
        bounce_domain=config.bounce_domain or None,
        message_id_domain=message_id_domain(config, out.sender),
        receipt_to=envelope_sender if out.receipt else None,
        legacy_receipt_headers=out.legacy_receipt, set_to_header=out.composed,
        downloads=downloads, honeypot=bool(config.honeypot),
    )
    recipients = [inst.Recipient(r, i if out.level is TrackLevel.IDENTIFIED else 0)
                  for r, i in zip(out.recipients, ids, strict=True)]
    results: list[Sent] = []
    try:
        if own:
            relay.__enter__()
        # A chunk at a time: a 50,000-recipient newsletter is never all in memory.
        for start in range(0, len(recipients), CHUNK):
            part, part_ids = recipients[start:start + CHUNK], ids[start:start + CHUNK]
            copies = inst.instrument(source, part, options, keyring, clock)
            store.set_prepared_many([(m, c.message_id, c.links)
                                     for m, c in zip(part_ids, copies, strict=True)])
            for copy, message in zip(copies, part_ids, strict=True):
                answer = relay.send(copy.envelope_from or envelope_sender, copy.recipient,
                                    copy.data, envid=envelope_id(copy.message_id), dsn=out.dsn)
                results.append(_record(store, clock, campaign, message, copy, answer))
    except BaseException:
        store.discard_queued(ids)  # copies never handed to the relay leave no trace
        raise
    finally:
        if own:
            relay.__exit__(None, None, None)
    return results


def envelope_id(message_id: str) -> str:
    """The ENVID for a copy: its Message-ID without brackets, or only the (unique) local
    part when the whole would exceed RFC 3461's 100 characters as xtext."""
    bare = "".join(ch for ch in message_id.strip().strip("<>") if 33 <= ord(ch) <= 126)
    if len(xtext_encode(bare)) <= ENVID_MAX_CHARS:
        return bare
    local = bare.partition("@")[0]
    while len(xtext_encode(local)) > ENVID_MAX_CHARS:
        local = local[:-1]
    return local


_KIND = {"sent": EventKind.SENT, "bounced": EventKind.BOUNCED, "deferred": EventKind.DEFERRED}


def _record(store: SqlStore, clock: Clock, campaign: int, message: int,
            copy: inst.TrackedCopy, answer: SendResult) -> Sent:
    detail: dict[str, object] = {
        "code": answer.code, "message": answer.message, "dsn_requested": answer.dsn,
        "attempts": answer.attempts, "message_id": copy.message_id}
    refusal = _refusal(copy.recipient, answer)
    if refusal is not None:
        detail.update(reason=refusal.reason, hard=refusal.hard, status=refusal.status)
    event = Event(_KIND[answer.status], clock.now(), campaign, message, detail=detail)
    store.record_send(message, event, code=answer.code, detail=answer.message, dsn=answer.dsn)
    if refusal is not None and refusal.hard:  # one hard bounce is enough (docs/inbound.md)
        suppression.suppress(store, copy.recipient, f"{refusal.reason}: {answer.message}",
                             at=event.at, source="hard-bounce")
    return Sent(copy.recipient, copy.message_id, answer.status, answer.code, answer.message,
                answer.dsn, answer.attempts)


def _refusal(recipient: str, answer: SendResult) -> RecipientReport | None:
    """A 5xx at send time, classified like a bounce report would be."""
    if answer.status != "bounced" or answer.code is None or answer.code // 100 != 5:
        return None
    return classify(RecipientReport(
        recipient=recipient, action="failed", diagnostic=f"{answer.code} {answer.message}",
        diagnostic_type="smtp", replycode=str(answer.code)))


def _store_attachments(source: bytes, store: SqlStore,
                       now: float) -> tuple[bytes, tuple[inst.Download, ...]]:
    stripped, found = inst.extract_attachments(source)
    downloads = []
    for attachment in found:
        aid = store.put_attachment(attachment.filename, attachment.content_type,
                                   attachment.data, now)
        downloads.append(inst.Download(aid, attachment.filename, len(attachment.data)))
    return stripped, tuple(downloads)
