"""``mailbeacon events``: the event stream, as a table or JSON lines; ``--follow`` tails it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailbeacon.cli.common import existing_store, whole_number
from mailbeacon.cli.table import render
from mailbeacon.clock import iso
from mailbeacon.config import Config
from mailbeacon.services import events
from mailbeacon.services.events import EventView


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("events", parents=[parent], help="list or follow events",
                       description="List events (sent, bounced, deferred, open, click, "
                       "download, ...), newest last. --json prints one JSON object per line "
                       "(keys documented in docs/events.md).")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--campaign", metavar="NAME")
    p.add_argument("--limit", type=whole_number, default=50,
                   help="how many recent events (default 50)")
    p.add_argument("--interval", type=float, default=1.0, help="--follow poll seconds")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    store = existing_store(config)
    cid = events.campaign_id(store, args.campaign or None)
    page = events.recent(store, limit=args.limit, campaign=cid)
    show(page.events, args.json, header=True)
    if args.follow:
        for views in events.follow(store, page.next, campaign=cid, interval=args.interval):
            show(views, args.json, header=False)
    return 0


def show(views: list[EventView], as_json: bool, header: bool) -> None:
    if as_json:
        for v in views:
            print(json.dumps(v.as_json()), flush=True)
        return
    rows = [(iso(v.at), v.kind, v.recipient or "(anonymous)", v.campaign, _what(v))
            for v in views]
    text = render(["at", "kind", "recipient", "campaign", "detail"], rows)
    print(text if header else "\n".join(text.splitlines()[2:]), flush=True)


def _what(v: EventView) -> str:
    if v.is_hit:
        judged = f"[{v.verdict} {v.confidence:.2f}]" if v.verdict else "[not judged yet]"
        parts = [judged, v.url, v.method if v.method != "GET" else "", v.ip, v.user_agent]
        return " ".join(p for p in parts if p)
    return _summary(v.detail)


# What a person wants to read first, in order, of an event's detail.
_SUMMARY_KEYS = ("reason", "status", "disposition", "action_mode", "feedback_type", "code",
                 "message", "diagnostic", "reporting_ua", "matched_by")


def _summary(detail: dict[str, object]) -> str:
    parts = []
    for key in _SUMMARY_KEYS:
        value = detail.get(key)
        if value in (None, "", []):
            continue
        if key == "reason" and "hard" in detail:
            value = f"{value} ({'hard' if detail['hard'] else 'soft'})"
        parts.append(str(value) if key in ("message", "diagnostic") else f"{key}={value}")
    return " ".join(parts) if parts else (json.dumps(detail) if detail else "")
