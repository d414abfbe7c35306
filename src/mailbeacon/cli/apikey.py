"""``mailbeacon apikey``: the keys that let programs read ``/api/`` (create, list, revoke)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailbeacon.cli.common import existing_store, whole_number
from mailbeacon.cli.table import render
from mailbeacon.clock import SystemClock, iso
from mailbeacon.config import Config
from mailbeacon.services import api_keys


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "apikey", parents=[parent], help="API keys for /api/ (create, list, revoke)",
        description="Everything under /api/ answers only to a request carrying an API key "
        "(`Authorization: Bearer KEY`). A key is shown once, when it is made; only its hash "
        "is kept. See docs/api.md.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    q = verbs.add_parser("create", parents=[parent], help="make a key and print it once")
    q.add_argument("name", help="what the key is for (e.g. 'crm sync')")
    q.add_argument("--json", action="store_true", help="print the key as a JSON object")
    q.set_defaults(run=run_create)
    q = verbs.add_parser("list", parents=[parent], help="the keys (never their secrets)")
    q.add_argument("--json", action="store_true", help="one JSON object per key")
    q.set_defaults(run=run_list)
    q = verbs.add_parser("revoke", parents=[parent], help="stop a key working")
    q.add_argument("id", type=whole_number, help="the key's id, from `apikey list`")
    q.set_defaults(run=run_revoke)


def run_create(args: argparse.Namespace, config: Config) -> int:
    key, secret = api_keys.create(existing_store(config), args.name, SystemClock().now())
    if args.json:
        print(json.dumps({"id": key.id, "name": key.name, "key": secret}))
    else:
        print(f"API key {key.id} ({key.name}): {secret}")
        print("Keep it now: it is not shown again. Use it as `Authorization: Bearer <key>`.")
    return 0


def run_list(args: argparse.Namespace, config: Config) -> int:
    keys = api_keys.listing(existing_store(config))
    if args.json:
        for k in keys:
            print(json.dumps({"id": k.id, "name": k.name, "prefix": k.prefix,
                              "created_at": iso(k.created_at),
                              "last_used_at": iso(k.last_used_at) if k.last_used_at else None,
                              "revoked_at": iso(k.revoked_at) if k.revoked_at else None}))
        return 0
    print(render(["id", "name", "key", "created", "last used", "state"], [
        (k.id, k.name, k.prefix + "...", iso(k.created_at),
         iso(k.last_used_at) if k.last_used_at else "never",
         "active" if k.active else f"revoked {iso(k.revoked_at or 0)}") for k in keys]))
    return 0


def run_revoke(args: argparse.Namespace, config: Config) -> int:
    key = api_keys.revoke(existing_store(config), args.id, SystemClock().now())
    print(f"API key {key.id} ({key.name}) is revoked")
    return 0
