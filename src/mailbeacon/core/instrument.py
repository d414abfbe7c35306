"""A MIME message in, one tracked copy per recipient out.

instrument() parses the message once and turns it into a template: the bytes
every copy shares, with slots for what differs (the Message-ID, the tracking
header, and each text part we rewrite). A copy then costs a few token
signatures and some joins, not a parse and a serialisation.

Parts we do not rewrite are written back as they came (core/mime.py), so
attachments, 8-bit bodies and encoded words survive byte for byte; only line
endings become CRLF.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import quote

from mailbeacon.clock import Clock
from mailbeacon.core import html_links
from mailbeacon.core.compose import Attachment, compose, extract_attachments
from mailbeacon.core.html_links import Slot, Template
from mailbeacon.core.mime import (
    POLICY,
    canonical,
    crlf,
    decode_text,
    encode_body,
    flatten,
    is_body_part,
    joins_safely,
    known_charset,
    needs_qp,
    new_message_id,
    parse,
    qp_run,
    transfer_decode,
    transfer_encoding,
    walk,
)
from mailbeacon.core.tokens import Claims, Keyring, TokenKind, TrackLevel, encode, encode_verp
from mailbeacon.core.urls import click_url, download_url, pixel_url
from mailbeacon.errors import MimeError

__all__ = [  # compose and extract_attachments live in core/compose.py; kept importable here
    "Attachment",
    "Download",
    "Options",
    "Recipient",
    "TrackedCopy",
    "compose",
    "extract_attachments",
    "instrument",
]

PIXEL = (
    '<img src="{}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
)
HONEYPOT = (
    '<a href="{}" style="display:none;font-size:0;line-height:0;max-height:0;'
    'overflow:hidden;mso-hide:all" aria-hidden="true" tabindex="-1"></a>'
)
RECEIPT_HEADERS = ("Disposition-Notification-To",)
LEGACY_RECEIPT_HEADERS = ("Return-Receipt-To", "X-Confirm-Reading-To")
TRACKING_HEADER = "X-Mailbeacon-ID"
URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"  # kept as they are when a URL is percent-encoded


@dataclass(frozen=True)
class Recipient:
    address: str  # envelope recipient
    message: int  # row id of this recipient's copy in the store (0 when level is anonymous)


@dataclass(frozen=True)
class Download:
    """An attachment stored by mailbeacon, offered as a tracked link."""

    attachment_id: int
    filename: str
    size: int


@dataclass(frozen=True)
class Options:
    campaign: int
    public_url: str  # e.g. "https://t.example.com"
    level: TrackLevel = TrackLevel.IDENTIFIED
    bounce_domain: str | None = None  # VERP return path bounces+TOKEN@bounce_domain when set
    message_id_domain: str = "mailbeacon.invalid"
    receipt_to: str | None = None  # adds Disposition-Notification-To: <receipt_to>
    legacy_receipt_headers: bool = False  # also Return-Receipt-To and X-Confirm-Reading-To
    set_to_header: bool = False  # replace To: with this recipient's address (composed mail)
    downloads: tuple[Download, ...] = ()
    honeypot: bool = False  # add one invisible link (kind HONEYPOT) in the HTML part


@dataclass(frozen=True)
class TrackedCopy:
    recipient: str
    message_id: str  # "<...@message_id_domain>", unique per copy
    envelope_from: str | None  # VERP address, or None (caller uses the From address)
    data: bytes  # the whole message, CRLF line endings
    links: tuple[str, ...]  # original URLs in link-index order (index = position+1)


# --- a text part as a template -----------------------------------------------------------


@dataclass
class TextPart:
    part: EmailMessage
    is_html: bool
    charset: str
    cte: str
    text: str
    links: tuple[html_links.Link, ...]
    top: int  # where the pixel goes (HTML)
    bottom: int  # where a downloads list goes


@dataclass
class Rewrite:
    """A text part that changes, and the template its new text comes from."""

    part: TextPart
    template: Template[str]
    qp_literals: tuple[bytes, ...] | None = None  # the template's literals, encoded once

    def prepare(self) -> None:
        """Quoted-printable is slow to compute, so encode what every copy shares just once."""
        if self.part.cte == "quoted-printable" and joins_safely(self.part.charset):
            charset = self.part.charset
            self.qp_literals = tuple(
                qp_run(canonical(literal, charset)) for literal in self.template.literals
            )

    def encode(self, values: Mapping[Slot, str]) -> bytes:
        if self.qp_literals is None:
            return encode_body(self.template.render(values), self.part.charset, self.part.cte)
        pieces = [self.qp_literals[0]]
        for slot, literal in zip(self.template.slots, self.qp_literals[1:], strict=True):
            pieces.append(qp_run(canonical(values[slot], self.part.charset)))
            pieces.append(literal)
        return b"".join(pieces).removesuffix(b"=\r\n")


def _text_part(part: EmailMessage) -> TextPart:
    cte = transfer_encoding(part)
    data = transfer_decode(part, cte)
    charset = part.get_content_charset("us-ascii")
    # Links are ASCII, so an unknown charset still lets us look for them; it is an
    # error only if the part turns out to need changing.
    readable = charset if known_charset(charset) else "latin-1"
    text = decode_text(data, readable, part.get_content_type())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_type() == "text/html":
        scan = html_links.scan_html(text)
        return TextPart(part, True, charset, cte, text, scan.links, scan.top, scan.bottom)
    return TextPart(part, False, charset, cte, text, html_links.scan_text(text), 0, len(text))


def signable(url: str) -> str:
    """The URL as text a token can carry: bytes that no charset decoded (an 8-bit URL in a
    part that names none) are percent-encoded, as a browser would send them."""
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        return quote(url.encode("utf-8", "surrogateescape"), safe=URL_SAFE)
    return url


def _link_index(parts: Sequence[TextPart]) -> dict[str, int]:
    """Link numbers by first appearance, HTML parts first, so both alternatives agree."""
    index: dict[str, int] = {}
    for tp in sorted(parts, key=lambda tp: not tp.is_html):
        for link in tp.links:
            index.setdefault(link.url, len(index) + 1)
    return index


def _rewrites(
    parts: Sequence[TextPart], index: Mapping[str, int], options: Options
) -> list[Rewrite]:
    """Templates for the parts that change: those with links, the first HTML part (the
    pixel) and the last HTML and last plain part (the downloads list)."""
    htmls = [tp for tp in parts if tp.is_html]
    texts = [tp for tp in parts if not tp.is_html]
    if options.downloads and not parts:
        raise MimeError("the message has no text or HTML body to list the downloads in")
    labels = [html_links.download_label(d.filename, d.size) for d in options.downloads]
    listed_in = [tps[-1] for tps in (htmls, texts) if tps and labels]
    rewrites = []
    for tp in parts:
        pixel = tp is next(iter(htmls), None)
        listing = any(tp is listed for listed in listed_in)
        if not (tp.links or pixel or listing):
            continue
        if not known_charset(tp.charset):
            kind = tp.part.get_content_type()
            raise MimeError(f"a {kind} part has unknown charset {tp.charset!r}")
        edits = html_links.link_edits(tp.links, index, in_html=tp.is_html)
        if pixel:
            edits.append((tp.top, tp.top, [Slot("top")]))
        if listing:
            make_list = html_links.downloads_html if tp.is_html else html_links.downloads_text
            edits.append((tp.bottom, tp.bottom, make_list(labels, tp.charset)))
        rewrites.append(Rewrite(tp, html_links.splice(tp.text, edits)))
    return rewrites


# --- the per-copy plan -------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode()


@dataclass(frozen=True)
class Tracking:
    """The tokens one campaign writes into a copy, and where they go."""

    options: Options
    keyring: Keyring
    links: tuple[str, ...]  # link n is links[n - 1]

    def token(self, kind: TokenKind, message: int, link: int = 0, url: str = "") -> str:
        claims = Claims(kind, self.options.campaign, message, link, signable(url),
                        self.options.level)
        return encode(claims, self.keyring)

    def values(self, message: int) -> tuple[dict[Slot, str], dict[Slot, str]]:
        """What fills the text parts' slots for one copy: for HTML, and for plain text."""
        base = self.options.public_url
        text: dict[Slot, str] = {
            Slot("link", n): click_url(base, self.token(TokenKind.CLICK, message, n, url))
            for n, url in enumerate(self.links, 1)
        }
        for n, download in enumerate(self.options.downloads):
            token = self.token(TokenKind.DOWNLOAD, message, download.attachment_id)
            text[Slot("download", n)] = download_url(base, token)
        # Tokens are base64url, so only an odd public URL needs escaping at all.
        plain_base = html.escape(base) == base
        markup = dict(text) if plain_base else {k: html.escape(v) for k, v in text.items()}
        top = PIXEL.format(html.escape(pixel_url(base, self.token(TokenKind.OPEN, message))))
        if self.options.honeypot:
            trap = click_url(base, self.token(TokenKind.HONEYPOT, message, url=base))
            top += HONEYPOT.format(html.escape(trap))
        markup[Slot("top")] = top
        return markup, text

    def bodies(self, rewrites: Sequence[Rewrite], message: int) -> dict[Slot, bytes]:
        markup, text = self.values(message)
        return {
            Slot("part", n): rw.encode(markup if rw.part.is_html else text)
            for n, rw in enumerate(rewrites)
        }


