"""The URL shapes of hits: which links are web links, and a token as a log line shows it."""

from __future__ import annotations

import pytest

from mailbeacon.core.urls import is_web_url, lower_scheme, shorten_tokens


@pytest.mark.parametrize(("url", "web"), [
    ("https://example.com/", True), ("HTTPS://example.com/x", True), ("Http://e.x", True),
    ("http://", False), ("https://", False), ("mailto:a@example.com", False),
    ("javascript:alert(1)", False), ("ftp://example.com/", False), ("", False),
    ("//example.com/", False), ("httpx://example.com", False),
])
def test_web_urls_in_any_letter_case(url: str, web: bool) -> None:
    assert is_web_url(url) is web


def test_only_the_scheme_is_folded() -> None:
    assert lower_scheme("HTTPS://Example.COM/Path?Q=A") == "https://Example.COM/Path?Q=A"
    assert lower_scheme("https://x/Y") == "https://x/Y"


@pytest.mark.parametrize(("target", "shown"), [
    ("/o/AQEBAQEBAbcdefghijklmnop.gif", "/o/AQEBAQEB....gif"),
    ("/c/AQEBAQEBAbcdefghijklmnop?u=x", "/c/AQEBAQEB...?..."),
    ("/d/AQEBAQEBAbcdefghijklmnop", "/d/AQEBAQEB..."),
    ("/o/short.gif", "/o/short.gif"),
    ("/healthz", "/healthz"), ("/api/events?after=3", "/api/events?..."), ("", ""),
])
def test_log_lines_show_a_token_cut_short(target: str, shown: str) -> None:
    assert shorten_tokens(target) == shown
