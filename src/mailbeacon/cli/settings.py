"""``mailbeacon settings``: every setting, its value and where the value came from."""

from __future__ import annotations

import argparse
from typing import Any

from mailbeacon import config as cfg
from mailbeacon.config import Config


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("settings", parents=[parent], help="show the settings in force",
                       description="Show each setting's value and its source (default, "
                       "mailbeacon.toml, environment or command line).")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    width = max(len(s.name) for s in cfg.SETTINGS) + 2
    for s in cfg.SETTINGS:
        value = config.values[s.name]
        if s.name == "smtp":
            value = _hide_password(str(value))
        print(f"{s.name:<{width}}{value!s:<40} ({config.sources[s.name]})")
    return 0


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
