"""``mailbeacon settings``: every setting, its value and where the value came from."""

from __future__ import annotations

import argparse
from typing import Any

from mailbeacon import config as cfg
from mailbeacon.cli.table import printable
from mailbeacon.config import Config


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("settings", parents=[parent], help="show the settings in force",
                       description="Show each setting's value as you would write it (passwords "
                       "hidden) and its source (default, mailbeacon.toml, environment or "
                       "command line). Every value has been checked: a bad one is an error.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    width = max(len(s.name) for s in cfg.SETTINGS) + 2
    for s in cfg.SETTINGS:
        value = printable(s.written(config.values[s.name]))
        print(f"{s.name:<{width}}{value:<40} ({printable(config.sources[s.name])})".rstrip())
    print(f"\nstore in use: {printable(cfg.hide_password(config.db_url))}")
    return 0