def _fit_lines(rewrites: Sequence[Rewrite], tracking: Tracking, longest_message: int) -> None:
    """Switch 7bit/8bit parts to quoted-printable where a copy would break line limits.

    Tokens for the largest message id are the longest, so one trial decides for all.
    """
    if all(rw.part.cte not in ("7bit", "8bit", "binary") for rw in rewrites):
        return  # the trial costs a copy; skip it when nothing could need it
    for slot, data in tracking.bodies(rewrites, longest_message).items():
        tp = rewrites[slot.number].part
        if needs_qp(data, tp.cte):
            tp.cte = "quoted-printable"
            if "Content-Transfer-Encoding" in tp.part:
                tp.part.replace_header("Content-Transfer-Encoding", tp.cte)
            else:
                tp.part["Content-Transfer-Encoding"] = tp.cte


@dataclass
class Copier:
    """Everything instrument() works out once; copy() makes one recipient's message."""

    tracking: Tracking
    rewrites: list[Rewrite]  # in Slot("part", n) order
    skeleton: Template[bytes]  # the whole message, with slots for parts and headers
    _shared: dict[Slot, bytes] | None = None  # anonymous copies share their bodies

    def _bodies(self, message: int) -> dict[Slot, bytes]:
        if self._shared is not None:
            return self._shared
        bodies = self.tracking.bodies(self.rewrites, message)
        if self.tracking.options.level is TrackLevel.ANONYMOUS:
            self._shared = bodies
        return bodies

    def copy(self, recipient: Recipient, clock: Clock) -> TrackedCopy:
        options, keyring = self.tracking.options, self.tracking.keyring
        identified = options.level is TrackLevel.IDENTIFIED
        message = recipient.message if identified else 0
        values = dict(self._bodies(message))
        message_id = new_message_id(clock, options.message_id_domain)
        values[Slot("message-id")] = _header("Message-ID", message_id)
        if options.set_to_header:
            values[Slot("to")] = _header("To", recipient.address)
        envelope_from = None
        if identified:
            bounce = Claims(TokenKind.BOUNCE, options.campaign, message, level=options.level)
            values[Slot("tracking")] = _header(TRACKING_HEADER, encode(bounce, keyring))
            if options.bounce_domain:
                envelope_from = f"bounces+{encode_verp(bounce, keyring)}@{options.bounce_domain}"
        data = self.skeleton.render(values)
        return TrackedCopy(recipient.address, message_id, envelope_from, data, self.tracking.links)


