"""Rates and counts from event counts (pure).

Definitions (also in docs/events.md):
- ``sent``: copies the relay accepted; the denominator of every rate.
- ``opens``: pixel fetches, every one; ``unique_opens``: recipient copies with
  at least one open *or click* (a click proves the message was opened, even
  with images blocked).
- ``clicks`` / ``unique_clicks``: the same for tracked links (honeypot hits
  are never clicks).
- open rate = unique_opens / sent; click rate = unique_clicks / sent;
  click-to-open = unique_clicks / unique_opens.
- Anonymous tracking ties no hit to a recipient: those hits are counted in
  ``anonymous_opens`` / ``anonymous_clicks`` and are not in unique figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LinkStats:
    url: str
    clicks: int
    unique_clicks: int


@dataclass(frozen=True)
class Counts:
    recipients: int = 0
    sent: int = 0
    bounced: int = 0  # refused at send time (5xx)
    deferred: int = 0  # 4xx until the attempts ran out
    queued: int = 0
    opens: int = 0
    unique_opens: int = 0
    clicks: int = 0
    unique_clicks: int = 0
    downloads: int = 0
    anonymous_opens: int = 0
    anonymous_clicks: int = 0
    links: tuple[LinkStats, ...] = field(default=())


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class Rates:
    open_rate: float | None
    click_rate: float | None
    click_to_open_rate: float | None


def rates(c: Counts) -> Rates:
    return Rates(
        open_rate=_ratio(c.unique_opens, c.sent),
        click_rate=_ratio(c.unique_clicks, c.sent),
        click_to_open_rate=_ratio(c.unique_clicks, c.unique_opens),
    )


def report(c: Counts, campaign: str | None) -> dict[str, Any]:
    """The stable JSON shape of ``mailbeacon report --json``."""
    body = asdict(c)
    body["links"] = [asdict(link) for link in c.links]
    return {"campaign": campaign, **body, **asdict(rates(c))}
