"""Client/device parsing, the user's IP label file, and offline country lookup."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mailbeacon.core.verdicts import geo
from mailbeacon.core.verdicts.clients import NO_CLIENT, client_of, parse_client
from mailbeacon.core.verdicts.iplabels import load_ip_labels, parse_ip_labels
from mailbeacon.core.verdicts.model import Hit, Verdict
from mailbeacon.errors import ConfigError

GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


@pytest.mark.parametrize(
    ("ua", "family", "os", "device"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1",
         "Thunderbird", "Windows 10", "desktop"),
        ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; "
         ".NET4.0E; Microsoft Outlook 16.0.17328; ms-office; MSOffice 16)",
         "Outlook", "Windows 10", "desktop"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
         "Apple Mail", "Mac OS X 10.15", "desktop"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Mobile/15E148", "Mobile Safari UI/WKWebView", "iOS 17.4", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Mobile/15E148", "Mobile Safari UI/WKWebView", "iOS 16.6", "tablet"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.6367.113 Mobile Safari/537.36", "Chrome Mobile", "Android 14", "mobile"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36", "Chrome", "Android 13", "tablet"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
         "Firefox", "Linux", "desktop"),
        ("Mozilla/5.0", None, None, "unknown"),
        ("", None, None, "unknown"),
    ],
)  # fmt: skip
def test_parse_client(ua: str, family: str | None, os: str | None, device: str):
    client = parse_client(ua)
    assert (client.family, client.os, client.device) == (family, os, device)


def test_parse_client_is_cached():
    parse_client.cache_clear()
    parse_client("Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0")
    parse_client("Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0")
    assert parse_client.cache_info().hits == 1


def test_robots_listed_by_uap_core_are_flagged():
    bot = parse_client("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    assert bot.robot and bot.device == "unknown" and not bot.is_reader_software


def test_client_of_gives_nothing_for_proxies_and_prefetches():
    hit = Hit(1, "open", 0.0, "GET", "192.0.2.1", GMAIL)
    assert parse_client(GMAIL).os == "Windows XP"  # what the proxy claims, not the reader
    assert client_of(hit, Verdict("proxy", 0.9, ())) is NO_CLIENT
    assert client_of(hit, Verdict("prefetch", 0.9, ())) is NO_CLIENT
    assert client_of(hit, Verdict("human", 0.6, ())).family == "GmailImageProxy"


def test_ip_labels_longest_prefix_and_comments(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_text(
        "# networks the user knows (documentation ranges: a fixture)\n"
        "192.0.2.0/24, google-proxy\n"
        "192.0.2.128/25 scanner   # a narrower network wins\n"
        "\n"
        "2001:db8:10::/48\tapple-mpp\n"
        "198.51.100.7 Scanner\n",
        encoding="utf-8",
    )
    labels = load_ip_labels(path)
    assert len(labels) == 4
    assert labels.label("192.0.2.5") == "google-proxy"
    assert labels.label("192.0.2.200") == "scanner"
    assert labels.label("2001:db8:10:ffff::1") == "apple-mpp"
    assert labels.label("198.51.100.7") == "scanner"
    assert labels.label("198.51.100.8") is None
    assert labels.label(None) is None and labels.label("not an ip") is None


@pytest.mark.parametrize("line", ["192.0.2.0/24", "999.1.1.0/24 scanner", "a b c"])
def test_ip_labels_fail_loudly_with_the_line(line: str):
    with pytest.raises(ConfigError, match=r"labels:1"):
        parse_ip_labels(line, origin="labels")


def test_ip_label_file_missing(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_ip_labels(tmp_path / "nope.txt")


def test_country_db_ranges_and_cidrs(tmp_path: Path):
    # DB-IP's lite CSV layout (first,last,CC) and CIDR rows; codes are fixture values
    path = tmp_path / "country.csv"
    path.write_text(
        "# test fixture\n"
        "1.0.0.0,1.0.0.255,XA\n"
        "1.0.4.0/22,XB\n"
        "2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,XC\n",
        encoding="utf-8",
    )
    db = geo.load_country_db(path)
    assert db("1.0.0.9") == "XA"
    assert db("1.0.5.1") == "XB"
    assert db("1.0.1.1") is None  # in a gap
    assert db("2001:200::1") == "XC"
    assert geo.country("1.0.0.9", db) == "XA"
    assert geo.country("192.0.2.1", db) is None  # not a global address
    assert geo.country(None, db) is None


def test_country_db_rejects_bad_rows():
    with pytest.raises(ConfigError, match="data row 1"):
        geo.parse_country_csv("1.0.0.0,XA,1,2\n")


@pytest.mark.skipif(importlib.util.find_spec("iptocc") is None, reason="iptocc not installed")
def test_country_from_the_registries_offline():
    assert geo.rir_country_available()
    assert geo.country("8.8.8.8") == "US"
    assert geo.country("10.0.0.1") is None