# --- the shared bytes --------------------------------------------------------------------


def _marker(source: bytes) -> str:
    """A payload stand-in that cannot already be in the message."""
    marker = "\x00mailbeacon-part-"
    while marker.encode() in source:
        marker += "x"
    return marker


def _header_items(headers: Sequence[tuple[str, bytes]], options: Options) -> list[bytes | Slot]:
    """Top-level header lines, with slots for the per-copy ones in their original places."""
    per_copy = {"message-id": Slot("message-id")}
    if options.set_to_header:
        per_copy["to"] = Slot("to")
    names = RECEIPT_HEADERS + (LEGACY_RECEIPT_HEADERS if options.legacy_receipt_headers else ())
    receipts = names if options.receipt_to else ()
    dropped = {TRACKING_HEADER.lower()} | {name.lower() for name in receipts}
    items: list[bytes | Slot] = []
    placed: set[str] = set()
    for name, line in headers:
        key = name.lower()
        if key in per_copy and key not in placed:
            items.append(per_copy[key])
            placed.add(key)
        elif key not in per_copy and key not in dropped:
            items.append(line)
    items += [slot for key, slot in per_copy.items() if key not in placed]
    if options.level is TrackLevel.IDENTIFIED:
        items.append(Slot("tracking"))
    if options.receipt_to:
        address = options.receipt_to if "<" in options.receipt_to else f"<{options.receipt_to}>"
        items += [_header(name, address) for name in receipts]
    items.append(b"\r\n")
    return items


