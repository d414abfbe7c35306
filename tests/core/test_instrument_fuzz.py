"""instrument() on hostile input: a clear MimeError naming the problem, never another exception.

The four messages below were found by fuzzing (issue 7); the property test keeps
mutating a valid message the same way so that the next one is found here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbeacon.clock import FixedClock
from mailbeacon.core.instrument import Options, Recipient, instrument
from mailbeacon.core.tokens import Keyring
from mailbeacon.errors import MimeError

DATA = Path(__file__).parent.parent / "data" / "mime"
KEYRING = Keyring({1: b"k" * 32}, 1)
OPTIONS = Options(campaign=3, public_url="https://t.example.com")
HTML = b"<html><body><a href='https://example.com/x'>x</a></body></html>\r\n"
INNER_8BIT = (b"From: c@example.net\r\nContent-Type: multipart/mixed\r\n\r\nh\xe9llo\r\n")


def run(source: bytes) -> None:
    instrument(source, (Recipient("reader@example.org", 7),), OPTIONS, KEYRING, FixedClock())


FOUND = [
    (b"From: group:;x\r\nContent-Type: text/html\r\n\r\n" + HTML,
     "the From header cannot be read: 'group:;x'"),
    (b"From: a@example.com\r\nContent-Type: text/html; charset=iso2022jp\r\n\r\n\x1b",
     "a text/html part is not valid iso2022jp text (incomplete multibyte sequence)"),
    (b"From: a@example.com\r\nContent-Type: text/html; charset=\x00\r\n\r\n" + HTML,
     "a text/html part has unknown charset '\\x00'"),
    (b"From: a@example.com\r\nContent-Type: text/html; charset=base64\r\n\r\n" + HTML,
     "a text/html part has unknown charset 'base64'"),
    (b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=O"
     b"\r\n\r\n--O\r\nContent-Type: text/html\r\n\r\n" + HTML + b"--O\r\n"
     b"Content-Type: message/rfc822\r\n\r\n" + INNER_8BIT + b"--O--\r\n",
     "malformed MIME: a multipart/mixed part inside an attached message has no boundary "
     "parameter and holds 8-bit text that cannot be written back"),
]


@pytest.mark.parametrize(("source", "message"), FOUND)
def test_each_fuzzed_input_is_a_mime_error_naming_the_problem(source: bytes,
                                                              message: str) -> None:
    with pytest.raises(MimeError) as caught:
        run(source)
    assert str(caught.value) == message


SEEDS = [(DATA / name).read_bytes() for name in (
    "mixed-8bit-attachments.eml", "alternative-qp.eml", "latin1-8bit.eml",
    "related-inline-image.eml")]
# Bytes that change how a message parses: header syntax, MIME parameters, charsets,
# transfer encodings, boundaries, 8-bit and control bytes.
TOKENS = [b":", b";", b"\r\n", b"\n", b"\r\n\r\n", b"--", b"=", b'"', b"\x00", b"\x1b", b"\xe9",
          b"\xff", b"group:;", b"charset=", b"iso2022jp", b"utf-16", b"base64", b"\x00",
          b"boundary=", b"multipart/mixed", b"message/rfc822", b"Content-Type: ",
          b"Content-Transfer-Encoding: ", b"quoted-printable", b"=?utf-8?b?", b"?=", b"<", b">",
          b"@", b"=XX", b"From: "]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 12))
        data[at : at + cut] = draw(st.sampled_from(TOKENS) | st.binary(max_size=4))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_instrument_on_mutated_mail_raises_only_mime_error(source: bytes) -> None:
    try:
        run(source)
    except MimeError as exc:
        assert str(exc)  # a message a person can read
