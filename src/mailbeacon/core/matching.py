"""Which copy a report is about: evidence in order of trust, or a reason why none.

1. ``verp``: the signed token in the address the report came to
   (``bounces+TOKEN@bounce-domain``); unforgeable, names one copy.
2. ``envid``: Original-Envelope-Id, our ENVID (the Message-ID without
   brackets, or its local part when too long).
3. ``original-message-id``: Original-Message-ID, or the Message-ID in the
   original headers the report returns; ``tracking-header``: the signed
   X-Mailbeacon-ID header among them.
4. ``in-reply-to``: In-Reply-To, then References (last first).
5. ``recipient-window``: the only copy sent to the named recipient within the
   match window.

Two pieces of evidence that name different copies make the report suspect:
it is quarantined, never matched to either. Except for the VERP token (which
the recipient's server chose as the return path, so aliases are fine) the
recipients a report names must include the address the copy was sent to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailbeacon.core.reports import RecipientReport, Report
from mailbeacon.core.tokens import Keyring, TokenKind, decode, decode_verp
from mailbeacon.errors import TokenError

VERP_PREFIX = "bounces+"
TRACKING_HEADER = "X-Mailbeacon-ID"


@dataclass(frozen=True)
class SentCopy:
    id: int
    campaign: int
    message_id: str
    recipient: str
    sent_at: float | None = None


class Lookup(Protocol):
    def by_id(self, message: int) -> SentCopy | None: ...

    def by_message_id(self, message_id: str) -> SentCopy | None: ...

    def by_envelope_id(self, envid: str) -> SentCopy | None: ...

    def sent_to(self, address: str, since: float) -> list[SentCopy]: ...


@dataclass(frozen=True)
class Match:
    copy: SentCopy
    by: str
    about: tuple[RecipientReport, ...]


@dataclass(frozen=True)
class NoMatch:
    reason: str


@dataclass(frozen=True)
class Context:
    keyring: Keyring
    bounce_domain: str
    now: float
    window_seconds: float


@dataclass
class _Evidence:
    found: list[tuple[str, SentCopy]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, by: str, copy: SentCopy | None) -> None:
        if copy is not None:
            self.found.append((by, copy))


def bracketed(message_id: str) -> str:
    bare = message_id.strip().strip("<>").strip()
    return f"<{bare}>" if bare else ""


def verp_token(address: str, bounce_domain: str) -> str | None:
    """The token of ``bounces+TOKEN@bounce_domain``; None for any other address."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if not local.lower().startswith(VERP_PREFIX):
        return None
    if bounce_domain and domain.lower() != bounce_domain.lower():
        return None
    return local[len(VERP_PREFIX) :]


def _verp(envelope_to: Sequence[str], lookup: Lookup, ctx: Context, ev: _Evidence) -> None:
    for address in envelope_to:
        token = verp_token(address, ctx.bounce_domain)
        if token is None:
            continue
        try:
            claims = decode_verp(token, ctx.keyring)
        except TokenError as exc:
            ev.notes.append(
                f"the return path {address} has a VERP token that fails verification ({exc})"
            )
            continue
        if claims.kind is not TokenKind.BOUNCE or not claims.message:
            ev.notes.append(f"the VERP token of {address} names no recipient copy")
            continue
        copy = lookup.by_id(claims.message)
        if copy is None or copy.campaign != claims.campaign:
            ev.notes.append(
                f"the VERP token of {address} names message {claims.message}, "
                "which is not in the store"
            )
        ev.add("verp", copy)


def _tracking_header(report: Report, lookup: Lookup, ctx: Context, ev: _Evidence) -> None:
    value = report.original_header(TRACKING_HEADER).strip()
    if not value:
        return
    try:
        claims = decode(value, ctx.keyring)
    except TokenError as exc:
        ev.notes.append(f"the {TRACKING_HEADER} header fails verification ({exc})")
        return
    if claims.kind is TokenKind.BOUNCE and claims.message:
        copy = lookup.by_id(claims.message)
        ev.add("tracking-header", copy if copy and copy.campaign == claims.campaign else None)


