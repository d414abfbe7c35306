"""``mailbeacon rebuild``: recompute every report rollup from the raw events."""

from __future__ import annotations

import argparse
import time
from typing import Any

from mailbeacon.cli.common import existing_store
from mailbeacon.config import Config
from mailbeacon.core.verdicts import load_country_db
from mailbeacon.store import rollups


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "rebuild", parents=[parent], help="recompute the report rollups from the events",
        description="Recompute every counter reports read (totals, uniques, links, "
        "verdicts, clients, devices, countries, the hourly series) from the raw hits and "
        "their current verdicts, in one transaction. The judge keeps them up to date on "
        "its own; run this after upgrading a store made before rollups existed, or after "
        "changing --country-db. A judge pass waits while it runs.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    store = existing_store(config)
    geo = load_country_db(config.country_db) if config.country_db else None
    started = time.monotonic()
    hits = rollups.rebuild(store.engine, country_db=geo)
    print(f"{hits} judged hits counted in {time.monotonic() - started:.1f}s")
    return 0
