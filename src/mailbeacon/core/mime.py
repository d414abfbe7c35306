"""Reading and writing MIME so that what we do not change comes out as it went in.

The email package's generator with ``POLICY`` writes raw headers and bodies
back as they came, so attachments, 8-bit bodies and encoded words survive byte
for byte; only line endings become CRLF. ``parse`` refuses what we cannot send
correctly, naming the problem.
"""

from __future__ import annotations

import binascii
import codecs
import io
import re
from collections.abc import Iterator
from email import errors as email_errors
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import TYPE_CHECKING

from mailbeacon.clock import Clock
from mailbeacon.errors import MimeError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


if TYPE_CHECKING:
    _EmailPolicy = EmailPolicy[EmailMessage]  # generic only in the stubs
else:
    _EmailPolicy = EmailPolicy


class SourcePolicy(_EmailPolicy):
    """The default policy, except that a header read from the source is written back
    exactly: the default drops the spacing after the colon and writes ": " instead."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = sourcelines[0].split(":", 1)
        return name, (value + "".join(sourcelines[1:])).rstrip("\r\n")

    def header_fetch_parse(self, name: str, value: str) -> str:
        if not hasattr(value, "name"):
            value = value.lstrip(" \t")
        try:
            return super().header_fetch_parse(name, value)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            # The stdlib's structured header parsers fail on some malformed values
            # (e.g. ``From: group:;x``) with internal errors instead of a defect.
            raise MimeError(f"the {name} header cannot be read: {value.strip()[:80]!r}") from exc

    def fold_binary(self, name: str, value: str) -> bytes:
        if hasattr(value, "name"):  # a header we set, not one from the source
            return super().fold_binary(name, value)
        lines = self.linesep.join(_LINE_BREAK.split(value))
        return f"{name}:{lines}{self.linesep}".encode("ascii", "surrogateescape")


POLICY = SourcePolicy(refold_source="none", cte_type="8bit", linesep="\r\n")
MAX_DEPTH = 50  # parts and attached messages inside each other; real mail uses 3 or 4
_TOO_DEEP = (f"malformed MIME: parts and attached messages nested deeper than {MAX_DEPTH} "
             "levels (the nesting limit)")
MAX_LINE_BYTES = 998  # RFC 5322 2.1.1, without the CRLF

_FATAL_DEFECTS: dict[type[email_errors.MessageDefect], str] = {
    email_errors.NoBoundaryInMultipartDefect: "has no boundary parameter",
    email_errors.StartBoundaryNotFoundDefect: "never uses its boundary",
    email_errors.CloseBoundaryNotFoundDefect: "has no closing boundary (truncated?)",
    email_errors.MultipartInvariantViolationDefect: "has no parts",
}


# --- parsing -----------------------------------------------------------------------------


def parse(source: bytes) -> EmailMessage:
    """Parse and reject what we cannot send correctly, naming the problem."""
    try:
        msg = BytesParser(policy=POLICY).parsebytes(source)
    except RecursionError:  # the stdlib parser recurses once per attached message
        raise MimeError(_TOO_DEEP) from None
    if not msg.keys():
        raise MimeError("not an email message: it does not begin with headers")
    if not str(msg.get("From", "")).strip():
        raise MimeError("the message has no From header")
    if _nesting(msg) > MAX_DEPTH:  # the generator recurses too: flatten() would crash
        raise MimeError(_TOO_DEEP)
    for part, _depth in _walk_depth(msg):
        kind = part.get_content_type()
        for defect in part.defects:
            problem = _FATAL_DEFECTS.get(type(defect))
            if problem is not None:
                raise MimeError(f"malformed MIME: a {kind} part {problem}")
        if part.get_content_maintype() == "multipart" and not part.get_boundary():
            raise MimeError(f"malformed MIME: a {kind} part has an empty boundary")
    return msg


def _nesting(msg: EmailMessage) -> int:
    """How deep parts nest, into attached messages (message/rfc822) too; iterative."""
    deepest, stack = 0, [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((p, depth + 1) for p in payload if isinstance(p, EmailMessage))
    return deepest


def walk(part: EmailMessage) -> Iterator[EmailMessage]:
    """Every part in document order, but not the insides of attached messages."""
    for found, _depth in _walk_depth(part):
        yield found


def _walk_depth(part: EmailMessage) -> Iterator[tuple[EmailMessage, int]]:
    stack = [(part, 0)]  # iterative: a hostile message can nest thousands deep
    while stack:
        found, depth = stack.pop()
        yield found, depth
        if found.get_content_maintype() == "multipart" and found.is_multipart():
            children = list(found.iter_parts())
            stack.extend((child, depth + 1) for child in reversed(children))


def is_body_part(part: EmailMessage) -> bool:
    return (
        part.get_content_type() in ("text/plain", "text/html")
        and part.get_content_disposition() != "attachment"
        and part.get_filename() is None
    )


def crlf(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def flatten(msg: EmailMessage) -> bytes:
    out = io.BytesIO()
    try:
        BytesGenerator(out, mangle_from_=False, policy=POLICY).flatten(msg)
    except UnicodeEncodeError as exc:
        # The generator writes a part it could not parse (a multipart without a
        # boundary, say) as text, which fails when that text is 8-bit. parse() refuses
        # such parts at the top; inside an attached message they reach us here.
        raise MimeError(f"malformed MIME: {_unwritable(msg)} and holds 8-bit text that "
                        "cannot be written back") from exc
    return out.getvalue()


def _unwritable(msg: EmailMessage) -> str:
    """Which part the generator choked on, as precisely as its defects say."""
    stack: list[EmailMessage] = [msg]
    while stack:  # iterative, into attached messages too (walk() stops at them)
        part = stack.pop()
        for defect in part.defects:
            problem = _FATAL_DEFECTS.get(type(defect))
            if problem is not None:
                return f"a {part.get_content_type()} part inside an attached message {problem}"
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(p for p in payload if isinstance(p, EmailMessage))
    return "a part inside an attached message is malformed"


def new_message_id(clock: Clock, domain: str) -> str:
    return f"<{clock.token_bytes(16).hex()}@{domain}>"


# --- decoding and encoding a text part ---------------------------------------------------


def transfer_encoding(part: EmailMessage) -> str:
    return str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()


def transfer_decode(part: EmailMessage, cte: str) -> bytes:
    if cte == "base64":
        # Stricter than the email package, which quietly drops what it cannot read.
        compact = "".join(str(part.get_payload()).split())
        compact += "=" * (-len(compact) % 4)  # some senders drop the padding; that is harmless
        try:
            return binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise MimeError(f"a {part.get_content_type()} part has undecodable base64") from exc
    if cte in ("quoted-printable", "7bit", "8bit", "binary"):
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    raise MimeError(f"a {part.get_content_type()} part has unknown transfer encoding {cte!r}")


def known_charset(charset: str) -> bool:
    """Whether ``charset`` names a text encoding Python has (not base64, rot13, ...)."""
    try:
        "".encode(codecs.lookup(charset).name)  # bytes-to-bytes codecs raise LookupError
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        return False
    return True


def decode_text(data: bytes, charset: str, kind: str) -> str:
    """The part's text; a body its own charset cannot read is an error naming both."""
    try:
        return data.decode(charset, "surrogateescape")
    except UnicodeError as exc:  # stateful codecs (ISO-2022) ignore the error handler
        reason = getattr(exc, "reason", str(exc))
        raise MimeError(f"a {kind} part is not valid {charset} text ({reason})") from exc


