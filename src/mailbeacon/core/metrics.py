"""Rates and counts from event counts (pure).

Definitions (also in docs/events.md):
- ``sent``: copies the relay accepted; the denominator of every rate.
- ``opens``: pixel fetches, every one; ``unique_opens``: copies the relay
  accepted with at least one open *or click* (a click proves the message was
  opened, even with images blocked). A refused copy's hits stay in the totals
  only, so that every rate's numerator is part of its denominator.
- ``clicks`` / ``unique_clicks``: the same for tracked links (honeypot hits
  are never clicks).
- open rate = unique_opens / sent; click rate = unique_clicks / sent;
  click-to-open = unique_clicks / unique_opens.
- Anonymous tracking ties no hit to a recipient: those hits are counted in
  ``anonymous_opens`` / ``anonymous_clicks`` and are not in unique figures.

Human figures (``copy_figures``, ``human_rates``) are counted per copy the relay
accepted, so that each rate's numerator is a subset of its denominator and no
rate can pass 100%:
- a copy is *opened by a person* when the judge says so or a person clicked in it;
- a person's open proves the copy was delivered, so a copy that a bounce report
  came back for *after* (or before) a person opened it still counts as delivered
  and as opened; the report is counted in ``bounced_after_open``, an anomaly to
  look at (a late bounce from a forwarding address, or a forged report);
- delivered = accepted copies that no bounce came back for, plus those;
- human open rate = opened by a person / delivered; human click rate = copies a
  person clicked in / delivered; human click-to-open = those / opened by a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

OPENED_BY_PERSON, ONLY_MACHINES, NOT_OPENED = "opened by a person", "only by machines", "not opened"

OPENING_KINDS = ("open", "click", "download")  # hits that show a copy was opened
# Which verdict speaks for a copy's opens: the most person-like one it has.
PRECEDENCE = ("human", "proxy", "unknown", "prefetch", "scanner", "self")
PERSON = ("human", "proxy")
MACHINE = ("prefetch", "scanner")
# Clients, devices and countries are counted over these verdicts only: a proxy's or a
# scanner's user agent and address describe the machine, not the reader.
BREAKDOWN_VERDICTS = ("human", "unknown")


def best_verdict(present: Iterable[str]) -> str | None:
    """The verdict that speaks for a copy whose opening hits have these verdicts."""
    ranked = [PRECEDENCE.index(v) for v in present if v in PRECEDENCE]
    return PRECEDENCE[min(ranked)] if ranked else None


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
class CopyState:
    """What the figures need to know of one copy the relay accepted."""

    engagement: str  # the judge's word: opened by a person | only by machines | not opened
    bounced_later: bool  # a bounce report came back for it
    human_click: bool  # a click judged human


@dataclass(frozen=True)
class CopyFigures:
    delivered: int = 0
    opened_by_person: int = 0
    only_machines: int = 0
    not_opened: int = 0
    bounced_later: int = 0
    bounced_after_open: int = 0
    unique_human_clicks: int = 0


def copy_figures(copies: Iterable[CopyState]) -> CopyFigures:
    """Per-copy human figures over accepted copies (definitions: the module docstring)."""
    total = delivered = person = machines = bounced = bounced_after_open = clicked = 0
    for c in copies:
        total += 1
        by_person = c.engagement == OPENED_BY_PERSON or c.human_click
        person += by_person
        machines += not by_person and c.engagement == ONLY_MACHINES
        delivered += by_person or not c.bounced_later
        bounced += c.bounced_later
        bounced_after_open += by_person and c.bounced_later
        clicked += c.human_click
    return CopyFigures(delivered, person, machines, total - person - machines, bounced,
                       bounced_after_open, clicked)


@dataclass(frozen=True)
class Engagement:
    """Figures from the verdicts; raw hits stay counted in ``Counts``."""

    unique_opens_by_verdict: dict[str, int] = field(default_factory=dict)
    delivered: int = 0  # accepted copies no bounce came back for, or that a person opened
    opened_by_person: int = 0  # copies
    only_machines: int = 0
    not_opened: int = 0
    bounced_later: int = 0  # accepted copies a bounce report came back for
    bounced_after_open: int = 0  # of those, copies a person opened: delivered all the same
    opened_elsewhere: int = 0  # copies re-opened from another client and network: never certain
    human_clicks: int = 0
    unique_human_clicks: int = 0
    machine_clicks: int = 0  # prefetch and scanner verdicts, honeypot included
    self_clicks: int = 0
    unknown_clicks: int = 0
    human_links: tuple[HumanLink, ...] = ()
    # family -> hits judged human or unknown (BREAKDOWN_VERDICTS), not only people's
    clients: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    countries: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HumanRates:
    delivered: int
    estimated_human_open_rate: float | None
    human_click_rate: float | None
    human_click_to_open_rate: float | None


def human_rates(c: Counts, e: Engagement) -> HumanRates:
    """Copies opened by a person over copies delivered, both counted per copy by
    ``copy_figures`` (so never above 100%); a proxy open counts as a person, an Apple
    MPP prefetch alone does not. ``c`` is kept for callers; the figures are in ``e``."""
    return HumanRates(
        delivered=e.delivered,
        estimated_human_open_rate=_ratio(e.opened_by_person, e.delivered),
        human_click_rate=_ratio(e.unique_human_clicks, e.delivered),
        human_click_to_open_rate=_ratio(e.unique_human_clicks, e.opened_by_person),
    )


def engagement_report(c: Counts, e: Engagement) -> dict[str, Any]:
    """The ``human`` object of ``report --json``."""
    body = asdict(e)
    body["human_links"] = [asdict(link) for link in e.human_links]
    return {**body, **asdict(human_rates(c, e))}
