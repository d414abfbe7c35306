"""End to end: a campaign, a realistic mix of people and machines over real HTTP,
and the verdicts and human rates that come out (issue: the truth about opens)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from mailbeacon.cli.main import main
from mailbeacon.store.schema import messages
from mailbeacon.store.sql import open_store
from serverproc import ServerProcess
from smtpserver import SmtpSink

HTML = ('<html><body><p>Hello</p><a href="https://example.com/a">a</a> '
        '<a href="https://example.com/b">b</a> <a href="https://example.com/c">c</a>'
        '</body></html>')
MPP = "Mozilla/5.0"
APPLE_MAIL = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko)")
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SCANNER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
OWN = "Mozilla/5.0 (X11; Linux x86_64) SenderBrowser/1.0"
DAY = 86_400


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_people_and_machines(tmp_path: Path, store_url: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "body.html").write_text(HTML)
    people = ["mpp-then-read", "gmail", "scanned", "later-click", "sender-only"]
    with SmtpSink() as sink, ServerProcess(tmp_path / "data", store_url) as server:
        common = ["--data-dir", str(server.data_dir), "--db", store_url, "--public-url",
                  server.url, "--smtp", sink.url, "--own-user-agents", "SenderBrowser"]
        _cli(capsys, "send", *common, "--from", "me@example.com", "--subject", "News",
             "--html", str(tmp_path / "body.html"), "--campaign", "news",
             *[a for p in people for a in ("--to", f"{p}@example.net")])
        urls = {}
        for envelope in sink.wait_for(len(people)):
            html = envelope.message().get_body(("html",)).get_content()
            urls[envelope.rcpt_tos[0].split("@")[0]] = (
                re.findall(r'<img src="([^"]+\.gif)"', html)[0],
                re.findall(r'href="(http[^"]+/c/[^"]+)"', html))
        # Everyone but the scanned copy was sent a day ago (the scanner hits on arrival).
        store = open_store(store_url, create=False)
        with store.engine.begin() as conn:
            conn.execute(messages.update().where(messages.c.recipient != "scanned@example.net")
                         .values(sent_at=messages.c.sent_at - DAY))
        store.close()

        def hit(url: str, ua: str, method: str = "GET") -> None:
            r = httpx.request(method, url, headers={"User-Agent": ua})
            assert r.status_code in (200, 302)

        hit(urls["mpp-then-read"][0], MPP)  # Apple MPP prefetch
        hit(urls["mpp-then-read"][0], APPLE_MAIL)  # then the reader opens it
        hit(urls["gmail"][0], GMAIL)
        for link in urls["scanned"][1]:  # a link scanner follows every link at once
            hit(link, SCANNER)
        hit(urls["later-click"][1][1], FIREFOX)  # a person, a day later, images off
        hit(urls["sender-only"][0], OWN)  # the sender looking at the sent copy

        report = json.loads(_cli(capsys, "report", *common, "--campaign", "news",
                                 "--recipients", "--json"))
        events = [json.loads(line) for line in
                  _cli(capsys, "events", *common, "--json").splitlines()]
    hits = [e for e in events if e["kind"] in ("open", "click")]
    verdict_of = [(e["recipient"].split("@")[0], e["kind"], e["user_agent"][:12], e["verdict"])
                  for e in hits]
    assert verdict_of == [
        ("mpp-then-read", "open", MPP[:12], "prefetch"),
        ("mpp-then-read", "open", APPLE_MAIL[:12], "human"),
        ("gmail", "open", GMAIL[:12], "proxy"),
        ("scanned", "click", SCANNER[:12], "scanner"),
        ("scanned", "click", SCANNER[:12], "scanner"),
        ("scanned", "click", SCANNER[:12], "scanner"),
        ("later-click", "click", FIREFOX[:12], "human"),
        ("sender-only", "open", OWN[:12], "self"),
    ]
    assert all(e["reasons"] and 0 < e["confidence"] <= 1 for e in hits)
    assert any("MPP" in r for r in hits[0]["reasons"])
    # Proxy and prefetch hits describe the machine: no client or device for them.
    assert hits[2]["client"] is None and hits[1]["device"] is not None

    assert (report["opens"], report["unique_opens"], report["clicks"]) == (4, 5, 4)
    assert report["open_rate"] == 1.0  # raw: every copy "opened"
    human = report["human"]
    assert (human["opened_by_person"], human["only_machines"], human["not_opened"]) == (3, 1, 1)
    assert human["estimated_human_open_rate"] == pytest.approx(0.6)
    assert (human["human_clicks"], human["machine_clicks"]) == (1, 3)
    assert human["human_click_to_open_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert {r["recipient"].split("@")[0]: r["engagement"] for r in report["recipients"]} == {
        "mpp-then-read": "opened by a person", "gmail": "opened by a person",
        "scanned": "only by machines", "later-click": "opened by a person",
        "sender-only": "not opened"}
    # Machine verdicts hide hits from the human figures; the raw hits are all still there.
    assert len(hits) == 8
