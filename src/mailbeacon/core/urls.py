"""The public URL shapes of tracking hits, written into mail and parsed by the hot path.

    {public_url}/o/{token}.gif   open (the pixel)
    {public_url}/c/{token}       click: redirect to the URL signed inside the token
    {public_url}/d/{token}       tracked attachment download
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
