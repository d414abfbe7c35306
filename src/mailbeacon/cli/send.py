"""``mailbeacon send``: send tracked mail through the relay, one copy per recipient."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mailbeacon import keys
from mailbeacon.cli.common import store_for
from mailbeacon.cli.table import render
from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.errors import MailbeaconError, MimeError
from mailbeacon.services import sending
from mailbeacon.services.sending import Attachment, Draft, Sent


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "send", parents=[parent], help="send tracked mail",
        description="Compose (--html/--text) or take (--eml) a message and send one tracked "
        "copy per recipient through --smtp. Exit status 0 when every copy was accepted, 3 when "
        "some were bounced or deferred. The tracking level is the --track setting: identified, "
        "anonymous (hits counted, never tied to a recipient) or off (mail sent untouched).")
    p.add_argument("--from", dest="sender", required=True, metavar="ADDRESS")
    p.add_argument("--to", dest="to", action="append", required=True, metavar="ADDRESS",
                   help="a recipient (repeat for more)")
    p.add_argument("--subject", default="", help="subject (ignored with --eml)")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--html", type=Path, metavar="FILE", help="HTML body (UTF-8)")
    body.add_argument("--text", type=Path, metavar="FILE", help="plain-text body (UTF-8)")
    body.add_argument("--eml", type=Path, metavar="FILE", help="a complete message to send")
    p.add_argument("--text-alt", type=Path, metavar="FILE",
                   help="with --html: a plain-text alternative")
    p.add_argument("--attach", type=Path, action="append", default=[], metavar="FILE")
    p.add_argument("--track-attachments", action="store_true",
                   help="replace attachments by tracked download links served by mailbeacon")
    p.add_argument("--campaign", default="default", metavar="NAME")
    p.add_argument("--receipt", action="store_true",
                   help="ask for a read receipt (Disposition-Notification-To)")
    p.add_argument("--receipt-legacy", action="store_true",
                   help="with --receipt: also Return-Receipt-To and X-Confirm-Reading-To")
    p.add_argument("--dsn", default="failure,delay", metavar="WHEN",
                   help="delivery reports to ask the relay for: any of success,failure,delay, "
                   "or never (default failure,delay)")
    p.add_argument("--include-suppressed", action="store_true",
                   help="send to addresses on the suppression list too (mailbeacon suppress)")
    p.add_argument("--json", action="store_true", help="one JSON object per recipient")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    sending.check_addresses(args.sender, args.to)  # before reading any file: the first mistake
    if args.eml and (args.attach or args.text_alt):
        raise MailbeaconError("--attach and --text-alt go with --html/--text, not --eml")
    clock = SystemClock()
    results = sending.send_draft(_draft(args), config=config, store=store_for(config),
                                 keyring=keys.load_or_create(config.data_path), clock=clock)
    _show(results, args.json)
    return 0 if sending.all_sent(results) else 3


def _draft(args: argparse.Namespace) -> Draft:
    return Draft(
        sender=args.sender, recipients=tuple(args.to), subject=args.subject,
        html=_text(args.html), text=_text(args.text) if args.text else _text(args.text_alt),
        eml=_read(args.eml) if args.eml else None,
        attachments=tuple(_attachment(path) for path in args.attach),
        campaign=args.campaign, receipt=args.receipt, legacy_receipt=args.receipt_legacy,
        dsn=args.dsn, track_attachments=args.track_attachments,
        include_suppressed=args.include_suppressed)


def _show(results: list[Sent], as_json: bool) -> None:
    if as_json:
        for r in results:
            print(json.dumps(r.as_json()))
        return
    print(render(["recipient", "status", "code", "message id", "detail"],
                 [(r.recipient, r.status, r.code, r.message_id, r.detail) for r in results]))
    if results and not results[0].dsn:
        print("\nnote: the relay does not offer DSN; no delivery reports were requested")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MailbeaconError(f"cannot read {path}: {exc.strerror}") from exc


def _text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return _read(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MailbeaconError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from exc


def _attachment(path: Path) -> Attachment:
    try:
        return Attachment(path.name, path.read_bytes())
    except OSError as exc:
        raise MimeError(f"cannot read attachment {path}: {exc.strerror}") from exc
