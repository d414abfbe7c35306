"""``mailbeacon timeline ADDRESS``: one recipient's story, oldest first."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailbeacon.cli.common import existing_store
from mailbeacon.cli.events import show
from mailbeacon.cli.table import printable
from mailbeacon.config import Config
from mailbeacon.services import events


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("timeline", parents=[parent], help="one recipient's story",
                       description="Every event of every message sent to ADDRESS, in order.")
    p.add_argument("address")
    p.add_argument("--json", action="store_true", help="a JSON list")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    views = events.timeline(existing_store(config), args.address)
    if args.json:
        print(json.dumps([v.as_json() for v in views], indent=2))
    elif not views:
        print(f"nothing sent to {printable(args.address)} yet")
    else:
        show(views, False, header=True)
    return 0
