"""The campaign report: the one implementation ``mailbeacon report`` and ``/api/report``
(and later the dashboard) call, so they cannot disagree.

A report reads the rollups the judge keeps (``store.rollups``) and an indexed count of
the campaign's copies: its cost does not grow with the number of hits. ``build(judge=True)``
(``mailbeacon report``: figures as of now) first brings the verdicts up to date, a judge
pass over whatever arrived since the last one, waiting a moment for transactions already
running; ``judge=False`` (``/api/report``, inside ``serve`` whose judge runs in its own
process) reads the rollups as that judge process left them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailbeacon.config import Config
from mailbeacon.core import delivery
from mailbeacon.core.delivery import DeliveryCounts
from mailbeacon.core.metrics import Counts, Engagement, RecipientLine, engagement_report, report
from mailbeacon.judging import Judge, catch_up
from mailbeacon.services.campaigns import UnknownCampaign, campaign_id
from mailbeacon.store import engagement, queries
from mailbeacon.store.delivery import delivery_counts
from mailbeacon.store.sql import SqlStore

SETTLE = 5.0  # seconds to wait for transactions already running before judging

__all__ = ["SETTLE", "Report", "UnknownCampaign", "build", "campaign_id", "recipients"]


@dataclass(frozen=True)
class Report:
    campaign: str | None
    counts: Counts
    human: Engagement
    delivery: DeliveryCounts

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape of ``report --json`` and ``/api/report``."""
        body = report(self.counts, self.campaign)
        body["human"] = engagement_report(self.counts, self.human)
        body["delivery"] = delivery.as_json(self.delivery)
        return body


def build(store: SqlStore, name: str | None, *, judge: bool, now: float,
          config: Config | None = None, settle: float = SETTLE) -> Report:
    """The figures of campaign ``name`` (None: all mail).

    ``judge``: first judge what arrived, with the rules of ``config`` (own networks and
    user agents, IP labels), so the figures are as of ``now``; False: read the rollups
    as the running judge keeps them (they trail the hits by a pass)."""
    cid = campaign_id(store, name)
    if judge:
        if config is None:
            raise TypeError("build(judge=True) needs the config the judge's rules come from")
        catch_up(store, Judge.from_config(config), now, settle=settle)
    return Report(name, queries.counts(store, cid), engagement.engagement(store, cid),
                  delivery_counts(store, cid))


def recipients(store: SqlStore, name: str | None) -> Iterator[RecipientLine]:
    """Every copy of the campaign, by recipient, streamed page by page."""
    return engagement.iter_recipients(store, campaign_id(store, name))
