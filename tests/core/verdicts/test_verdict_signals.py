"""One test (or table) per signal function, with the real user agents they key on."""

from __future__ import annotations

import pytest

from mailbeacon.core.verdicts import signals as sig
from mailbeacon.core.verdicts.iplabels import parse_ip_labels
from mailbeacon.core.verdicts.model import (
    HUMAN,
    PREFETCH,
    PROXY,
    SCANNER,
    SELF,
    UNKNOWN,
    Evidence,
    Hit,
    SenderProfile,
)

T = 1_767_225_600.0
MPP = "Mozilla/5.0"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
OFFICE = "Microsoft Office Existence Discovery"
THUNDERBIRD = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def hit(
    ua: str = CHROME,
    *,
    id: int = 1,
    kind: str = "open",
    at: float = T + 3600,
    method: str = "GET",
    ip: str | None = "192.0.2.1",
    link: int = 0,
) -> Hit:
    return Hit(id=id, kind=kind, at=at, method=method, ip=ip, user_agent=ua, link=link)


def clicks(times: list[float], *, links: list[int] | None = None, start_id: int = 1) -> list[Hit]:
    links = links or list(range(1, len(times) + 1))
    return [
        hit(kind="click", id=start_id + n, at=T + t, link=link)
        for n, (t, link) in enumerate(zip(times, links, strict=True))
    ]


def test_apple_mpp_is_the_bare_user_agent_on_opens_only():
    assert sig.apple_mpp_user_agent(hit(MPP)) == sig.Signal(
        PREFETCH, 0.9, "user agent is the Apple MPP form"
    )
    assert sig.apple_mpp_user_agent(hit(" Mozilla/5.0 ")) is not None
    assert sig.apple_mpp_user_agent(hit(MPP, kind="click", link=1)) is None
    assert (
        sig.apple_mpp_user_agent(hit("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"))
        is None
    )


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (GMAIL, True),
        ("Mozilla/5.0 (via ggpht.com)", True),
        ("GoogleImageProxy", True),
        (CHROME, False),
    ],
)
def test_gmail_image_proxy(ua: str, expected: bool):
    found = sig.gmail_image_proxy(hit(ua))
    assert (found is not None) is expected
    if found:
        assert found.verdict == PROXY


def test_yahoo_mail_proxy():
    assert sig.yahoo_mail_proxy(hit(YAHOO)).verdict == PROXY  # type: ignore[union-attr]
    assert sig.yahoo_mail_proxy(hit(CHROME)) is None


def test_office_existence_discovery():
    found = sig.office_existence_discovery(hit(OFFICE, method="HEAD", kind="click", link=1))
    assert found is not None and found.verdict == PREFETCH
    assert sig.office_existence_discovery(hit(CHROME)) is None


@pytest.mark.parametrize(("method", "expected"), [("HEAD", True), ("head", True), ("GET", False)])
def test_head_request(method: str, expected: bool):
    assert (sig.head_request(hit(method=method)) is not None) is expected


def test_honeypot_link_is_certain():
    assert sig.honeypot_link(hit(kind="honeypot")) == sig.Signal(
        SCANNER, 1.0, "hidden link clicked"
    )
    assert sig.honeypot_link(hit(kind="click", link=1)) is None


def test_sender_device_by_network_user_agent_or_both():
    sender = SenderProfile.of(("10.1.0.0/16", "2001:db8:f00::/48"), ("Thunderbird/115",))
    both = sig.sender_device(hit(THUNDERBIRD, ip="10.1.2.3"), sender)
    net = sig.sender_device(hit(CHROME, ip="2001:db8:f00:1::9"), sender)
    agent = sig.sender_device(hit(THUNDERBIRD, ip="198.51.100.4"), sender)
    assert both and net and agent
    assert {both.verdict, net.verdict, agent.verdict} == {SELF}
    assert both.weight > net.weight > agent.weight
    assert sig.sender_device(hit(CHROME, ip="198.51.100.4"), sender) is None
    assert sig.sender_device(hit(CHROME, ip=None), SenderProfile()) is None


def test_network_label_known_and_unknown_labels():
    labels = parse_ip_labels("192.0.2.0/24 apple-mpp\n198.51.100.0/24 our-vpn\n")
    mpp = sig.network_label(hit(ip="192.0.2.9"), labels)
    note = sig.network_label(hit(ip="198.51.100.9"), labels)
    assert mpp is not None and mpp.verdict == PREFETCH
    assert note is not None and note.verdict == UNKNOWN and note.weight == 0.0
    assert sig.network_label(hit(ip="203.0.113.1"), labels) is None


