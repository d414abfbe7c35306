"""``mailbeacon migrate``: create the store or bring an old one up to date."""

from __future__ import annotations

import argparse
from typing import Any

from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.store.sql import open_store


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("migrate", parents=[parent], help="create or upgrade the store",
                       description="Apply the schema migrations the store has not seen yet. "
                       "Every command does this on start; this one only reports it.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    store = open_store(config.db_url, create=True, now=SystemClock().now())
    names = store.applied_migrations()
    print(f"store {store.dialect}: {len(names)} migrations applied ({', '.join(names)})")
    store.close()
    return 0
