"""``mailbeacon report``: what happened to a campaign, raw and human figures side by side."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from typing import Any

from mailbeacon.cli.common import existing_store
from mailbeacon.cli.inbound import delivery_table
from mailbeacon.cli.table import percent, printable, render
from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.core.metrics import Counts, Engagement, RecipientLine, human_rates, rates
from mailbeacon.services import reporting

# What the client, device and country tables count: hits judged human or unknown
# (core.metrics.BREAKDOWN_VERDICTS), not hits proven to be a person's (docs/verdicts.md).
BREAKDOWN_HEADING = "hits (human or unknown verdict)"


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
    found = reporting.build(store, args.campaign, judge=True, config=config,
                            now=SystemClock().now())  # as of now
    lines = reporting.recipients(store, args.campaign) if args.recipients else None
    if args.json:
        _print_json(found.as_json(), lines)
        return 0
    print(f"Campaign: {printable(args.campaign or '(all)')}\n")
    print(_figures(found.counts, found.human))
    print("\n" + delivery_table(found.delivery))  # docs/inbound.md
    _links(found.human)
    _breakdowns(found.human)
    if lines is not None:
        _recipients(lines)
    return 0


def _print_json(body: dict[str, Any], lines: Iterator[RecipientLine] | None) -> None:
    """The report's JSON; recipient lines are written as they are read, never held."""
    text = json.dumps(body, indent=2)
    if lines is None:
        print(text)
        return
    out = sys.stdout
    out.write(text[:-2] + ',\n  "recipients": [')
    for i, line in enumerate(lines):
        out.write(("," if i else "") + "\n    " + json.dumps(vars(line)))
    out.write("\n  ]\n}\n")


def _recipients(lines: Iterator[RecipientLine]) -> None:
    """The recipient table, a page of lines at a time (column widths per page)."""
    head = ["recipient", "relay", "engagement", "opens", "clicks"]
    while page := list(itertools.islice(lines, 1000)):
        print()
        print(render(head, [(r.recipient, r.status, r.engagement, r.opens, r.clicks)
                            for r in page]))


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
            print(render([title, BREAKDOWN_HEADING], rows))