def _strong(report: Report, envelope_to: Sequence[str], lookup: Lookup, ctx: Context) -> _Evidence:
    ev = _Evidence()
    _verp(envelope_to, lookup, ctx, ev)
    if report.envelope_id.strip():
        ev.add("envid", lookup.by_envelope_id(report.envelope_id.strip()))
    for mid in (report.original_message_id, report.mdn.original_message_id if report.mdn else ""):
        if bracketed(mid):
            ev.add("original-message-id", lookup.by_message_id(bracketed(mid)))
    _tracking_header(report, lookup, ctx, ev)
    if bracketed(report.in_reply_to):
        ev.add("in-reply-to", lookup.by_message_id(bracketed(report.in_reply_to)))
    return ev


def named_recipients(report: Report) -> set[str]:
    names = {a for r in report.recipients for a in (r.recipient, r.original_recipient)}
    if report.mdn is not None:
        names |= {report.mdn.final_recipient, report.mdn.original_recipient}
    if report.feedback is not None:
        names |= set(report.feedback.original_rcpt_to)
    return {n.strip().lower() for n in names if n and "@" in n}


def _about(report: Report, copy: SentCopy, by: str) -> tuple[RecipientReport, ...]:
    mine = [
        r
        for r in report.recipients
        if copy.recipient in (r.recipient.lower(), r.original_recipient.lower())
    ]
    if not mine and by == "verp":
        mine = list(report.recipients)
    if not mine and report.kind == "bounce":
        mine = [RecipientReport(recipient=copy.recipient, action="failed")]
    return tuple(mine)


def _describe(by: str, copy: SentCopy) -> str:
    return f"{by} names message {copy.id} {copy.message_id} (sent to {copy.recipient})"


def match(
    report: Report, envelope_to: Sequence[str], lookup: Lookup, ctx: Context
) -> Match | NoMatch:
    """The copy ``report`` is about, or why it cannot be told."""
    if report.kind == "none":
        problem = "; ".join(report.errors) or "no report, bounce, receipt or reply found"
        return NoMatch(f"not recognised as a report ({problem})")
    ev = _strong(report, envelope_to, lookup, ctx)
    if not ev.found:
        for mid in reversed(report.references):
            ev.add("references", lookup.by_message_id(bracketed(mid)))
            if ev.found:
                break
    if not ev.found and ev.notes:  # a token that fails verification: trust nothing weaker
        return NoMatch("; ".join([*ev.notes, "not matched by its recipient alone"]))
    if not ev.found:
        return _by_recipient(report, lookup, ctx, ev.notes)
    by, copy = ev.found[0]
    others = [(b, c) for b, c in ev.found[1:] if c.id != copy.id]
    if others:
        clash = "; ".join(_describe(b, c) for b, c in [(by, copy), *others])
        return NoMatch(f"the evidence disagrees: {clash}")
    names = named_recipients(report)
    if (
        by != "verp"
        and names
        and copy.recipient not in names
        and report.kind not in ("reply", "autoreply")
    ):
        return NoMatch(
            f"the report is about {', '.join(sorted(names))} but {by} names "
            f"message {copy.id} {copy.message_id}, sent to {copy.recipient}"
        )
    about = _about(report, copy, by)
    if report.kind == "dsn" and not about:
        return NoMatch(
            f"{by} names message {copy.id} but no recipient block is about {copy.recipient}"
        )
    return Match(copy, by, about)


def _by_recipient(
    report: Report, lookup: Lookup, ctx: Context, notes: list[str]
) -> Match | NoMatch:
    names = named_recipients(report) if report.kind not in ("reply", "autoreply") else set()
    why = "; ".join(notes)
    if not names:
        return NoMatch(
            why
            or "nothing in it names a message we sent (no VERP address, "
            "envelope id, original Message-ID or In-Reply-To of ours)"
        )
    since = ctx.now - ctx.window_seconds
    found = {c.id: c for name in sorted(names) for c in lookup.sent_to(name, since)}
    if len(found) == 1:
        copy = next(iter(found.values()))
        return Match(copy, "recipient-window", _about(report, copy, "recipient-window"))
    days = round(ctx.window_seconds / 86400)
    count = "no copy" if not found else f"{len(found)} copies"
    return NoMatch(
        "; ".join(
            [
                *notes,
                f"no message id of ours in it, and {count} sent to "
                f"{', '.join(sorted(names))} in the last {days} days",
            ]
        )
    )
