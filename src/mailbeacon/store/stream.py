"""The event stream in commit order: one cursor for the judge, ``events --follow`` and the API.

An event id is handed out at INSERT, not at COMMIT. With several writers (the
group committer, the inbound pipeline, ``send``) on PostgreSQL, id 7 can
commit after id 8, so a reader that asks for "ids above the last one I read"
skips 7 for ever. Every event row therefore carries the id of the
transaction that wrote it (``events.tx``), and the stream is read in
``(tx, id)`` order after a cursor ``(tx, id)``, only below the *horizon*:
the oldest transaction id still running (``pg_snapshot_xmin`` of the
statement's own snapshot). No transaction still running can commit a row
below that horizon, and every transaction that starts later gets a higher
id, so once a reader has passed a ``(tx, id)`` nothing can appear behind it.

The consequence: a transaction that stays open holds the horizon back, and
the judge, ``events --follow`` and ``/api/events`` see nothing written after
it began (by anyone) until it ends. Writers here commit within a second; an
``idle in transaction`` session from elsewhere (a psql left open after an
INSERT, a stuck migration) delays the stream by as long as it stays open. Only
transactions that wrote something hold it back: read-only ones have no id. The
horizon is the whole server's: transaction ids are shared by every database
of a PostgreSQL cluster, so a writer in *another* database holds it back too.

``settle`` waits for the transactions running at the moment it is called, for
a reader that must see everything committed before it started (``report``).

SQLite serialises writers, so ids are already in commit order: ``tx`` is 0
on every row and the cursor is ``(0, id)``, the same as paging by id.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbeacon.errors import MailbeaconError
from mailbeacon.store.schema import events
from mailbeacon.store.sql import SqlStore

# The oldest transaction still running, as of the statement's snapshot.
PG_HORIZON: sa.ColumnElement[int] = sa.literal_column(
    "pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
MAX_BIGINT = 2**63 - 1
_CURSOR = re.compile(r"(?:([0-9]{1,19})\.)?([0-9]{1,19})")


class BadCursor(MailbeaconError):
    """A stream position that is neither ``TX.ID`` nor an event id."""


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in the stream: the last (transaction, event id) read."""

    tx: int = 0
    id: int = 0

    def __str__(self) -> str:
        return f"{self.tx}.{self.id}"

    @property
    def is_plain_id(self) -> bool:
        """Only an event id (written before cursors had a transaction), not yet resolved."""
        return self.tx == 0 and self.id > 0

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``TX.ID`` as the stream hands it out, or a plain event id (``ID``)."""
        found = _CURSOR.fullmatch(text.strip())
        if found is None:
            raise BadCursor(f"{text[:40]!r} is not a stream position: use TX.ID as given "
                            "by the last page (or an event id)")
        tx, id_ = int(found.group(1) or 0), int(found.group(2))
        if tx > MAX_BIGINT or id_ > MAX_BIGINT:
            raise BadCursor(f"{text[:40]!r} is out of range")
        return cls(tx, id_)


START = Cursor()


def of(row: Any) -> Cursor:
    """The cursor just past ``row`` (an events row)."""
    return Cursor(int(row.tx), int(row.id))


def resolve(conn: Connection, cursor: Cursor) -> Cursor:
    """Give a plain event id the transaction of that event.

    A plain id comes from a judge cursor saved before ``events.tx`` existed, or
    from an API client that still sends ``after=ID``. Every row that existed
    when migration 0006 ran got that migration's transaction id, so the event's
    own ``tx`` puts the cursor exactly where "ids above ID" used to; later rows
    all have higher transaction ids. On SQLite ``tx`` is 0 and nothing changes.
    """
    if not cursor.is_plain_id or conn.dialect.name == "sqlite":
        return cursor
    tx = conn.scalar(sa.select(events.c.tx).where(events.c.id == cursor.id))
    if tx is None:  # an id that is not there: the highest transaction at or below it
        tx = conn.scalar(sa.select(sa.func.max(events.c.tx)).where(events.c.id <= cursor.id))
    return Cursor(int(tx or 0), cursor.id)


def committed(query: Any, dialect: str) -> Any:
    """``query`` limited to rows no running transaction can still precede."""
    return query.where(events.c.tx < PG_HORIZON) if dialect == "postgresql" else query


def after(query: Any, cursor: Cursor, dialect: str, limit: int) -> Any:
    """``query`` (over ``events``) reduced to the next ``limit`` rows past ``cursor``."""
    past = sa.tuple_(events.c.tx, events.c.id) > sa.tuple_(sa.literal(cursor.tx),
                                                          sa.literal(cursor.id))
    return committed(query.where(past), dialect).order_by(events.c.tx, events.c.id).limit(limit)


def newest(query: Any, dialect: str, limit: int) -> Any:
    """``query`` reduced to the last ``limit`` committed rows (newest first)."""
    return committed(query, dialect).order_by(events.c.tx.desc(), events.c.id.desc()).limit(limit)


def page(conn: Connection, cursor: Cursor, limit: int) -> list[Any]:
    """The next ``limit`` events rows past ``cursor``, in commit order."""
    return list(conn.execute(after(sa.select(events), resolve(conn, cursor),
                                   conn.dialect.name, limit)))


def settle(store: SqlStore, timeout: float) -> bool:
    """Wait (up to ``timeout`` seconds) until every transaction running now has ended, so
    the stream's horizon has passed everything committed before this call; True if so."""
    if store.dialect != "postgresql":
        return True
    deadline = time.monotonic() + timeout
    with store.connect() as conn:
        started = conn.scalar(sa.text("SELECT pg_snapshot_xmax(pg_current_snapshot())"
                                      "::text::bigint"))
        while int(conn.scalar(sa.select(PG_HORIZON)) or 0) < int(started or 0):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
    return True