def test_instant_after_send():
    ev = Evidence(sent_at=T)
    assert sig.instant_after_send(hit(at=T + 1.5), ev).verdict == PREFETCH  # type: ignore[union-attr]
    assert sig.instant_after_send(hit(kind="click", at=T + 0.5, link=1), ev).verdict == SCANNER  # type: ignore[union-attr]
    assert sig.instant_after_send(hit(at=T + 2.5), ev) is None


def test_proxy_fetch_on_receipt_only_doubts_proxy_opens():
    ev = Evidence(sent_at=T, delivered_at=T + 5)
    doubt = sig.proxy_fetch_on_receipt(hit(GMAIL, at=T + 30), ev)
    assert doubt is not None and doubt.weight < 0.5
    assert sig.proxy_fetch_on_receipt(hit(GMAIL, at=T + 5 + 61), ev) is None
    assert sig.proxy_fetch_on_receipt(hit(CHROME, at=T + 30), ev) is None
    assert sig.proxy_fetch_on_receipt(hit(GMAIL, at=T + 30), Evidence(sent_at=T)) is None


def test_clicked_soon_after_delivery_is_weak():
    ev = Evidence(sent_at=T, delivered_at=T + 5)
    found = sig.clicked_soon_after_delivery(hit(kind="click", at=T + 9, link=1), ev)
    assert found is not None and found.verdict == SCANNER and found.weight < 0.6
    assert sig.clicked_soon_after_delivery(hit(kind="click", at=T + 60, link=1), ev) is None
    assert sig.clicked_soon_after_delivery(hit(kind="open", at=T + 9), ev) is None


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (THUNDERBIRD, True),
        (CHROME, True),
        (MPP, False),
        (GMAIL, False),  # parses as a proxy family, never as a reader
        (YAHOO, False),
        ("curl/8.5.0", False),  # a tool: no operating system named
        ("", False),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", False),
    ],
)
def test_reader_software(ua: str, expected: bool):
    found = sig.reader_software(hit(ua))
    assert (found is not None) is expected
    if found:
        assert found.verdict == HUMAN


def test_recipient_answered():
    assert sig.recipient_answered(Evidence(sent_at=T, replied_at=T + 60)) is not None
    assert sig.recipient_answered(Evidence(sent_at=T, read_receipt_at=T + 60)) is not None
    assert sig.recipient_answered(Evidence(sent_at=T)) is None


def test_click_bursts_need_four_within_five_seconds():
    assert sig.click_bursts(clicks([10, 11, 12])) == {}
    burst = sig.click_bursts(clicks([10, 11, 12, 13.5]))
    assert set(burst) == {1, 2, 3, 4}
    assert burst[1].reason == "4 clicks within 4 s"
    assert sig.click_bursts(clicks([10, 12, 14, 16])) == {}  # 6 s span


def test_every_link_clicked_within_seconds():
    found = sig.every_link_clicked(clicks([10, 10.5, 11]), link_count=3)
    assert set(found) == {1, 2, 3}
    assert found[1].reason == "all 3 links clicked within 1 s"
    assert sig.every_link_clicked(clicks([10, 10.5]), link_count=2) == {}  # fewer than 3 links
    assert sig.every_link_clicked(clicks([10, 40, 90]), link_count=3) == {}  # a reader's pace
    repeated = clicks([10, 10.2, 10.4], links=[1, 1, 2])
    assert sig.every_link_clicked(repeated, link_count=3) == {}


def test_burst_after_delivery_needs_only_two():
    ev = Evidence(sent_at=T, delivered_at=T + 4)
    assert set(sig.burst_after_delivery(clicks([6, 6.5]), ev)) == {1, 2}
    assert sig.burst_after_delivery(clicks([600, 600.5]), ev) == {}
    assert sig.burst_after_delivery(clicks([6, 6.5]), Evidence(sent_at=T)) == {}


def test_scan_companions_share_address_and_agent_and_time():
    scan = clicks([10, 10.2, 10.4])
    pixel = hit(id=9, at=T + 11)  # same ip and user agent as the scan
    other_ip = hit(id=10, at=T + 11, ip="198.51.100.1")
    later = hit(id=11, at=T + 3600)
    found = sig.scan_companions([*scan, pixel, other_ip, later], {1, 2, 3})
    assert set(found) == {9}
    assert found[9].verdict == SCANNER


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "under 1 s"), (40, "40 s"), (720, "12 min"), (93600, "26 h")]
)
def test_delays_read_as_people_say_them(seconds: float, text: str):
    assert sig._secs(seconds) == text
