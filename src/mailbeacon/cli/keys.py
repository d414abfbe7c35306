"""``mailbeacon keys``: list the signing keys, or rotate to a new one."""

from __future__ import annotations

import argparse
from typing import Any

from mailbeacon import keys as keyfile
from mailbeacon.config import Config


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("keys", parents=[parent], help="list or rotate the signing keys",
                       description="Tokens in mail are signed with the active key; every key "
                       "in the keyring still verifies, so rotating breaks no mail already sent.")
    p.add_argument("action", choices=["list", "rotate"], nargs="?", default="list")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action == "rotate":
        keyring = keyfile.rotate(config.data_path)
        print(f"key {keyring.active} is now active; {len(keyring.keys)} keys verify")
        return 0
    keyring = keyfile.load_or_create(config.data_path)
    for kid in sorted(keyring.keys):
        print(f"key {kid}{'  (active: signs new mail)' if kid == keyring.active else ''}")
    return 0
