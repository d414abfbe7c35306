"""``mailbeacon mdn MESSAGE.eml``: build the read receipt a message asks for (RFC 8098).

Sending one is the recipient's choice (RFC 8098 section 2.1): this prints it,
and sends it through --smtp only when told to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.core.reports.mdn import DISPOSITION_TYPES
from mailbeacon.errors import MailbeaconError
from mailbeacon.services import receipts


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "mdn",
        parents=[parent],
        help="build (and send) a read receipt",
        description="Print the read receipt (RFC 8098 MDN) answering a "
        "message that asked for one with Disposition-Notification-To.",
    )
    p.add_argument("message", type=Path, metavar="MESSAGE.eml")
    p.add_argument("--disposition", choices=DISPOSITION_TYPES, default="displayed")
    p.add_argument(
        "--from",
        dest="sender",
        required=True,
        metavar="ADDRESS",
        help="the recipient's address, who sends the receipt",
    )
    p.add_argument(
        "--automatic",
        action="store_true",
        help="automatic-action/MDN-sent-automatically (default: manual)",
    )
    p.add_argument("--send", action="store_true", help="send it through --smtp")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        original = args.message.read_bytes()
    except OSError as exc:
        raise MailbeaconError(f"cannot read {args.message}: {exc.strerror}") from exc
    receipt = receipts.build(original, args.disposition, sender=args.sender,
                             manual=not args.automatic, clock=SystemClock())
    if not args.send:
        sys.stdout.buffer.write(receipt)
        return 0
    to, answer = receipts.send(original, receipt, config)
    print(f"{to}: {answer.status} {answer.code or ''} {answer.message}")
    return 0 if answer.status == "sent" else 3
