"""services.inbound and services.suppressions on a real store: parsing stores nothing, the
quarantine names ids it does not hold, and an address list with a mistake adds nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailbeacon import config as cfg
from mailbeacon import keys
from mailbeacon.clock import FixedClock
from mailbeacon.errors import MailbeaconError
from mailbeacon.inbound.pipeline import Pipeline
from mailbeacon.services import inbound, suppressions
from mailbeacon.store import inbound as inbound_store
from mailbeacon.store.sql import SqlStore

DATA = Path(__file__).parent.parent / "data" / "reports"


def _pipeline(store: SqlStore, tmp_path: Path) -> Pipeline:
    config = cfg.load({"data-dir": str(tmp_path)}, environ={})
    return inbound.pipeline(config, store, keys.load_or_create(tmp_path), FixedClock())


def test_parsing_names_each_message_and_stores_nothing(store: SqlStore) -> None:
    docs = list(inbound.parse_files([DATA / "outlook-read-receipt.eml",
                                     DATA / "dsn-as-text-plain.eml"]))
    assert [Path(d["file"]).name for d in docs] == ["outlook-read-receipt.eml",
                                                    "dsn-as-text-plain.eml"]
    assert [d["kind"] for d in docs] == ["mdn", "dsn"]
    assert docs[0]["recipients"][0]["disposition"] == "displayed"
    assert inbound_store.listing(store) == []


def test_the_quarantine_holds_what_matched_nothing(store: SqlStore, tmp_path: Path) -> None:
    pipeline = _pipeline(store, tmp_path)
    [(_, outcome)] = inbound.import_path(pipeline, DATA / "human-reply.eml")
    assert outcome.status == "quarantined"  # nothing was sent: nothing to match
    assert [r.id for r in inbound.quarantined(store)] == [outcome.inbound]
    assert [r.id for r in inbound.quarantined(store, [outcome.inbound])] == [outcome.inbound]
    with pytest.raises(MailbeaconError, match=r"^no quarantined message 98, 99 \("):
        inbound.quarantined(store, [99, outcome.inbound, 98])
    [again] = inbound.rematch(pipeline, [outcome.inbound])
    assert (again.inbound, again.status) == (outcome.inbound, "quarantined")


def test_polling_needs_a_mailbox(store: SqlStore, tmp_path: Path) -> None:
    config = cfg.load({"data-dir": str(tmp_path)}, environ={})
    with pytest.raises(MailbeaconError, match=r"^no mailbox to poll: set --imap"):
        inbound.imap_settings(config)
    config = cfg.load({"data-dir": str(tmp_path), "imap": "imap://u:p@127.0.0.1:1"}, environ={})
    poller = inbound.poller(inbound.imap_settings(config), _pipeline(store, tmp_path),
                            threading.Event())
    assert (poller.settings.host, poller.settings.port) == ("127.0.0.1", 1)


def test_the_suppression_list_changes_all_or_nothing(store: SqlStore) -> None:
    with pytest.raises(MailbeaconError, match=r"^'nobody' is not an email address$"):
        suppressions.add(store, ["ann@example.com", "nobody"], "by hand", 1.0)
    assert suppressions.listing(store) == []
    suppressions.add(store, ["Ann@Example.com", "bob@example.net"], "by hand", 1.0)
    assert [(s.address, s.source) for s in suppressions.listing(store)] == [
        ("ann@example.com", "manual"), ("bob@example.net", "manual")]
    with pytest.raises(MailbeaconError, match=r"^not on the list: cyd@example.org$"):
        suppressions.remove(store, ["ann@example.com", "cyd@example.org"])
    assert [s.address for s in suppressions.listing(store)] == ["bob@example.net"]
