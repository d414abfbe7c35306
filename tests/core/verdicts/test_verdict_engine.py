"""judge(), decide(), message_status() and elsewhere(): verdicts that follow the evidence."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest

from mailbeacon.core.verdicts import engine
from mailbeacon.core.verdicts.engine import (
    decide,
    elsewhere,
    estimated_human_open_rate,
    judge,
    message_status,
)
from mailbeacon.core.verdicts.iplabels import parse_ip_labels
from mailbeacon.core.verdicts.model import (
    ELSEWHERE,
    HUMAN,
    NOT_OPENED,
    ONLY_MACHINES,
    OPENED_BY_PERSON,
    PREFETCH,
    PROXY,
    SCANNER,
    SELF,
    UNKNOWN,
    Evidence,
    Hit,
    SenderProfile,
    Verdict,
)
from mailbeacon.core.verdicts.signals import Signal

T = 1_767_225_600.0
H = 3600.0
MPP = "Mozilla/5.0"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
THUNDERBIRD = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
)
IOS_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
DELIVERED = Evidence(sent_at=T, delivered_at=T + 4, link_count=6)


def open_(id: int, at: float, ua: str, ip: str | None = "192.0.2.1", method: str = "GET") -> Hit:
    return Hit(id=id, kind="open", at=T + at, method=method, ip=ip, user_agent=ua)


def click(id: int, at: float, link: int, ua: str = CHROME, ip: str = "203.0.113.9") -> Hit:
    return Hit(id=id, kind="click", at=T + at, method="GET", ip=ip, user_agent=ua, link=link)


def kinds(verdicts: dict[int, Verdict]) -> dict[int, str]:
    return {hid: v.verdict for hid, v in verdicts.items()}


def test_every_hit_gets_a_verdict_with_reasons():
    hits = [open_(1, 40, MPP), open_(2, 2 * H, THUNDERBIRD), click(3, 2 * H + 30, 1)]
    verdicts = judge(hits, DELIVERED)
    assert kinds(verdicts) == {1: PREFETCH, 2: HUMAN, 3: HUMAN}
    assert verdicts[1].reasons == ("user agent is the Apple MPP form",)
    assert all(0 < v.confidence < 1 for v in verdicts.values())


def test_a_burst_seen_at_the_fourth_click_relabels_the_first_three():
    first_three = [click(n, 10 * 60 + n, link=n) for n in (1, 2, 3)]
    assert set(kinds(judge(first_three, DELIVERED)).values()) == {HUMAN}
    with_fourth = [*first_three, click(4, 10 * 60 + 4, link=4)]
    after = judge(with_fourth, DELIVERED)
    assert kinds(after) == {1: SCANNER, 2: SCANNER, 3: SCANNER, 4: SCANNER}
    assert "4 clicks within 3 s" in after[1].reasons


def test_judging_never_changes_the_raw_hits():
    hits = [open_(1, 40, MPP), click(2, 5, 1), click(3, 5.2, 2), click(4, 5.4, 3)]
    before = copy.deepcopy(hits)
    judge(hits, Evidence(sent_at=T, delivered_at=T + 4, link_count=3))
    assert hits == before


def test_order_of_the_input_does_not_matter():
    hits = [click(n, 5 + n * 0.2, n) for n in range(1, 5)] + [open_(9, 3 * H, THUNDERBIRD)]
    assert judge(hits, DELIVERED) == judge(list(reversed(hits)), DELIVERED)


def test_mpp_then_a_real_open_is_a_person_but_the_prefetch_stays_a_prefetch():
    hits = [open_(1, 30, MPP)]
    ev = Evidence(sent_at=T, delivered_at=T + 4)
    only = judge(hits, ev)
    assert message_status(hits, only, ev) == ONLY_MACHINES
    hits.append(open_(2, 5 * H, THUNDERBIRD, ip="198.51.100.7"))
    later = judge(hits, ev)
    assert later[1].verdict == PREFETCH
    assert message_status(hits, later, ev) == OPENED_BY_PERSON


@pytest.mark.parametrize(
    "late",
    [
        Evidence(sent_at=T, delivered_at=T + 4, replied_at=T + 2 * H),
        Evidence(sent_at=T, delivered_at=T + 4, read_receipt_at=T + 2 * H),
    ],
)
def test_a_reply_or_read_receipt_arriving_later_turns_machines_into_a_person(late: Evidence):
    hits = [open_(1, 30, MPP)]
    assert message_status(hits, judge(hits, DELIVERED), DELIVERED) == ONLY_MACHINES
    verdicts = judge(hits, late)
    assert verdicts[1].verdict == PREFETCH
    assert message_status(hits, verdicts, late) == OPENED_BY_PERSON


def test_a_click_after_mpp_means_a_person_opened_it():
    hits = [open_(1, 30, MPP), click(2, 6 * H, 1)]
    assert message_status(hits, judge(hits, DELIVERED), DELIVERED) == OPENED_BY_PERSON


def test_delivery_evidence_arriving_later_exposes_a_scan():
    hits = [click(1, 9, 1), click(2, 9.6, 2)]
    no_dsn = Evidence(sent_at=T, link_count=6)
    assert set(kinds(judge(hits, no_dsn)).values()) == {HUMAN}
    assert set(kinds(judge(hits, DELIVERED)).values()) == {SCANNER}


def test_the_pixel_fetched_by_a_scanner_goes_with_its_scan():
    hits = [
        open_(1, 5, CHROME, ip="203.0.113.9"),
        *[click(n, 5 + n * 0.2, n) for n in (2, 3, 4, 5)],
    ]
    assert kinds(judge(hits, DELIVERED))[1] == SCANNER


def test_honeypot_is_certain_and_marks_its_client():
    hits = [Hit(1, "honeypot", T + 1800, "GET", "203.0.113.9", CHROME), click(2, 1801, 1)]
    verdicts = judge(hits, DELIVERED)
    assert verdicts[1] == Verdict(SCANNER, 1.0, verdicts[1].reasons)
    assert verdicts[2].verdict == SCANNER


def test_the_senders_own_hits_are_self_and_never_count():
    sender = SenderProfile.of(("10.1.0.0/16",))
    hits = [open_(1, 10, THUNDERBIRD, ip="10.1.2.3")] + [
        click(n, 20 + n * 0.3, n, ip="10.1.2.3") for n in (2, 3, 4, 5)
    ]
    verdicts = judge(hits, DELIVERED, sender)
    assert set(kinds(verdicts).values()) == {SELF}  # a sender testing links is no scanner
    assert message_status(hits, verdicts, DELIVERED) == NOT_OPENED


def test_user_labels_feed_the_verdict():
    labels = parse_ip_labels("203.0.113.0/26 scanner\n")
    hits = [click(1, 130, 1, ip="203.0.113.5")]
    assert judge(hits, DELIVERED, ip_labels=labels)[1].verdict == SCANNER
    assert judge(hits, DELIVERED)[1].verdict == HUMAN


def test_a_hit_with_nothing_to_go_on_is_unknown():
    verdict = judge([open_(1, 5 * H, "")], DELIVERED)[1]
    assert verdict.verdict == UNKNOWN and verdict.confidence == 0.0


def test_gmail_proxy_right_after_delivery_is_doubted_not_dropped():
    early, late = open_(1, 20, GMAIL), open_(1, 3 * H, GMAIL)
    ev = Evidence(sent_at=T, delivered_at=T + 4)
    doubted, plain = judge([early], ev)[1], judge([late], ev)[1]
    assert doubted.verdict == plain.verdict == PROXY
    assert doubted.confidence < plain.confidence
    assert any(r.startswith("but proxy fetch") for r in doubted.reasons)
    assert message_status([early], {1: doubted}, ev) == OPENED_BY_PERSON


def test_decide_combines_weights_and_prefers_machines_on_ties():
    assert decide([]) == Verdict(UNKNOWN, 0.0, ("nothing points either way",))
    tie = decide([Signal(HUMAN, 0.6, "h"), Signal(SCANNER, 0.6, "s")])
    assert tie.verdict == SCANNER and tie.reasons == ("s", "but h")
    two = decide([Signal(PREFETCH, 0.5, "a"), Signal(PREFETCH, 0.5, "b")])
    assert two.confidence == 0.75
    assert decide([Signal(SCANNER, 1.0, "x"), Signal(HUMAN, 0.6, "y")]).confidence == 1.0
    assert decide([Signal(SCANNER, 0.9, "x")]).confidence <= 0.99


def test_message_status_cases():
    ev = Evidence(sent_at=T)
    human = Verdict(HUMAN, 0.6, ())
    own = Verdict(SELF, 0.8, ())
    assert message_status([], {}, ev) == NOT_OPENED
    assert message_status([open_(1, 60, THUNDERBIRD)], {1: own}, ev) == NOT_OPENED
    assert message_status([open_(1, 60, THUNDERBIRD)], {1: human}, ev) == OPENED_BY_PERSON
    assert message_status([open_(1, 60, "")], {}, ev) == ONLY_MACHINES  # not yet judged


def test_elsewhere_needs_another_client_family_and_another_network():
    hits = [
        open_(1, 1 * H, THUNDERBIRD, ip="192.0.2.10"),
        open_(2, 2 * H, THUNDERBIRD, ip="198.51.100.10"),  # same client, new network
        open_(3, 3 * H, IOS_MAIL, ip="192.0.2.99"),  # new client, same /24
        open_(4, 9 * H, IOS_MAIL, ip="2001:db8:ab:1::9"),  # both new
        open_(5, 9 * H + 60, MPP, ip="198.51.100.200"),  # a prefetch is never "elsewhere"
    ]
    verdicts = judge(hits, DELIVERED)
    assert elsewhere(hits, verdicts) == {4}
    assert ELSEWHERE in verdicts[4].reasons and verdicts[4].confidence < 1
    assert ELSEWHERE not in verdicts[2].reasons


def test_elsewhere_compares_ipv6_at_48_bits():
    hits = [
        open_(1, H, THUNDERBIRD, ip="2001:db8:1:1::1"),
        open_(2, 2 * H, IOS_MAIL, ip="2001:db8:1:9::1"),
    ]
    assert elsewhere(hits, judge(hits, DELIVERED)) == set()


def test_estimated_human_open_rate():
    statuses = [OPENED_BY_PERSON, ONLY_MACHINES, NOT_OPENED, OPENED_BY_PERSON]
    assert estimated_human_open_rate(statuses, delivered=4) == 0.5
    assert estimated_human_open_rate([], delivered=0) is None


def test_the_verdict_core_stays_pure():
    """No sockets, databases or web frameworks under core/verdicts."""
    banned = {"socket", "sqlite3", "sqlalchemy", "psycopg", "starlette", "granian", "httpx",
              "urllib.request", "http", "asyncio", "aiosmtpd", "smtplib", "requests"}  # fmt: skip
    folder = Path(engine.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned and name not in banned, (path.name, name)
