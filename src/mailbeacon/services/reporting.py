"""The campaign report: the one implementation ``mailbeacon report`` and ``/api/report``
(and later the dashboard) call, so they cannot disagree.

A report first brings the verdicts up to date (a judge pass over whatever arrived
since the last one, waiting a moment for transactions already running), then reads
the rollups the judge keeps (``store.rollups``) and an indexed count of the
campaign's copies: its cost does not grow with the number of hits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailbeacon.core import delivery
from mailbeacon.core.delivery import DeliveryCounts
from mailbeacon.core.metrics import Counts, Engagement, RecipientLine, engagement_report, report
from mailbeacon.errors import MailbeaconError
from mailbeacon.judging import Judge, catch_up
from mailbeacon.store import engagement, queries
from mailbeacon.store.delivery import delivery_counts
from mailbeacon.store.sql import SqlStore

SETTLE = 5.0  # seconds to wait for transactions already running before judging


class UnknownCampaign(MailbeaconError):
    """The report names a campaign the store does not have."""


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


def campaign_id(store: SqlStore, name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return queries.campaign_id(store, name)
    except queries.UnknownCampaign:
        raise UnknownCampaign(f"no campaign named {name!r}") from None


def build(store: SqlStore, name: str | None, *, judge: Judge | None, now: float,
          settle: float = SETTLE) -> Report:
    """The figures of campaign ``name`` (None: all mail) as of ``now``; ``judge``: judge
    what arrived first (None: read the rollups as they are)."""
    cid = campaign_id(store, name)
    if judge is not None:
        catch_up(store, judge, now, settle=settle)
    return Report(name, queries.counts(store, cid), engagement.engagement(store, cid),
                  delivery_counts(store, cid))


def recipients(store: SqlStore, name: str | None) -> Iterator[RecipientLine]:
    """Every copy of the campaign, by recipient, streamed page by page."""
    return engagement.iter_recipients(store, campaign_id(store, name))
