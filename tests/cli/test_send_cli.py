"""``send --eml`` with mail that fuzzing broke instrument() on: one clear line, no copy kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbeacon.cli.main import main
from mailbeacon.store.sql import SqlStore
from smtpserver import SmtpSink

HTML = b"<html><body><a href='https://example.com/x'>x</a></body></html>\r\n"
INNER_8BIT = b"From: c@example.net\r\nContent-Type: multipart/mixed\r\n\r\nh\xe9llo\r\n"
BROKEN = {
    "group": (b"From: group:;x\r\nContent-Type: text/html\r\n\r\n" + HTML,
              "the From header cannot be read: 'group:;x'"),
    "iso2022jp": (b"From: a@example.com\r\nContent-Type: text/html; charset=iso2022jp\r\n\r\n"
                  b"\x1b", "a text/html part is not valid iso2022jp text (incomplete multibyte "
                  "sequence)"),
    "nul-charset": (b"From: a@example.com\r\nContent-Type: text/html; charset=\x00\r\n\r\n"
                    + HTML, "a text/html part has unknown charset '\\x00'"),
    "rfc822": (b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
               b"boundary=O\r\n\r\n--O\r\nContent-Type: text/html\r\n\r\n" + HTML +
               b"--O\r\nContent-Type: message/rfc822\r\n\r\n" + INNER_8BIT + b"--O--\r\n",
               "malformed MIME: a multipart/mixed part inside an attached message has no "
               "boundary parameter and holds 8-bit text that cannot be written back"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_send_eml_names_the_problem(name: str, store: SqlStore, store_url: str, tmp_path: Path,
                                    smtp_sink: SmtpSink,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    source, problem = BROKEN[name]
    eml = tmp_path / "m.eml"
    eml.write_bytes(source)
    flags = ["--data-dir", str(tmp_path), "--db", store_url, "--smtp", smtp_sink.url]
    code = main(["send", *flags, "--from", "me@example.com", "--to", "you@example.org",
                 "--eml", str(eml)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == f"mailbeacon: error: {problem}\n"
    assert smtp_sink.messages == []
    assert main(["report", "--json", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["recipients"] == 0
