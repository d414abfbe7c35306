"""MIME plumbing shared by the report parsers: tolerant, bounded, never raising.

Bounces are written by every kind of software, so nothing here trusts the
input: charsets may be unknown, encodings wrong, and parts truncated. Every
helper returns something usable ("" or []) instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.header
import email.parser
import email.policy
import quopri
import re
from collections.abc import Iterator
from email.message import Message

from mailbeacon.core.reports.records import Header

MAX_INPUT = 4 * 1024 * 1024  # a bounce carrying the whole original is rarely bigger
MAX_PARTS = 200  # a report has 2-4 parts; beyond this it is not one
MAX_TEXT = 256 * 1024  # the human-readable part of a bounce is short
MAX_DEPTH = 8

_FIELD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)[ \t]*:[ \t]*(.*)$")
# The lookbehind makes a match start only where an address can start: without it a
# long run of address characters is rescanned from every position (quadratic).
_ADDR = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+",
                   re.ASCII)
_ANGLE = re.compile(r"<([^<>@\s]+@[^<>\s]+)>")


def load(data: bytes) -> Message:
    """Parse bytes as a message, keeping at most MAX_INPUT of them."""
    msg = email.message_from_bytes(data[:MAX_INPUT], policy=email.policy.compat32)
    return _repair_boundary(msg)


def _repair_boundary(msg: Message) -> Message:
    """Re-read a multipart whose declared boundary appears nowhere in its body.

    Some servers declare one boundary and write another; the body still shows
    the real one as a "--token" line followed by part headers.
    """
    if not is_broken_multipart(msg):
        return msg
    payload = str(msg.get_payload())
    m = re.search(r"^--([^\s]{1,70})[ \t]*\r?\n(?:Content-[\w-]+:)", payload, re.M | re.I)
    if not m:
        return msg
    try:
        msg.set_param("boundary", m.group(1))
        return email.message_from_string(msg.as_string(), policy=email.policy.compat32)
    except Exception:
        return msg


def is_broken_multipart(part: Message) -> bool:
    """A multipart whose parts could not be found: its body is one string."""
    return part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), str)


def header(msg: Message, name: str) -> str:
    """One header, RFC 2047 words decoded and unfolded; "" when absent or broken."""
    try:
        raw = msg.get(name)
    except Exception:
        return ""
    return decode_words(raw) if raw is not None else ""


MAX_HEADER = 2048  # decoding encoded words is slow on huge values; real ones are short


def decode_words(raw: object) -> str:
    text = str(raw)[:MAX_HEADER]
    if "=?" in text:
        try:
            text = str(email.header.make_header(email.header.decode_header(text)))
        except Exception:  # an unknown charset or broken word: keep the raw text
            return unfold(text)
    return unfold(text)


def unfold(text: str) -> str:
    return re.sub(r"\s*\r?\n[ \t]+", " ", text).strip()


def walk(msg: Message, *, attached: bool = True) -> Iterator[Message]:
    """Every part depth-first, bounded; ``attached=False`` skips message/* insides."""
    count = 0
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and count < MAX_PARTS:
        part, depth = stack.pop()
        count += 1
        yield part
        payload = part.get_payload()
        if isinstance(payload, list) and depth < MAX_DEPTH:
            ctype = part.get_content_type()
            if ctype == "message/delivery-status":
                continue
            if not attached and ctype.startswith("message/") and depth > 0:
                continue  # its "parts" are field blocks, not MIME entities
            subs = [p for p in payload if isinstance(p, Message)]
            stack.extend((p, depth + 1) for p in reversed(subs))


def charset_of(part: Message) -> str:
    try:
        name = part.get_content_charset() or "utf-8"
        codecs.lookup(name)
        return name
    except (LookupError, ValueError, TypeError):
        return "utf-8"


def decode_bytes(raw: bytes, charset: str = "utf-8") -> str:
    for name in (charset, "utf-8"):
        try:
            return raw.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("latin-1")


def text_of(part: Message) -> str:
    """A leaf part's text, transfer-decoded and charset-decoded, bounded."""
    try:
        payload = part.get_payload()
        if isinstance(payload, list):
            return blocks_text(part)
        if is_broken_multipart(part):
            return str(payload)[:MAX_TEXT]
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            raw = str(payload).encode("utf-8", "replace")
    except Exception:
        return ""
    return decode_bytes(raw[:MAX_TEXT], charset_of(part))


def blocks_text(part: Message) -> str:
    """The text of a message/* part that Python parsed into header blocks.

    The parser splits message/delivery-status (and anything it takes for a
    message) into pseudo-messages, ignoring Content-Transfer-Encoding; put the
    lines back together and undo the encoding ourselves.
    """
    chunks: list[str] = []
    for block in part.get_payload():
        if not isinstance(block, Message):
            continue
        lines = [f"{k}: {v}" for k, v in block.items()]
        body = block.get_payload()
        if isinstance(body, str) and body.strip():
            lines.append(body)
        elif isinstance(body, list):
            lines.append(blocks_text(block))
        chunks.append("\n".join(lines))
    text = "\n\n".join(chunks)
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    return transfer_decode(text, cte, charset_of(part))


def transfer_decode(text: str, cte: str, charset: str = "utf-8") -> str:
    try:
        if cte == "base64":
            return decode_bytes(base64.b64decode(re.sub(r"\s+", "", text) + "=="), charset)
        if cte == "quoted-printable":
            return decode_bytes(quopri.decodestring(text.encode("utf-8", "replace")), charset)
    except (binascii.Error, ValueError):
        return text
    return text


def field_blocks(text: str) -> list[list[Header]]:
    """RFC 822 style "Name: value" groups separated by blank lines, unfolded."""
    blocks: list[list[Header]] = []
    current: list[Header] = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[0] in " \t" and current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        m = _FIELD.match(line)
        if m:
            current.append((m.group(1), m.group(2).strip()))
    if current:
        blocks.append(current)
    return blocks


def headers_of(text: str) -> list[Header]:
    """The header section of a message given as text (text/rfc822-headers)."""
    try:
        parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
    except Exception:
        return []
    return [(k, decode_words(v)) for k, v in parsed.items()]


def addresses(text: str) -> list[str]:
    """Email addresses in order of appearance, angle-bracketed ones first found."""
    found = [m.group(1) for m in _ANGLE.finditer(text)] or _ADDR.findall(text)
    return [a.strip(".,;:'\"()[]") for a in found]


def address_in(value: str) -> str:
    """The address in a field such as "rfc822; <a@b>" or "Name <a@b>"."""
    if ";" in value:
        value = value.split(";", 1)[1]
    found = addresses(value)
    if found:
        return found[0]
    return value.strip().strip("<>").strip()


def body_text(msg: Message, *, attached: bool = False) -> str:
    """The readable text of a message: its text/plain (or HTML) parts."""
    texts: list[str] = []
    for part in walk(msg, attached=attached):
        ctype = part.get_content_type()
        broken = is_broken_multipart(part)
        if broken or (ctype in ("text/plain", "text/html") and not part.is_multipart()):
            texts.append(text_of(part))
            if sum(len(t) for t in texts) > MAX_TEXT:
                break
    return "\n".join(texts)
