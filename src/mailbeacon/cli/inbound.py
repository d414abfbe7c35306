"""``mailbeacon inbound``: parse, import, the quarantine, and the IMAP poller in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mailbeacon import keys
from mailbeacon.cli.common import existing_store, store_for
from mailbeacon.cli.table import percent, printable, render
from mailbeacon.clock import SystemClock, iso
from mailbeacon.config import Config
from mailbeacon.core import reports
from mailbeacon.core.delivery import DeliveryCounts
from mailbeacon.core.delivery import rates as delivery_rates
from mailbeacon.core.reports import Report
from mailbeacon.errors import MailbeaconError
from mailbeacon.inbound import files
from mailbeacon.inbound.imap import ImapPoller, ImapSettings
from mailbeacon.inbound.pipeline import Outcome, Pipeline
from mailbeacon.store import inbound as db

RECIPIENT_KEYS = ("recipient", "action", "status", "reason", "hard", "diagnostic")


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "inbound",
        parents=[parent],
        help="bounces, receipts and replies that came back",
        description="Read what mail servers and recipients send back: parse "
        "files, import them, list or re-match the quarantine, poll IMAP. "
        "See docs/inbound.md.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    q = verbs.add_parser(
        "parse", parents=[parent], help="show what the parsers make of files (stores nothing)"
    )
    q.add_argument("files", nargs="+", type=Path, metavar="FILE")
    q.add_argument("--json", action="store_true", help="one JSON object per file")
    q.set_defaults(run=run_parse)
    q = verbs.add_parser("import", parents=[parent], help="import an .eml, a Maildir or an mbox")
    q.add_argument("path", type=Path, metavar="PATH")
    q.add_argument("--json", action="store_true", help="one JSON object per message")
    q.set_defaults(run=run_import)
    q = verbs.add_parser("quarantine", parents=[parent], help="what matched nothing")
    q.add_argument("action", nargs="?", choices=("list", "rematch", "show"), default="list")
    q.add_argument("ids", nargs="*", type=int, metavar="ID", help="rematch/show only these")
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=run_quarantine)
    q = verbs.add_parser("poll", parents=[parent], help="run the IMAP poller (--imap) here")
    q.add_argument("--once", action="store_true", help="drain the folder once and exit")
    q.set_defaults(run=run_poll)


def parsed(name: str, report: Report) -> dict[str, Any]:
    """The stable JSON form of ``inbound parse --json``."""
    recipients = [
        {k: getattr(r, k) for k in RECIPIENT_KEYS}
        | {"original_recipient": r.original_recipient, "remote_mta": r.remote_mta}
        for r in report.recipients
    ]
    if report.mdn is not None:
        mdn = asdict(report.mdn)
        recipients = recipients or [
            {
                "recipient": report.mdn.final_recipient,
                "action": "",
                "status": "",
                "reason": "",
                "hard": False,
                "diagnostic": report.mdn.error,
            }
        ]
        for r in recipients:
            r.update(
                disposition=mdn["type"],
                action_mode=mdn["action_mode"],
                sending_mode=mdn["sending_mode"],
                modifiers=mdn["modifiers"],
            )
    if report.feedback is not None:
        f = asdict(report.feedback)
        recipients = recipients or [
            {
                "recipient": a,
                "action": "",
                "status": "",
                "reason": "",
                "hard": False,
                "diagnostic": "",
            }
            for a in report.feedback.original_rcpt_to or [""]
        ]
        for r in recipients:
            r.update(
                feedback_type=f["feedback_type"],
                user_agent=f["user_agent"],
                source_ip=f["source_ip"],
            )
    return {
        "file": name,
        "kind": report.kind,
        "recipients": recipients,
        "envelope_id": report.envelope_id,
        "original_message_id": report.original_message_id,
        "in_reply_to": report.in_reply_to,
        "subject": report.subject,
        "from": report.from_address,
        "mdn": asdict(report.mdn) if report.mdn else None,
        "feedback": asdict(report.feedback) if report.feedback else None,
        "errors": report.errors,
    }


def run_parse(args: argparse.Namespace, config: Config) -> int:
    rows: list[tuple[object, ...]] = []
    for path in args.files:
        for name, raw in files.messages(path):
            doc = parsed(name, reports.parse(raw))
            if args.json:
                print(json.dumps(doc), flush=True)
            rows.extend(
                (
                    name,
                    doc["kind"],
                    r["recipient"],
                    r["action"] or r.get("disposition"),
                    r["status"],
                    r["reason"],
                    r["hard"],
                )
                for r in doc["recipients"]
            )
            if not doc["recipients"]:
                rows.append((name, doc["kind"], "", "", "", "", ""))
    if not args.json:
        print(render(["file", "kind", "recipient", "action", "status", "reason", "hard"], rows))
    return 0


def pipeline_for(config: Config) -> Pipeline:
    return Pipeline.from_config(
        config, store_for(config), keys.load_or_create(config.data_path), SystemClock()
    )


def _show(outcomes: list[tuple[str, Outcome]], as_json: bool) -> None:
    if as_json:
        for name, o in outcomes:
            print(json.dumps({"file": name, **asdict(o)}))
        return
    print(
        render(
            ["message", "inbound", "status", "kind", "copy", "events / reason"],
            [
                (n, o.inbound, o.status, o.kind, o.message or "", ", ".join(o.events) or o.reason)
                for n, o in outcomes
            ],
        )
    )


def run_import(args: argparse.Namespace, config: Config) -> int:
    pipeline = pipeline_for(config)
    outcomes = [
        (name, pipeline.receive(raw, source="file")) for name, raw in files.messages(args.path)
    ]
    _show(outcomes, args.json)
    return 0


def run_quarantine(args: argparse.Namespace, config: Config) -> int:
    if args.action == "rematch":
        pipeline = pipeline_for(config)
        outcomes = pipeline.rematch(args.ids or None)
        _show([(str(o.inbound), o) for o in outcomes], args.json)
        return 0
    rows = db.listing(existing_store(config), "quarantined")
    if args.ids:
        rows = [r for r in rows if r.id in set(args.ids)]
        missing = sorted(set(args.ids) - {r.id for r in rows})
        if missing:
            raise MailbeaconError(f"no quarantined message {', '.join(map(str, missing))} "
                                  "(see `mailbeacon inbound quarantine list`)")
    if args.action == "show":
        for r in rows:
            print(printable(f"== inbound {r.id}: {r.reason}"))
            print(printable(r.raw.decode("utf-8", "replace"), keep_lines=True))
        return 0
    if args.json:
        for r in rows:
            print(json.dumps(r.as_json()))
    else:
        print(
            render(
                ["id", "received", "source", "kind", "reason"],
                [(r.id, iso(r.received_at), r.source, r.kind, r.reason) for r in rows],
            )
        )
    return 0


def run_poll(args: argparse.Namespace, config: Config) -> int:
    if not config.imap:
        raise MailbeaconError("no mailbox to poll: set --imap (see docs/inbound.md)")
    pipeline = pipeline_for(config)
    stop = threading.Event()
    poller = ImapPoller(
        ImapSettings.from_config(config), lambda raw: pipeline.receive(raw, source="imap"), stop
    )
    if args.once:
        print(f"processed {poller.run_once()} message(s)")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        poller.run()
    except KeyboardInterrupt:
        stop.set()
    print(f"processed {poller.processed} message(s)")
    return 0


def delivery_table(c: DeliveryCounts) -> str:
    """The "what came back" figures of ``mailbeacon report`` (definitions: docs/events.md)."""
    r = delivery_rates(c)
    return render(
        ["what came back", "copies", "rate"],
        [
            ("delivered (DSN)", c.delivered, percent(r.delivered_rate)),
            ("relayed (no receipt can come)", c.relayed, ""),
            ("delayed", c.delayed, ""),
            ("bounced later", c.bounced, percent(r.bounce_rate)),
            ("  hard", c.hard_bounced, percent(r.hard_bounce_rate)),
            ("  soft", c.soft_bounced, percent(r.soft_bounce_rate)),
            ("complained", c.complained, percent(r.complaint_rate)),
            ("read receipts", c.read, percent(r.read_receipt_rate)),
            ("  by a person's action", c.read_manual, ""),
            ("receipts denied / deleted", f"{c.receipts_denied} / {c.receipts_deleted}", ""),
            ("replied", c.replied, percent(r.reply_rate)),
            ("auto-replied", c.auto_replied, ""),
            ("suppressed addresses (all campaigns)", c.suppressed, ""),
        ],
    )
