"""What a sender asks a relay to report: the DSN parameters of RFC 3461.

    MAIL FROM:<bounces+tok@example.com> RET=HDRS ENVID=tok
    RCPT TO:<ann@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;ann@example.org

Values travel as xtext (RFC 3461 section 4): printable ASCII except `+` and `=`
as is, every other byte as `+XX`. A non-ASCII recipient's ORCPT uses the
`utf-8` address type of RFC 6533 instead. Pure functions: no sockets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailbeacon.errors import ConfigError

NOTIFY_WORDS = ("SUCCESS", "FAILURE", "DELAY")
NOTIFY_NEVER = "NEVER"
RET_VALUES = ("HDRS", "FULL")
ENVID_MAX_CHARS = 100  # RFC 3461 section 4.4, counted on the encoded value

Ret = Literal["HDRS", "FULL"]


@dataclass(frozen=True)
class DsnRequest:
    """Which reports to ask for (NOTIFY) and how much of the message they return (RET)."""

    notify: tuple[str, ...] = ("FAILURE", "DELAY")
    ret: Ret = "HDRS"

    def __post_init__(self) -> None:
        if self.notify != (NOTIFY_NEVER,) and not _is_notify_list(self.notify):
            raise ValueError(f"DSN notify {self.notify!r}: use NEVER alone or {NOTIFY_WORDS}")
        if self.ret not in RET_VALUES:
            raise ValueError(f"DSN ret {self.ret!r}: use HDRS or FULL")


def _is_notify_list(words: tuple[str, ...]) -> bool:
    return bool(words) and all(word in NOTIFY_WORDS for word in words)


def parse_notify(text: str) -> tuple[str, ...]:
    """`success,failure,delay` (any subset, any case) or `never` as a NOTIFY tuple."""
    words = {word.strip().upper() for word in text.split(",")}
    if words == {NOTIFY_NEVER}:
        return (NOTIFY_NEVER,)
    unknown = sorted(words - set(NOTIFY_WORDS))
    if unknown:
        raise ConfigError(
            f"Config 'notify' has value {text!r}: {', '.join(map(repr, unknown))} is not allowed. "
            "Use any of success, failure, delay separated by commas, or never alone."
        )
    return tuple(word for word in NOTIFY_WORDS if word in words)


def _is_xchar(byte: int) -> bool:
    return 33 <= byte <= 126 and byte not in b"+="


def xtext_encode(text: str) -> str:
    """RFC 3461 xtext: `+` -> `+2B`, `=` -> `+3D`, any byte outside 33..126 -> `+XX`."""
    return "".join(chr(b) if _is_xchar(b) else f"+{b:02X}" for b in text.encode("utf-8"))


def xtext_decode(xtext: str) -> str:
    """The inverse of xtext_encode; lenient about lower-case hex, strict about truncation."""
    out = bytearray()
    i = 0
    while i < len(xtext):
        if xtext[i] != "+":
            out += xtext[i].encode("utf-8")
            i += 1
            continue
        pair = xtext[i + 1 : i + 3]
        if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
            raise ValueError(f"xtext {xtext!r}: '+' at {i} is not followed by two hex digits")
        out.append(int(pair, 16))
        i += 3
    return out.decode("utf-8", errors="replace")


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 utf-8-addr-xtext: `+`, `=`, `\\`, controls and non-ASCII as `\\x{HEX}`."""
    return "".join(
        ch if ch.isascii() and _is_xchar(ord(ch)) and ch != "\\" else f"\\x{{{ord(ch):02X}}}"
        for ch in address
    )


def orcpt(address: str) -> str:
    """The ORCPT value naming the recipient as we were given it."""
    if address.isascii():
        return f"rfc822;{xtext_encode(address)}"
    return f"utf-8;{utf8_addr_xtext(address)}"


def envid_xtext(envid: str) -> str:
    """The ENVID value; an envelope id the RFC does not allow is a caller's bug."""
    if not envid or not all(33 <= ord(ch) <= 126 for ch in envid):
        raise ValueError(f"envelope id {envid!r}: RFC 3461 allows printable ASCII only")
    encoded = xtext_encode(envid)
    if len(encoded) > ENVID_MAX_CHARS:
        raise ValueError(
            f"envelope id {envid!r} is {len(encoded)} characters as xtext; "
            f"RFC 3461 allows at most {ENVID_MAX_CHARS}"
        )
    return encoded


def mail_params(dsn: DsnRequest, envid: str | None) -> list[str]:
    """DSN parameters for MAIL FROM."""
    params = [f"RET={dsn.ret}"]
    if envid is not None:
        params.append(f"ENVID={envid_xtext(envid)}")
    return params


def rcpt_params(dsn: DsnRequest, rcpt: str) -> list[str]:
    """DSN parameters for one RCPT TO."""
    return [f"NOTIFY={','.join(dsn.notify)}", f"ORCPT={orcpt(rcpt)}"]
