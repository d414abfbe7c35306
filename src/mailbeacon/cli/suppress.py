"""``mailbeacon suppress``: the addresses ``send`` skips (list, add, remove)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailbeacon.cli.common import existing_store
from mailbeacon.cli.table import render
from mailbeacon.clock import SystemClock, iso
from mailbeacon.config import Config
from mailbeacon.services import suppressions


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "suppress",
        parents=[parent],
        help="the suppression list",
        description="Addresses that bounced hard, bounced soft repeatedly or "
        "complained are put on the list; send skips them unless "
        "--include-suppressed. See docs/inbound.md.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    q = verbs.add_parser("list", parents=[parent], help="show the list")
    q.add_argument("--json", action="store_true", help="one JSON object per address")
    q.set_defaults(run=run_list)
    q = verbs.add_parser("add", parents=[parent], help="put addresses on the list")
    q.add_argument("addresses", nargs="+", metavar="ADDRESS")
    q.add_argument("--reason", default="added by hand")
    q.set_defaults(run=run_add)
    q = verbs.add_parser("remove", parents=[parent], help="take addresses off the list")
    q.add_argument("addresses", nargs="+", metavar="ADDRESS")
    q.set_defaults(run=run_remove)


def run_list(args: argparse.Namespace, config: Config) -> int:
    rows = suppressions.listing(existing_store(config))
    if args.json:
        for r in rows:
            print(json.dumps({"address": r.address, "reason": r.reason, "source": r.source,
                              "inbound": r.inbound, "created_at": iso(r.created_at)}))
    else:
        print(render(["address", "since", "source", "reason"],
                     [(r.address, iso(r.created_at), r.source, r.reason) for r in rows]))
    return 0


def run_add(args: argparse.Namespace, config: Config) -> int:
    suppressions.add(existing_store(config), args.addresses, args.reason, SystemClock().now())
    return 0


def run_remove(args: argparse.Namespace, config: Config) -> int:
    suppressions.remove(existing_store(config), args.addresses)
    return 0
