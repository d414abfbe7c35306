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
from mailbeacon.cli.common import existing_store, store_for, whole_number
from mailbeacon.cli.table import percent, printable, render
from mailbeacon.clock import SystemClock, iso
from mailbeacon.config import Config
from mailbeacon.core.delivery import DeliveryCounts
from mailbeacon.core.delivery import rates as delivery_rates
from mailbeacon.inbound.pipeline import Outcome, Pipeline
from mailbeacon.services import inbound


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
    q.add_argument("ids", nargs="*", type=whole_number, metavar="ID",
                   help="rematch/show only these")
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=run_quarantine)
    q = verbs.add_parser("poll", parents=[parent], help="run the IMAP poller (--imap) here")
    q.add_argument("--once", action="store_true", help="drain the folder once and exit")
    q.set_defaults(run=run_poll)


def run_parse(args: argparse.Namespace, config: Config) -> int:
    rows: list[tuple[object, ...]] = []
    for doc in inbound.parse_files(args.files):
        if args.json:
            print(json.dumps(doc), flush=True)
        rows.extend((doc["file"], doc["kind"], r["recipient"], r["action"] or r.get("disposition"),
                     r["status"], r["reason"], r["hard"]) for r in doc["recipients"])
        if not doc["recipients"]:
            rows.append((doc["file"], doc["kind"], "", "", "", "", ""))
    if not args.json:
        print(render(["file", "kind", "recipient", "action", "status", "reason", "hard"], rows))
    return 0


def pipeline_for(config: Config, *, create: bool = True) -> Pipeline:
    """``create``: import and poll record what comes in, and may create the store."""
    store = store_for(config) if create else existing_store(config)
    return inbound.pipeline(config, store, keys.load_or_create(config.data_path),
                            SystemClock())


def _show(outcomes: list[tuple[str, Outcome]], as_json: bool) -> None:
    if as_json:
        for name, o in outcomes:
            print(json.dumps({"file": name, **asdict(o)}))
        return
    print(render(
        ["message", "inbound", "status", "kind", "copy", "events / reason"],
        [(n, o.inbound, o.status, o.kind, o.message or "", ", ".join(o.events) or o.reason)
         for n, o in outcomes]))


def run_import(args: argparse.Namespace, config: Config) -> int:
    _show(inbound.import_path(pipeline_for(config), args.path), args.json)
    return 0


def run_quarantine(args: argparse.Namespace, config: Config) -> int:
    if args.action == "rematch":
        outcomes = inbound.rematch(pipeline_for(config, create=False), args.ids)
        _show([(str(o.inbound), o) for o in outcomes], args.json)
        return 0
    rows = inbound.quarantined(existing_store(config), args.ids)
    if args.action == "show":
        for r in rows:
            print(printable(f"== inbound {r.id}: {r.reason}"))
            print(printable(r.raw.decode("utf-8", "replace"), keep_lines=True))
    elif args.json:
        for r in rows:
            print(json.dumps(r.as_json()))
    else:
        print(render(["id", "received", "source", "kind", "reason"],
                     [(r.id, iso(r.received_at), r.source, r.kind, r.reason) for r in rows]))
    return 0


def run_poll(args: argparse.Namespace, config: Config) -> int:
    settings, stop = inbound.imap_settings(config), threading.Event()
    poller = inbound.poller(settings, pipeline_for(config), stop)
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
