"""End to end: send through a real SMTP server, take the copies apart, hit their
pixels and links over real HTTP, and read the report. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from mailbeacon.cli.main import main
from serverproc import ServerProcess
from smtpserver import SmtpSink

HTML = """<!doctype html><html><head><title>Spring</title></head>
<body><h1>Grüße aus Köln</h1>
<p><a href="https://example.com/offer?x=1&amp;y=2">the offer</a>,
<a href='https://example.org/blog'>our blog</a>, <a href="mailto:hi@example.com">write</a>,
<a href="#top">top</a>.</p></body></html>"""
TEXT = "Grüße!\nThe offer: https://example.com/offer?x=1&y=2\nBlog: https://example.org/blog.\n"


@pytest.fixture
def setup(tmp_path: Path, store_url: str) -> Iterator[tuple[ServerProcess, SmtpSink, list[str]]]:
    (tmp_path / "body.html").write_text(HTML, encoding="utf-8")
    (tmp_path / "body.txt").write_text(TEXT, encoding="utf-8")
    with SmtpSink(dsn=True) as sink, ServerProcess(tmp_path / "data", store_url) as server:
        common = ["--data-dir", str(server.data_dir), "--db", store_url,
                  "--public-url", server.url, "--smtp", sink.url, "--send-backoff", "0"]
        yield server, sink, common


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def _parts(raw: bytes) -> tuple[EmailMessage, str, str]:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return msg, html, text


def test_send_open_click_report(setup: tuple[ServerProcess, SmtpSink, list[str]],
                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _server, sink, common = setup
    code, out = _cli(capsys, "send", *common, "--from", "Sales Team <sales@example.com>",
                     "--to", "ann@example.net", "--to", "bob@example.net",
                     "--to", "cyd@example.net", "--subject", "Frühling ist da",
                     "--html", str(tmp_path / "body.html"), "--text-alt",
                     str(tmp_path / "body.txt"), "--campaign", "spring", "--receipt",
                     "--json")
    assert code == 0, out
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["recipient"] for r in results] == ["ann@example.net", "bob@example.net",
                                                  "cyd@example.net"]
    assert all(r["status"] == "sent" and r["dsn_requested"] for r in results)
    received = sink.wait_for(3)
    copies = {}
    for envelope, result in zip(received, results, strict=True):
        [rcpt] = envelope.rcpt_tos
        msg, html, text = _parts(envelope.data)
        assert msg["Message-ID"] == result["message_id"]
        assert str(msg["Subject"]) == "Frühling ist da"
        assert msg["To"] == rcpt and msg["Disposition-Notification-To"]
        # DSN asked of the relay: RET/ENVID at MAIL, NOTIFY/ORCPT per recipient.
        assert "RET=HDRS" in envelope.mail_options
        assert any(o.startswith("ENVID=") for o in envelope.mail_options)
        assert envelope.rcpt_options[0] == ["NOTIFY=FAILURE,DELAY", f"ORCPT=rfc822;{rcpt}"]
        pixels = re.findall(r'<img src="([^"]+/o/[^"]+\.gif)"', html)
        assert len(pixels) == 1 and html.index(pixels[0]) < html.index("Grüße aus Köln")
        links = re.findall(r'href="(http[^"]+/c/[^"]+)"', html)
        assert len(links) == 2 and "mailto:hi@example.com" in html and 'href="#top"' in html
        assert len(re.findall(r"http\S+/c/\S+", text)) == 2 and "Grüße" in text
        copies[rcpt] = (pixels[0], links)
    assert len({p for p, _ in copies.values()}) == 3  # a pixel per recipient

    ann_pixel, ann_links = copies["ann@example.net"]
    for _ in range(2):
        assert httpx.get(ann_pixel).status_code == 200
    first = httpx.get(ann_links[0])
    assert first.status_code == 302
    assert first.headers["location"] == "https://example.com/offer?x=1&y=2"
    bob_links = copies["bob@example.net"][1]
    assert httpx.get(bob_links[1]).headers["location"] == "https://example.org/blog"

    code, out = _cli(capsys, "report", *common, "--campaign", "spring", "--json")
    report = json.loads(out)
    assert (report["sent"], report["bounced"], report["deferred"]) == (3, 0, 0)
    assert (report["opens"], report["unique_opens"]) == (2, 2)  # bob's click opens it
    assert (report["clicks"], report["unique_clicks"]) == (2, 2)
    assert report["open_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["click_to_open_rate"] == 1.0
    assert {link["url"]: link["clicks"] for link in report["links"]} == {
        "https://example.com/offer?x=1&y=2": 1, "https://example.org/blog": 1}

    code, out = _cli(capsys, "timeline", *common, "ann@example.net", "--json")
    assert [e["kind"] for e in json.loads(out)] == ["sent", "open", "open", "click"]
    code, out = _cli(capsys, "events", *common, "--json", "--campaign", "spring")
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert kinds.count("sent") == 3 and kinds.count("click") == 2
    code, out = _cli(capsys, "report", *common, "--campaign", "spring")
    assert "unique opens" in out and "66.7%" in out


def test_refusals_at_send_time(setup: tuple[ServerProcess, SmtpSink, list[str]],
                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _server, sink, common = setup
    sink.reject("gone@example.net", code=550, text="5.1.1 <gone@example.net>: user unknown")
    sink.defer("busy@example.net", times=None, code=451, text="4.3.0 try later")
    code, out = _cli(capsys, "send", *common, "--send-attempts", "2", "--from",
                     "me@example.com", "--to", "ok@example.net", "--to", "gone@example.net",
                     "--to", "busy@example.net", "--text", str(tmp_path / "body.txt"),
                     "--subject", "Hi", "--json")
    assert code == 3
    by = {r["recipient"]: r for r in map(json.loads, out.splitlines())}
    assert by["ok@example.net"]["status"] == "sent"
    assert by["gone@example.net"]["status"] == "bounced" and by["gone@example.net"]["code"] == 550
    assert by["busy@example.net"]["status"] == "deferred"
    assert by["busy@example.net"]["attempts"] == 2
    assert [m.rcpt_tos for m in sink.wait_for(1)] == [["ok@example.net"]]
    _, out = _cli(capsys, "report", *common, "--json")
    report = json.loads(out)
    assert (report["sent"], report["bounced"], report["deferred"]) == (1, 1, 1)
    _, out = _cli(capsys, "timeline", *common, "gone@example.net", "--json")
    [event] = json.loads(out)
    assert event["kind"] == "bounced" and "user unknown" in event["detail"]["message"]
    assert (event["detail"]["reason"], event["detail"]["hard"]) == ("userunknown", True)
    # A hard bounce at send time puts the address on the suppression list ...
    _, out = _cli(capsys, "suppress", "list", *common)
    assert "gone@example.net" in out and "busy@example.net" not in out
    code, out = _cli(capsys, "send", *common, "--from", "me@example.com", "--to",
                     "gone@example.net", "--text", str(tmp_path / "body.txt"), "--json")
    assert json.loads(out)["status"] == "suppressed"  # ... which send honours


@pytest.mark.parametrize("level", ["anonymous", "off"])
def test_tracking_levels(level: str, setup: tuple[ServerProcess, SmtpSink, list[str]],
                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _server, sink, common = setup
    code, out = _cli(capsys, "send", *common, "--track", level, "--from", "me@example.com",
                     "--to", "ann@example.net", "--html", str(tmp_path / "body.html"),
                     "--subject", "Hi", "--json")
    assert code == 0, out
    [envelope] = sink.wait_for(1)
    html = envelope.message().get_body(("html",)).get_content()
    pixels = re.findall(r'<img src="([^"]+/o/[^"]+\.gif)"', html)
    if level == "off":
        assert not pixels and "https://example.com/offer?x=1&amp;y=2" in html
        return
    assert httpx.get(pixels[0]).status_code == 200
    _, out = _cli(capsys, "report", *common, "--json")
    report = json.loads(out)
    assert (report["opens"], report["anonymous_opens"], report["unique_opens"]) == (1, 1, 0)
    _, out = _cli(capsys, "events", *common, "--json")
    [hit] = [e for e in map(json.loads, out.splitlines()) if e["kind"] == "open"]
    assert hit["recipient"] is None


def test_bad_usage_is_a_clear_error(setup: tuple[ServerProcess, SmtpSink, list[str]],
                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, common = setup
    (tmp_path / "broken.eml").write_bytes(b"From: me@example.com\r\nContent-Type: "
                                          b"multipart/mixed\r\n\r\nno boundary\r\n")
    assert main(["send", *common, "--from", "me@example.com", "--to", "a@example.net",
                 "--eml", str(tmp_path / "broken.eml")]) == 1
    assert "malformed MIME" in capsys.readouterr().err
    assert main(["report", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recipients"] == 0  # nothing half-made is kept
    assert main(["send", *common, "--from", "nobody", "--to", "a@example.net", "--text",
                 str(tmp_path / "body.txt")]) == 1
    assert "not an email address" in capsys.readouterr().err
    assert main(["send", *common, "--from", "me@example.com", "--to", "a@example.net",
                 "--text", str(tmp_path / "missing.txt")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["report", *common, "--campaign", "nope"]) == 1
    assert "no campaign" in capsys.readouterr().err
