"""What comes back (bounces, receipts, complaints, replies), as users ask for it: parse files
without storing anything, import them, list and re-match the quarantine, poll IMAP.

Everything stored goes through one ``Pipeline`` (``inbound.pipeline``), whatever
brought it; see docs/inbound.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.core import reports
from mailbeacon.core.reports import Report
from mailbeacon.core.tokens import Keyring
from mailbeacon.errors import MailbeaconError
from mailbeacon.inbound import files
from mailbeacon.inbound.imap import ImapPoller, ImapSettings
from mailbeacon.inbound.pipeline import Outcome, Pipeline
from mailbeacon.store import inbound as db
from mailbeacon.store.inbound import InboundRow
from mailbeacon.store.sql import SqlStore

RECIPIENT_KEYS = ("recipient", "action", "status", "reason", "hard", "diagnostic")
_BLANK = {"action": "", "status": "", "reason": "", "hard": False}


def parse_files(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """What the parsers make of each message in ``paths`` (files, Maildirs, mboxes), in the
    stable JSON form of ``inbound parse --json``; stores nothing."""
    for path in paths:
        for name, raw in files.messages(path):
            yield parsed(name, reports.parse(raw))


def parsed(name: str, report: Report) -> dict[str, Any]:
    """The stable JSON form of one parsed report: one entry per recipient it is about, with
    the receipt's disposition or the complaint's feedback type beside each."""
    recipients = [
        {k: getattr(r, k) for k in RECIPIENT_KEYS}
        | {"original_recipient": r.original_recipient, "remote_mta": r.remote_mta}
        for r in report.recipients
    ]
    if report.mdn is not None:
        mdn = asdict(report.mdn)
        recipients = recipients or [
            {"recipient": report.mdn.final_recipient, **_BLANK, "diagnostic": report.mdn.error}
        ]
        for r in recipients:
            r.update(disposition=mdn["type"], action_mode=mdn["action_mode"],
                     sending_mode=mdn["sending_mode"], modifiers=mdn["modifiers"])
    if report.feedback is not None:
        f = asdict(report.feedback)
        recipients = recipients or [
            {"recipient": a, **_BLANK, "diagnostic": ""}
            for a in report.feedback.original_rcpt_to or [""]
        ]
        for r in recipients:
            r.update(feedback_type=f["feedback_type"], user_agent=f["user_agent"],
                     source_ip=f["source_ip"])
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


def pipeline(config: Config, store: SqlStore, keyring: Keyring, clock: Clock) -> Pipeline:
    return Pipeline.from_config(config, store, keyring, clock)


def import_path(into: Pipeline, path: Path) -> list[tuple[str, Outcome]]:
    """Keep and process every message in the .eml, Maildir or mbox at ``path``."""
    return [(name, into.receive(raw, source="file")) for name, raw in files.messages(path)]


def quarantined(store: SqlStore, ids: Sequence[int] = ()) -> list[InboundRow]:
    """The quarantine (what matched nothing, with the reason), or only ``ids`` of it."""
    if not ids:
        return db.listing(store, "quarantined")
    found = {i: db.get(store, i) for i in sorted(set(ids))}  # by id: past any listing limit
    rows = [r for r in found.values() if r is not None and r.status == "quarantined"]
    missing = sorted(set(found) - {r.id for r in rows})
    if missing:
        raise MailbeaconError(f"no quarantined message {', '.join(map(str, missing))} "
                              "(see `mailbeacon inbound quarantine list`)")
    return rows


def rematch(into: Pipeline, ids: Sequence[int] = ()) -> list[Outcome]:
    """Match quarantined messages again (all, or ``ids``): after a fix, or a late send.
    An id that is not in the quarantine is an error, before anything is matched."""
    if ids:
        quarantined(into.store, ids)
    return into.rematch(list(ids) or None)


def imap_settings(config: Config) -> ImapSettings:
    """The mailbox ``--imap`` names; an error when none is set."""
    if not config.imap:
        raise MailbeaconError("no mailbox to poll: set --imap (see docs/inbound.md)")
    return ImapSettings.from_config(config)


def poller(settings: ImapSettings, into: Pipeline, stop: threading.Event) -> ImapPoller:
    """A poller of the mailbox ``settings`` feeding ``into``; runs until ``stop`` is set."""
    return ImapPoller(settings, lambda raw: into.receive(raw, source="imap"), stop)