def canonical(text: str, charset: str) -> bytes:
    return text.replace("\n", "\r\n").encode(charset, "surrogateescape")


def encode_body(text: str, charset: str, cte: str) -> bytes:
    data = canonical(text, charset)
    if cte == "base64":
        encoded = binascii.b2a_base64(data, newline=False)
        return b"\r\n".join(encoded[n : n + 76] for n in range(0, len(encoded), 76))
    if cte == "quoted-printable":
        return binascii.b2a_qp(data, istext=True)
    return data


def qp_run(data: bytes) -> bytes:
    """Quoted-printable for a run of text that more text follows, ending in a soft break
    unless it ends a line, so runs encoded apart can simply be joined."""
    if not data:
        return b""
    out = binascii.b2a_qp(data, istext=True)
    if b"\r\n" not in data:
        out = out.replace(b"\n", b"\r\n")  # b2a_qp breaks with LF when it saw no CRLF
    if out.endswith(b"\r\n"):
        return out
    last_line = len(out) - (out.rfind(b"\n") + 1)
    if last_line < 76:
        return out + b"=\r\n"
    # The "=" would make a 77-character line: break earlier, not inside an =XX escape.
    cut = len(out) - 1
    if out[cut - 1] == ord("="):
        cut -= 1
    elif out[cut - 2] == ord("="):
        cut -= 2
    return out[:cut] + b"=\r\n" + out[cut:] + b"=\r\n"


def joins_safely(charset: str) -> bool:
    """Whether text encoded in pieces joins up to the same bytes (no BOMs, ASCII-based)."""
    try:
        return "".encode(charset) == b"" and "a=\r\n".encode(charset) == b"a=\r\n"
    except LookupError:
        return False


def needs_qp(data: bytes, cte: str) -> bool:
    """7bit and 8bit parts must keep lines within the SMTP limit (and 7bit within ASCII)."""
    if cte not in ("7bit", "8bit", "binary"):
        return False
    if cte == "7bit" and not data.isascii():
        return True
    return max(map(len, data.split(b"\r\n"))) > MAX_LINE_BYTES