def _skeleton(
    msg: EmailMessage, rewrites: Sequence[Rewrite], options: Options, source: bytes
) -> Template[bytes]:
    marker = _marker(source)
    for n, rewrite in enumerate(rewrites):
        rewrite.part.part.set_payload(f"{marker}{n}\x00")
    headers = [(name, POLICY.fold_binary(name, value)) for name, value in msg.raw_items()]
    whole = flatten(msg)
    head = b"".join(line for _, line in headers) + b"\r\n"
    if not whole.startswith(head):
        raise AssertionError("the generator wrote the top-level headers unexpectedly")
    pieces = re.split(re.escape(marker.encode()) + rb"(\d+)\x00", whole[len(head) :])
    body: list[bytes | Slot] = [
        Slot("part", int(piece)) if n % 2 else piece for n, piece in enumerate(pieces)
    ]
    return Template.of([*_header_items(headers, options), *body], b"")


# --- the public functions ----------------------------------------------------------------


def _check(recipients: Sequence[Recipient], options: Options) -> None:
    if not recipients:
        raise ValueError("instrument() needs at least one recipient")
    if options.level is TrackLevel.IDENTIFIED:
        for recipient in recipients:
            if recipient.message <= 0:
                raise ValueError(f"identified copy for {recipient.address} has no message id")
    header_texts = [options.receipt_to, options.message_id_domain, options.bounce_domain]
    header_texts += [recipient.address for recipient in recipients]
    for text in header_texts:
        if text and ("\r" in text or "\n" in text):
            raise ValueError(f"{text!r} contains a line break and cannot go in a header")


def _untouched(
    source: bytes,
    msg: EmailMessage,
    recipients: Sequence[Recipient],
    options: Options,
    clock: Clock,
) -> list[TrackedCopy]:
    data = crlf(source)
    existing = " ".join(str(msg.get("Message-ID", "")).split())
    copies = []
    for recipient in recipients:
        if existing:
            copies.append(TrackedCopy(recipient.address, existing, None, data, ()))
        else:
            message_id = new_message_id(clock, options.message_id_domain)
            copy = _header("Message-ID", message_id) + data
            copies.append(TrackedCopy(recipient.address, message_id, None, copy, ()))
    return copies


def instrument(
    source: bytes,
    recipients: Sequence[Recipient],
    options: Options,
    keyring: Keyring,
    clock: Clock,
) -> list[TrackedCopy]:
    """One tracked copy of ``source`` per recipient (see the module docstring)."""
    _check(recipients, options)
    msg = parse(source)
    if options.level is TrackLevel.OFF:
        return _untouched(source, msg, recipients, options, clock)
    found = [_text_part(part) for part in walk(msg) if is_body_part(part)]
    index = _link_index(found)
    tracking = Tracking(options, keyring, tuple(signable(url) for url in index))
    rewrites = _rewrites(found, index, options)
    identified = options.level is TrackLevel.IDENTIFIED
    _fit_lines(rewrites, tracking, max(r.message for r in recipients) if identified else 0)
    if identified and len(recipients) > 1:
        for rewrite in rewrites:
            rewrite.prepare()  # pays off from the second copy; anonymous copies share one
    copier = Copier(tracking, rewrites, _skeleton(msg, rewrites, options, source))
    return [copier.copy(recipient, clock) for recipient in recipients]
