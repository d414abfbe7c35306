"""``mailbeacon report``: what happened to a campaign, raw and human figures side by side."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailbeacon.cli.common import existing_store
from mailbeacon.cli.inbound import delivery_table
from mailbeacon.cli.table import percent, printable, render
from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.core import delivery
from mailbeacon.core.metrics import (
    Counts,
    Engagement,
    engagement_report,
    human_rates,
    rates,
    report,
)
from mailbeacon.core.verdicts import load_country_db
from mailbeacon.errors import MailbeaconError
from mailbeacon.judging import Judge, catch_up
from mailbeacon.store import engagement, queries
from mailbeacon.store import inbound as inbound_store


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report", parents=[parent], help="campaign figures, raw and human",
        description="Sent, bounced at send, deferred; opens and clicks as counted (raw) and "
        "as judged by person-vs-machine verdicts (human); rates, a per-link table, clients "
        "and devices. A click counts as an open. Definitions: docs/events.md, "
        "docs/verdicts.md.")
    p.add_argument("--campaign", metavar="NAME", help="one campaign (default: all mail)")
    p.add_argument("--recipients", action="store_true",
                   help="also list every recipient: opened by a person, only by machines, "
                   "or not opened")
    p.add_argument("--json", action="store_true", help="print the stable JSON form")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    store = existing_store(config)
    try:
        cid = queries.campaign_id(store, args.campaign) if args.campaign else None
    except queries.UnknownCampaign:
        raise MailbeaconError(f"no campaign named {args.campaign!r}") from None
    catch_up(store, Judge.from_config(config), SystemClock().now(), settle=5.0)  # as of now
    counts = queries.counts(store, cid)
    geo = load_country_db(config.country_db) if config.country_db else None
    human = engagement.engagement(store, cid, geo)
    lines = engagement.recipients(store, cid) if args.recipients else []
    if args.json:
        body = report(counts, args.campaign)
        body["human"] = engagement_report(counts, human)
        body["delivery"] = delivery.as_json(inbound_store.delivery_counts(store, cid))
        if args.recipients:
            body["recipients"] = [vars(line) for line in lines]
        print(json.dumps(body, indent=2))
        return 0
    print(f"Campaign: {printable(args.campaign or '(all)')}\n")
    print(_figures(counts, human))
    print("\n" + delivery_table(inbound_store.delivery_counts(store, cid)))  # docs/inbound.md
    _links(human)
    _breakdowns(human)
    if lines:
        print()
        print(render(["recipient", "relay", "engagement", "opens", "clicks"],
                     [(r.recipient, r.status, r.engagement, r.opens, r.clicks) for r in lines]))
    return 0


def _figures(c: Counts, e: Engagement) -> str:
    r, h = rates(c), human_rates(c, e)
    by = e.unique_opens_by_verdict
    machine_opens = sum(by.get(v, 0) for v in ("prefetch", "scanner"))
    rows: list[tuple[object, ...]] = [
        ("recipients", c.recipients, ""), ("sent (accepted by the relay)", c.sent, ""),
        ("bounced at send", c.bounced, ""), ("deferred", c.deferred, ""),
        ("delivered (sent - bounced later, unless a person opened it)", "", h.delivered),
        ("opens (pixel hits)", c.opens, ""),
        ("unique opens", c.unique_opens, e.opened_by_person),
        ("  opened only by machines", "", e.only_machines),
        ("  opened elsewhere too (forward or other device?)", "", e.opened_elsewhere),
        ("  by verdict: human / proxy", "", f"{by.get('human', 0)} / {by.get('proxy', 0)}"),
        ("  by verdict: prefetch+scanner / self / unknown", "",
         f"{machine_opens} / {by.get('self', 0)} / {by.get('unknown', 0)}"),
        ("clicks", c.clicks, e.human_clicks),
        ("  machine clicks (scanner, prefetch)", "", e.machine_clicks),
        ("unique clicks", c.unique_clicks, e.unique_human_clicks),
        ("downloads", c.downloads, ""),
        ("open rate", percent(r.open_rate), percent(h.estimated_human_open_rate)),
        ("click rate", percent(r.click_rate), percent(h.human_click_rate)),
        ("click-to-open rate", percent(r.click_to_open_rate),
         percent(h.human_click_to_open_rate)),
    ]
    if e.bounced_after_open:  # docs/events.md, "A bounce after a person opened the copy"
        rows.insert(5, ("  bounced after a person opened it (still delivered)", "",
                        e.bounced_after_open))
    if c.anonymous_opens or c.anonymous_clicks:
        rows += [("anonymous opens", c.anonymous_opens, ""),
                 ("anonymous clicks", c.anonymous_clicks, "")]
    return render(["figure", "raw", "human"], rows)


def _links(e: Engagement) -> None:
    if e.human_links:
        print()
        print(render(["link", "clicks", "human", "unique human"],
                     [(link.url, link.clicks, link.human_clicks, link.unique_human_clicks)
                      for link in e.human_links]))


def _breakdowns(e: Engagement) -> None:
    for title, table in (("client", e.clients), ("device", e.devices),
                         ("country", e.countries)):
        if table:
            print()
            rows = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))
            print(render([title, "hits by people"], rows))
