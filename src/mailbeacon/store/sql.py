"""The event store on SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL (psycopg 3).

One implementation serves both; the differences (URL driver, SQLite pragmas)
are set up in ``open_store``. Writes that must be durable commit before they
return; the tracking server batches its hit inserts through an ``Appender``
(see ``writer.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from mailbeacon.core.events import COLUMNS, Event
from mailbeacon.errors import StoreError
from mailbeacon.store import schema
from mailbeacon.store.schema import attachments, campaigns, events, messages

S = schema


@dataclass(frozen=True)
class NewMessage:
    campaign: int
    sender: str
    recipient: str
    subject: str
    track_level: str


@dataclass(frozen=True)
class Attachment:
    id: int
    filename: str
    content_type: str
    data: bytes


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    if key is None:
        raise StoreError("the store did not return the new row's id")
    return int(key[0])


def normalise_url(url: str) -> str:
    """Pick psycopg 3 for PostgreSQL URLs that name no driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed transaction survives a power cut, not only a crash.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class SqlStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -----------------------------------------------------------------

    def applied_migrations(self) -> list[str]:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("migrations"):
                return []
            return list(conn.scalars(sa.select(S.migrations_table.c.name)))

    def migrate(self, now: float, upto: int | None = None) -> list[str]:
        """Apply the migrations this database has not seen; returns their names."""
        applied = set(self.applied_migrations())
        done = []
        with self.engine.begin() as conn:
            S.migrations_table.create(conn, checkfirst=True)
        for i, (name, steps) in enumerate(S.MIGRATIONS[:upto]):
            if name in applied:
                continue
            md = S.build(i + 1)
            with self.engine.begin() as conn:
                for step in steps:
                    step.run(conn, md)
                conn.execute(S.migrations_table.insert().values(name=name, applied_at=now))
            done.append(name)
        return done

    def check_schema(self) -> None:
        missing = [n for n, _ in S.MIGRATIONS if n not in set(self.applied_migrations())]
        if missing:
            raise StoreError(f"the store needs migrations {', '.join(missing)}: "
                             "run `mailbeacon migrate`")

    # -- campaigns and messages ---------------------------------------------------

    def campaign(self, name: str, now: float) -> int:
        """The id of the campaign called ``name``, created when new."""
        with self.engine.begin() as conn:
            found = conn.scalar(sa.select(campaigns.c.id).where(campaigns.c.name == name))
            if found is not None:
                return int(found)
            result = conn.execute(campaigns.insert().values(name=name, created_at=now))
            return _new_id(result)

    def add_messages(self, new: Sequence[NewMessage], now: float) -> list[int]:
        ids = []
        with self.engine.begin() as conn:
            for m in new:
                result = conn.execute(messages.insert().values(
                    campaign=m.campaign, sender=m.sender, recipient=m.recipient.lower(),
                    subject=m.subject, track_level=m.track_level, status="queued",
                    status_detail="", dsn_requested=False, links="[]", created_at=now))
                ids.append(_new_id(result))
        return ids

    def set_prepared(self, message: int, message_id: str, links: Sequence[str]) -> None:
        self.set_prepared_many([(message, message_id, links)])

    def set_prepared_many(self, prepared: Sequence[tuple[int, str, Sequence[str]]]) -> None:
        """Each copy's Message-ID and links, once instrumented, in one transaction."""
        if not prepared:
            return
        with self.engine.begin() as conn:
            conn.execute(messages.update().where(messages.c.id == sa.bindparam("copy")).values(
                message_id=sa.bindparam("new_message_id"), links=sa.bindparam("new_links")),
                [{"copy": m, "new_message_id": mid, "new_links": json.dumps(list(links))}
                 for m, mid, links in prepared])

    def discard_queued(self, ids: Sequence[int]) -> None:
        """Forget copies that were created but never handed to the relay."""
        with self.engine.begin() as conn:
            conn.execute(messages.delete().where(messages.c.id.in_(list(ids)),
                                                 messages.c.status == "queued"))

    def record_send(self, message: int, event: Event, *, code: int | None, detail: str,
                    dsn: bool) -> None:
        """The relay's answer for one copy: the message's status and its event, together."""
        with self.engine.begin() as conn:
            conn.execute(messages.update().where(messages.c.id == message).values(
                status=str(event.kind),
                status_code=code, status_detail=detail, dsn_requested=dsn,
                sent_at=event.at))
            conn.execute(events.insert(), [event.row()])

    def message_rows(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(messages).where(messages.c.id.in_(list(ids))))
            return [dict(r._mapping) for r in rows]

    # -- events -------------------------------------------------------------------

    def appender(self) -> Appender:
        return Appender(self.engine)

    def count_events(self, kind: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(events)
        if kind:
            query = query.where(events.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    # -- attachments --------------------------------------------------------------

    def put_attachment(self, filename: str, content_type: str, data: bytes, now: float) -> int:
        digest = hashlib.sha256(data).hexdigest()
        with self.engine.begin() as conn:
            result = conn.execute(attachments.insert().values(
                sha256=digest, filename=filename, content_type=content_type, data=data,
                created_at=now))
            return _new_id(result)

    def get_attachment(self, attachment_id: int) -> Attachment | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(attachments).where(
                attachments.c.id == attachment_id)).first()
        if row is None:
            return None
        return Attachment(row.id, row.filename, row.content_type, bytes(row.data))

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def connect(self) -> Connection:
        return self.engine.connect()


class Appender:
    """Inserts batches of event rows (tuples in ``COLUMNS`` order) on one raw connection.

    The group commit's write path: plain DB-API ``executemany`` and ``commit``,
    without the ORM-level statement work per row. A failed batch drops the
    connection; the next batch opens a new one.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        # A row whose idempotency key is already stored (a spool replayed after a crash
        # between its COMMIT and the spool's removal) is skipped, not counted twice.
        self.sql = (f"INSERT INTO events ({', '.join(COLUMNS)}) "
                    f"VALUES ({', '.join([mark] * len(COLUMNS))}) "
                    "ON CONFLICT (key) DO NOTHING")
        self._conn: Any = None

    def __call__(self, rows: Sequence[Sequence[Any]]) -> None:
        try:
            if self._conn is None:
                self._conn = self.engine.raw_connection()
            cursor = self._conn.cursor()
            if rows and len(rows[0]) == len(COLUMNS) - 1:  # written before keys existed
                rows = [(*row, None) for row in rows]
            if rows:
                cursor.executemany(self.sql, rows)
            else:
                cursor.execute("SELECT 1")
            cursor.close()
            self._conn.commit()
        except Exception:
            self.close()
            raise

    def ping(self) -> None:
        self([])  # an empty batch still opens the connection and commits

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            self._conn = None


def _make_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///"):].split("?")[0])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory for the SQLite store {path}: {exc}") from exc


def open_store(url: str, *, create: bool = True, now: float = 0.0) -> SqlStore:
    """Open (and when ``create``, migrate) the store at ``url``; StoreError if it cannot."""
    url = normalise_url(url)
    _make_sqlite_dir(url)
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use store URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        sa_event.listen(engine, "connect", _sqlite_pragmas)
    store = SqlStore(engine)
    try:
        store.ping()
        if create:
            store.migrate(now)
        else:
            store.check_schema()
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store at {engine.url!r}: {exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0]}") from exc
    return store
