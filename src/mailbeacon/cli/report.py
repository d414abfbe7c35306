"""``mailbeacon report``: sent, bounced, opens, clicks and rates, with a per-link table."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailbeacon.cli.common import store_for
from mailbeacon.cli.table import percent, render
from mailbeacon.config import Config
from mailbeacon.core.metrics import rates, report
from mailbeacon.errors import MailbeaconError
from mailbeacon.store import queries


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[parent], help="campaign figures",
                       description="Sent, bounced at send, deferred, opens and unique opens, "
                       "clicks and unique clicks, open/click/click-to-open rates and a per-link "
                       "table. A click counts as an open. See docs/events.md for definitions.")
    p.add_argument("--campaign", metavar="NAME", help="one campaign (default: all mail)")
    p.add_argument("--json", action="store_true", help="print the stable JSON form")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    store = store_for(config)
    try:
        cid = queries.campaign_id(store, args.campaign) if args.campaign else None
    except queries.UnknownCampaign:
        raise MailbeaconError(f"no campaign named {args.campaign!r}") from None
    counts = queries.counts(store, cid)
    if args.json:
        print(json.dumps(report(counts, args.campaign), indent=2))
        return 0
    r = rates(counts)
    print(f"Campaign: {args.campaign or '(all)'}\n")
    print(render(["figure", "value"], [
        ("recipients", counts.recipients), ("sent", counts.sent),
        ("bounced at send", counts.bounced), ("deferred", counts.deferred),
        ("opens (all pixel hits)", counts.opens), ("unique opens", counts.unique_opens),
        ("clicks", counts.clicks), ("unique clicks", counts.unique_clicks),
        ("downloads", counts.downloads),
        ("open rate", percent(r.open_rate)), ("click rate", percent(r.click_rate)),
        ("click-to-open rate", percent(r.click_to_open_rate)),
        *([("anonymous opens", counts.anonymous_opens),
           ("anonymous clicks", counts.anonymous_clicks)]
          if counts.anonymous_opens or counts.anonymous_clicks else []),
    ]))
    if counts.links:
        print()
        print(render(["link", "clicks", "unique"],
                     [(link.url, link.clicks, link.unique_clicks) for link in counts.links]))
    return 0
