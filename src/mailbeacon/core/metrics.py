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


# -- person or machine (docs/verdicts.md) -------------------------------------------------


@dataclass(frozen=True)
class HumanLink:
    url: str
    clicks: int
    human_clicks: int
    unique_human_clicks: int


@dataclass(frozen=True)
class RecipientLine:
    recipient: str
    status: str  # what the relay said: sent | bounced | deferred | queued
    engagement: str  # opened by a person | only by machines | not opened
    opens: int
    clicks: int


@dataclass(frozen=True)
class Engagement:
    """Figures from the verdicts; raw hits stay counted in ``Counts``."""

    unique_opens_by_verdict: dict[str, int] = field(default_factory=dict)
    opened_by_person: int = 0  # copies
    only_machines: int = 0
    not_opened: int = 0
    bounced_later: int = 0  # accepted copies a bounce report came back for
    opened_elsewhere: int = 0  # copies re-opened from another client and network: never certain
    human_clicks: int = 0
    unique_human_clicks: int = 0
    machine_clicks: int = 0  # prefetch and scanner verdicts, honeypot included
    self_clicks: int = 0
    unknown_clicks: int = 0
    human_links: tuple[HumanLink, ...] = ()
    clients: dict[str, int] = field(default_factory=dict)  # family -> hits by people
    devices: dict[str, int] = field(default_factory=dict)
    countries: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HumanRates:
    delivered: int
    estimated_human_open_rate: float | None
    human_click_rate: float | None
    human_click_to_open_rate: float | None


def human_rates(c: Counts, e: Engagement) -> HumanRates:
    """Copies opened by a person over copies delivered (sent minus bounced later);
    a proxy open counts as a person, an Apple MPP prefetch alone does not."""
    delivered = max(c.sent - e.bounced_later, 0)
    return HumanRates(
        delivered=delivered,
        estimated_human_open_rate=_ratio(e.opened_by_person, delivered),
        human_click_rate=_ratio(e.unique_human_clicks, delivered),
        human_click_to_open_rate=_ratio(e.unique_human_clicks, e.opened_by_person),
    )


def engagement_report(c: Counts, e: Engagement) -> dict[str, Any]:
    """The ``human`` object of ``report --json``."""
    body = asdict(e)
    body["human_links"] = [asdict(link) for link in e.human_links]
    return {**body, **asdict(human_rates(c, e))}
