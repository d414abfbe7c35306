"""The public URL shapes of tracking hits, written into mail and parsed by the hot path.

    {public_url}/o/{token}.gif   open (the pixel)
    {public_url}/c/{token}       click: redirect to the URL signed inside the token
    {public_url}/d/{token}       tracked attachment download

A link's scheme is case-insensitive (RFC 3986 3.1): ``HTTPS://x`` is tracked at
send and must redirect at click.
"""

from __future__ import annotations

OPEN_PREFIX = "/o/"
CLICK_PREFIX = "/c/"
DOWNLOAD_PREFIX = "/d/"
PIXEL_SUFFIX = ".gif"


def _base(public_url: str) -> str:
    return public_url.rstrip("/")


def pixel_url(public_url: str, token: str) -> str:
    return f"{_base(public_url)}{OPEN_PREFIX}{token}{PIXEL_SUFFIX}"


def click_url(public_url: str, token: str) -> str:
    return f"{_base(public_url)}{CLICK_PREFIX}{token}"


def download_url(public_url: str, token: str) -> str:
    return f"{_base(public_url)}{DOWNLOAD_PREFIX}{token}"


_TOKEN_PREFIXES = (OPEN_PREFIX, CLICK_PREFIX, DOWNLOAD_PREFIX)
SHOWN_TOKEN_CHARS = 8


def is_web_url(url: str) -> bool:
    """An http or https URL with something after the scheme, in any letter case."""
    lowered = url[:8].lower()
    if lowered.startswith("https://"):
        return len(url) > 8
    return lowered.startswith("http://") and len(url) > 7


def lower_scheme(url: str) -> str:
    """``HTTPS://Example.com/A`` -> ``https://Example.com/A``: only the scheme is folded."""
    scheme, colon, rest = url.partition(":")
    return scheme.lower() + colon + rest if not scheme.islower() else url


def shorten_tokens(target: str) -> str:
    """A request target for a log line: a tracking token cut to its first characters
    (enough to tell hits apart, not enough to replay one), no query string."""
    path, question, _ = target.partition("?")
    for prefix in _TOKEN_PREFIXES:
        if path.startswith(prefix):
            token = path[len(prefix):]
            suffix = PIXEL_SUFFIX if prefix == OPEN_PREFIX and token.endswith(PIXEL_SUFFIX) else ""
            token = token.removesuffix(suffix)
            if len(token) > SHOWN_TOKEN_CHARS:
                path = f"{prefix}{token[:SHOWN_TOKEN_CHARS]}...{suffix}"
            break
    return path + ("?..." if question else "")
