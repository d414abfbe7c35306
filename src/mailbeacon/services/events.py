"""The event stream as users read it: the newest events, pages in commit order (the API),
following new ones as they commit, one recipient's timeline, and one hit explained.

Every reader goes through ``store.stream``'s cursor, so the CLI's ``--follow``
and ``/api/events`` see each committed event once, in the same order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mailbeacon.errors import MailbeaconError
from mailbeacon.services.campaigns import UnknownCampaign, campaign_id
from mailbeacon.store import engagement, queries
from mailbeacon.store.queries import EventPage, EventView
from mailbeacon.store.sql import SqlStore
from mailbeacon.store.stream import START, BadCursor, Cursor

MAX_PAGE = 1000  # events in one page of /api/events, and one read of --follow

__all__ = ["BadCursor", "BadPage", "Cursor", "EventPage", "EventView", "Explanation",
           "NoSuchEvent", "UnknownCampaign", "campaign_id", "cursor", "explain", "follow",
           "page", "recent", "timeline"]


class NoSuchEvent(MailbeaconError):
    """An event id that names no event."""


class BadPage(MailbeaconError):
    """A page of the stream asked for with a size out of range."""


def cursor(text: str) -> Cursor:
    """A stream position as a reader gave it back (``TX.ID``, or a plain event id)."""
    return Cursor.parse(text)


def recent(store: SqlStore, *, limit: int, campaign: int | None = None) -> EventPage:
    """The last ``limit`` committed events, oldest first; its ``next`` follows on after them."""
    if limit < 1:
        raise BadPage("limit must be above 0")
    return queries.newest_events(store, limit=limit, campaign=campaign)


def page(store: SqlStore, *, after: Cursor = START, limit: int = 100,
         campaign: int | None = None) -> EventPage:
    """The next ``limit`` events past ``after`` in commit order."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadPage(f"limit must be 1 to {MAX_PAGE}")
    return queries.event_page(store, after=after, limit=limit, campaign=campaign)


def follow(store: SqlStore, after: Cursor, *, campaign: int | None = None,
           interval: float = 1.0,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[list[EventView]]:
    """Events committed past ``after``, a batch every ``interval`` seconds that brings any,
    for ever. In commit order: an event committed late still comes, once."""
    while True:
        sleep(interval)
        found = queries.event_page(store, after=after, limit=MAX_PAGE, campaign=campaign)
        after = found.next
        if found.events:
            yield found.events


def timeline(store: SqlStore, address: str) -> list[EventView]:
    """Every event of every copy sent to ``address``, oldest first."""
    if not address.strip():
        raise MailbeaconError("no address given: name the recipient whose timeline to show")
    return queries.timeline(store, address)


@dataclass(frozen=True)
class Explanation:
    """A hit as recorded, and every verdict it has had, oldest first (reasons as a list)."""

    hit: dict[str, Any]
    verdicts: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"event": self.hit, "verdicts": self.verdicts}


def explain(store: SqlStore, event: int) -> Explanation:
    hit, verdicts = engagement.history(store, event)
    if hit is None:
        raise NoSuchEvent(f"no event {event}")
    return Explanation(hit, [{**v, "reasons": json.loads(v["reasons"])} for v in verdicts])
