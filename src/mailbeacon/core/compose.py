"""New messages (``compose``) and attachments taken out for tracked downloads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage, Message, MIMEPart
from email.utils import format_datetime
from typing import NamedTuple

from mailbeacon.clock import Clock
from mailbeacon.core.mime import MAX_LINE_BYTES, POLICY, crlf, flatten, new_message_id, parse, walk


class Attachment(NamedTuple):
    filename: str
    content_type: str
    data: bytes


def _is_attachment(part: EmailMessage, in_related: bool) -> bool:
    if part.get_content_maintype() == "multipart":
        return False
    if part.get_content_disposition() == "attachment":
        return True
    if part.get_content_maintype() == "text" or part.get_filename() is None:
        return False
    # An image the HTML shows by cid: belongs to the body; offered as a download it
    # would leave a broken image behind.
    return not (in_related and "Content-ID" in part)


def _as_attachment(part: EmailMessage, number: int) -> Attachment:
    if part.get_content_maintype() == "message" and part.is_multipart():
        data = flatten(next(part.iter_parts()))  # type: ignore[arg-type]
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    filename = part.get_filename() or f"attachment-{number}"
    return Attachment(filename, part.get_content_type(), data)


def _remove_attachments(multipart: EmailMessage, removed: list[Attachment]) -> None:
    in_related = multipart.get_content_subtype() == "related"
    kept: list[Message | str] = []
    for child in multipart.iter_parts():
        assert isinstance(child, EmailMessage)
        if _is_attachment(child, in_related):
            removed.append(_as_attachment(child, len(removed) + 1))
            continue
        if child.get_content_maintype() == "multipart":
            _remove_attachments(child, removed)
            if not child.get_payload():
                continue  # nothing left in it; an empty multipart is not valid MIME
        kept.append(child)
    multipart.set_payload(kept)


def extract_attachments(source: bytes) -> tuple[bytes, list[Attachment]]:
    """Remove attachment parts (Content-Disposition: attachment, or non-text leaf parts with
    a filename); returns the message without them and the removed (filename, content_type,
    data) so the caller can store them and pass Downloads to instrument()."""
    msg = parse(source)
    removed: list[Attachment] = []
    if msg.get_content_maintype() == "multipart":
        _remove_attachments(msg, removed)
    if not removed:
        return crlf(source), []
    if not msg.get_payload():
        empty = MIMEPart(policy=POLICY)
        empty.set_content("\n")  # somewhere for instrument() to list the downloads
        msg.set_payload([empty])
    return flatten(msg), removed


def _text_cte(text: str) -> str:
    """Quoted-printable unless plain 7bit will do; 8bit would need relays with 8BITMIME."""
    if text.isascii() and all(len(line) <= MAX_LINE_BYTES for line in text.splitlines()):
        return "7bit"
    return "quoted-printable"


def compose(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    html: str | None,
    text: str | None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    clock: Clock,
    message_id_domain: str,
) -> bytes:
    """Build a new MIME message (multipart/alternative when both html and text;
    multipart/mixed with attachments), UTF-8, non-ASCII subject/names as RFC 2047 encoded
    words, Date header from clock."""
    if html is None and text is None:
        raise ValueError("compose() needs an html or a text body")
    if not to:
        raise ValueError("compose() needs at least one To address")
    msg = EmailMessage(policy=POLICY)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(clock.now(), UTC))
    msg["Message-ID"] = new_message_id(clock, message_id_domain)
    if text is not None:
        msg.set_content(text, cte=_text_cte(text))
    if html is not None and text is not None:
        msg.add_alternative(html, subtype="html", cte=_text_cte(html))
    elif html is not None:
        msg.set_content(html, subtype="html", cte=_text_cte(html))
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype, subtype or "octet-stream", filename=filename)
    for part in walk(msg):
        if part.get_content_maintype() == "multipart":
            # The email package draws boundaries from `random`; ours come from the clock.
            part.set_boundary(f"=_mb_{clock.token_bytes(12).hex()}")
    return flatten(msg)
