"""``mailbeacon``: one entry point, one module per subcommand.

Every subcommand takes the global settings as flags (see ``config.SETTINGS``);
``mailbeacon settings`` shows each value and where it came from.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from mailbeacon import __version__, config
from mailbeacon.cli import (
    apikey,
    events,
    inbound,
    judge,
    keys,
    mdn,
    migrate,
    rebuild,
    report,
    send,
    serve,
    settings,
    suppress,
    timeline,
)
from mailbeacon.cli.table import printable
from mailbeacon.errors import MailbeaconError

COMMANDS = (serve, send, report, events, timeline, judge, migrate, keys, settings,
            inbound, suppress, mdn, apikey, rebuild)  # what comes back: docs/inbound.md


def settings_parser() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings (also MAILBEACON_* variables and mailbeacon.toml)")
    for s in config.SETTINGS:
        # default=SUPPRESS: an unset flag leaves no attribute, so a setting given
        # before a subcommand's verb is not overwritten by the verb's own default.
        group.add_argument(f"--{s.name}", dest=f"setting_{s.attr}", metavar=s.metavar,
                           default=argparse.SUPPRESS,
                           help=f"{s.help} [{s.env}; default: {s.default or 'empty'}]")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbeacon",
        description="Self-hosted email tracking: delivery, opens, clicks and read receipts.",
    )
    parser.add_argument("--version", action="version", version=f"mailbeacon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = settings_parser()
    for module in COMMANDS:
        module.add_parser(sub, parent)
    return parser


def flags_from(args: argparse.Namespace) -> dict[str, str | None]:
    return {s.name: getattr(args, f"setting_{s.attr}", None) for s in config.SETTINGS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config.load(flags_from(args))
        return int(args.run(args, cfg) or 0)
    except MailbeaconError as exc:
        print(f"mailbeacon: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
