"""The schema as a list of named migrations.

Each migration is a list of steps (create a table, add an index, add a column).
Replaying every step on an empty ``MetaData`` gives the schema as it is now,
which the queries use; running the steps a database has not seen yet brings an
old database forward. So a new database and an upgraded one are built by the
same steps, and no table is described twice. Applied migrations are recorded
by name in ``migrations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite rowid alias needs INTEGER


@dataclass(frozen=True)
class CreateTable:
    name: str
    columns: tuple[sa.Column, ...]

    def declare(self, md: sa.MetaData) -> None:
        sa.Table(self.name, md, *[c._copy() for c in self.columns])

    def run(self, conn: Connection, md: sa.MetaData) -> None:
        md.tables[self.name].create(conn)


@dataclass(frozen=True)
class AddIndex:
    table: str
    name: str
    columns: tuple[str, ...]

    def declare(self, md: sa.MetaData) -> None:
        table = md.tables[self.table]
        sa.Index(self.name, *[table.c[c] for c in self.columns])

    def run(self, conn: Connection, md: sa.MetaData) -> None:
        index = next(i for i in md.tables[self.table].indexes if i.name == self.name)
        index.create(conn, checkfirst=True)


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: sa.Column

    def declare(self, md: sa.MetaData) -> None:
        md.tables[self.table].append_column(self.column._copy())

    def run(self, conn: Connection, md: sa.MetaData) -> None:
        column = md.tables[self.table].c[self.column.name]
        ddl = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f'ALTER TABLE {self.table} ADD COLUMN "{column.name}" {ddl}'))


@dataclass(frozen=True)
class AddDefaultedColumn:
    """A NOT NULL column whose default the database computes, spelled per dialect
    (the transaction id on PostgreSQL, a constant on SQLite)."""

    table: str
    column: sa.Column
    defaults: tuple[tuple[str, str], ...]  # (dialect name, SQL default expression)

    def declare(self, md: sa.MetaData) -> None:
        md.tables[self.table].append_column(self.column._copy())

    def run(self, conn: Connection, md: sa.MetaData) -> None:
        column = md.tables[self.table].c[self.column.name]
        ddl = column.type.compile(dialect=conn.dialect)
        default = dict(self.defaults)[conn.dialect.name]
        conn.execute(sa.text(f'ALTER TABLE {self.table} ADD COLUMN "{column.name}" {ddl} '
                             f"NOT NULL DEFAULT {default}"))


@dataclass(frozen=True)
class AddUniqueIndex(AddIndex):
    def declare(self, md: sa.MetaData) -> None:
        table = md.tables[self.table]
        sa.Index(self.name, *[table.c[c] for c in self.columns], unique=True)


Step = CreateTable | AddIndex | AddColumn | AddDefaultedColumn

# On PostgreSQL every event row carries the id of the transaction that wrote it:
# ids are handed out at INSERT, not at COMMIT, so with several writers a lower id can
# commit after a higher one. Readers of the stream (the judge, events --follow, the
# API) page by (tx, id) and stop below the oldest transaction still running, which
# no later commit can precede. SQLite serialises writers, so ids are in commit order
# and tx stays 0 there.
PG_TRANSACTION_ID = "(pg_current_xact_id()::text::bigint)"

# -- the judge's per-copy state (what an incremental judge keeps between passes) -----------


@dataclass(frozen=True)
class AddPartialIndex(AddIndex):
    """An index over the rows where ``where`` holds (SQL, the same on both dialects)."""

    where: str = ""

    def declare(self, md: sa.MetaData) -> None:
        table = md.tables[self.table]
        sa.Index(self.name, *[table.c[c] for c in self.columns],
                 postgresql_where=sa.text(self.where), sqlite_where=sa.text(self.where))


JUDGE_STATE_STEPS: tuple[Step, ...] = (
    # One row per recipient copy the judge has seen: the evidence it judged with, the
    # copy's first human open ("opened elsewhere" compares later opens with it), the
    # verdict counts its engagement rests on, and where its deferred hits start when a
    # hammered copy had more new hits than one pass takes (``behind_*``).
    CreateTable("copy_state", (
        sa.Column("message", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("campaign", sa.Integer, nullable=False),
        sa.Column("known", sa.Boolean, nullable=False),  # a messages row exists
        sa.Column("sent_at", sa.Float, nullable=False),  # unknown copy: its first hit's time
        sa.Column("link_count", sa.Integer, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.Column("replied_at", sa.Float, nullable=True),
        sa.Column("read_at", sa.Float, nullable=True),  # a manual read receipt
        sa.Column("first_open", sa.BigInteger, nullable=True),  # the first human open
        sa.Column("first_open_at", sa.Float, nullable=True),
        sa.Column("first_family", sa.String(100), nullable=True),
        sa.Column("first_network", sa.String(64), nullable=True),
        sa.Column("hits", sa.Integer, nullable=False),  # hits with a current verdict
        sa.Column("person_hits", sa.Integer, nullable=False),  # opening hits, human/proxy
        sa.Column("other_hits", sa.Integer, nullable=False),  # hits not the sender's own
        sa.Column("engagement", sa.String(30), nullable=True),
        sa.Column("behind_tx", sa.BigInteger, nullable=True),
        sa.Column("behind_id", sa.BigInteger, nullable=True),
    )),
    AddPartialIndex("copy_state", "ix_copy_state_behind", ("behind_id",),
                    where="behind_id IS NOT NULL"),
    # a copy's hits near a time (the windows a new hit can change), and its backlog
    AddIndex("events", "ix_events_message_at", ("message", "at")),
    AddIndex("events", "ix_events_message_tx_id", ("message", "tx", "id")),
    # the current verdict of an event: only current rows, so it stays small and exact
    AddPartialIndex("verdicts", "ix_verdicts_current", ("event",), where="current"),
)

# -- report rollups: counters kept by delta in the judge's transaction ---------------------
# store/rollups.py moves them; ``mailbeacon rebuild`` recomputes them from the events. A
# counter that falls back to 0 keeps its row (n = 0): readers take n > 0.


def _counter(*key: sa.Column) -> tuple[sa.Column, ...]:
    return (*key, sa.Column("n", sa.BigInteger, nullable=False))


def _key(name: str, type_: Any) -> sa.Column:  # a TypeEngine or its class
    return sa.Column(name, type_, primary_key=True, autoincrement=False)


ROLLUP_STEPS: tuple[Step, ...] = (
    # Per campaign: family "hits" (key kind/anonymous/verdict), "copies" (opened, clicked,
    # best/<verdict>, elsewhere), "link_copies" (any|human/<url key>), "client",
    # "device", "country" (hits by people: human and unknown verdicts).
    CreateTable("rollup_counters", _counter(
        _key("campaign", sa.Integer), _key("family", sa.String(20)),
        _key("key", sa.String(200)))),
    # Clicks per link, by verdict and anonymous or not; url_key: sha1 of the URL.
    CreateTable("rollup_links", (
        *_counter(_key("campaign", sa.Integer), _key("url_key", sa.String(40)),
                  _key("verdict", sa.String(20)), _key("anonymous", sa.Integer)),
        sa.Column("url", sa.Text, nullable=False))),
    # The time series a dashboard charts: hits per hour (at // 3600), kind and verdict.
    CreateTable("rollup_hours", _counter(
        _key("campaign", sa.Integer), _key("hour", sa.Integer), _key("kind", sa.String(20)),
        _key("verdict", sa.String(20)))),
    # Per copy, so that a unique figure moves when a copy's count flips 0 <-> 1: family
    # "open", "click", "seen" (open or click), "opening" (key: verdict), "link" and
    # "human_link" (key: url key), "human_click", "elsewhere"; key "" when none.
    CreateTable("rollup_copy", _counter(
        _key("message", sa.Integer), _key("family", sa.String(20)),
        _key("key", sa.String(40)))),
    # Hits whose current verdict says "opened elsewhere": few, and the only per-hit state.
    CreateTable("rollup_flagged", (
        _key("event", sa.BigInteger), sa.Column("message", sa.Integer, nullable=False))),
    # --recipients and who-opened lists page through a campaign's copies by recipient;
    # the per-copy figures group a campaign's accepted copies by engagement.
    AddIndex("messages", "ix_messages_campaign_recipient", ("campaign", "recipient", "id")),
    AddIndex("messages", "ix_messages_campaign_status", ("campaign", "status", "engagement")),
)

MIGRATIONS: tuple[tuple[str, tuple[Step, ...]], ...] = (
    ("0001_initial", (
        CreateTable("campaigns", (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(200), nullable=False, unique=True),
            sa.Column("created_at", sa.Float, nullable=False),
        )),
        # One row per recipient copy: what a token, a VERP address and a
        # Message-ID point at.
        CreateTable("messages", (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("campaign", sa.Integer, nullable=False, index=True),
            sa.Column("message_id", sa.String(250), nullable=True, unique=True),
            sa.Column("sender", sa.String(320), nullable=False),
            sa.Column("recipient", sa.String(320), nullable=False, index=True),
            sa.Column("subject", sa.Text, nullable=False),
            sa.Column("track_level", sa.String(20), nullable=False),
            sa.Column("status", sa.String(20), nullable=False),  # queued|sent|bounced|deferred
            sa.Column("status_code", sa.Integer, nullable=True),
            sa.Column("status_detail", sa.Text, nullable=False),
            sa.Column("dsn_requested", sa.Boolean, nullable=False),
            sa.Column("links", sa.Text, nullable=False),  # JSON list; link index = position + 1
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("sent_at", sa.Float, nullable=True),
        )),
        # Every hit and every other event in arrival order. Never updated.
        CreateTable("events", (
            sa.Column("id", ID, primary_key=True),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("campaign", sa.Integer, nullable=False),
            sa.Column("message", sa.Integer, nullable=False),  # 0: not tied to a recipient
            sa.Column("link", sa.Integer, nullable=False),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("method", sa.String(10), nullable=False),
            sa.Column("ip", sa.String(64), nullable=False),
            sa.Column("user_agent", sa.Text, nullable=False),
            sa.Column("detail", sa.Text, nullable=False),  # JSON object, or ""
        )),
    )),
    ("0002_event_indexes", (
        AddIndex("events", "ix_events_campaign_kind", ("campaign", "kind")),
        AddIndex("events", "ix_events_message_kind", ("message", "kind")),
    )),
    ("0003_attachments", (
        CreateTable("attachments", (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("sha256", sa.String(64), nullable=False, index=True),
            sa.Column("filename", sa.Text, nullable=False),
            sa.Column("content_type", sa.String(200), nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )),
    )),
    ("0005_verdicts", (
        # Person or machine for each hit. Hits are never changed; a verdict that
        # changes gets a new row and the old one stops being current: history.
        CreateTable("verdicts", (
            sa.Column("id", ID, primary_key=True),
            sa.Column("event", sa.BigInteger, nullable=False),
            sa.Column("message", sa.Integer, nullable=False),
            sa.Column("verdict", sa.String(20), nullable=False),
            sa.Column("confidence", sa.Float, nullable=False),
            sa.Column("reasons", sa.Text, nullable=False),  # JSON list of readable signals
            sa.Column("judged_at", sa.Float, nullable=False),
            sa.Column("current", sa.Boolean, nullable=False),
        )),
        AddIndex("verdicts", "ix_verdicts_event_current", ("event", "current")),
        AddIndex("verdicts", "ix_verdicts_message_current", ("message", "current")),
        # How far the judge has read the event stream (one row per judge).
        CreateTable("judge_cursor", (
            sa.Column("name", sa.String(50), primary_key=True),
            sa.Column("last_event", sa.BigInteger, nullable=False),
        )),
        # "opened by a person" | "only by machines" | "not opened", kept by the judge.
        AddColumn("messages", sa.Column("engagement", sa.String(30), nullable=True)),
    )),
    ("0004_inbound", (
        # Every message that came back (bounce domain, IMAP mailbox, file import),
        # kept as received before anything is made of it: nothing that arrives is lost.
        CreateTable("inbound", (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("received_at", sa.Float, nullable=False),
            sa.Column("source", sa.String(20), nullable=False),  # smtp|lmtp|imap|file
            sa.Column("envelope_from", sa.Text, nullable=False),
            sa.Column("envelope_to", sa.Text, nullable=False),  # JSON list
            sa.Column("header_message_id", sa.String(250), nullable=False, index=True),
            sa.Column("sha256", sa.String(64), nullable=False, index=True),
            sa.Column("raw", sa.LargeBinary, nullable=False),
            sa.Column("status", sa.String(20), nullable=False, index=True),
            # received|matched|quarantined|duplicate
            sa.Column("kind", sa.String(20), nullable=False),  # dsn|bounce|mdn|arf|...|none
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("matched_by", sa.String(30), nullable=False),
            sa.Column("campaign", sa.Integer, nullable=True),
            sa.Column("message", sa.Integer, nullable=True),
            sa.Column("processed_at", sa.Float, nullable=True),
        )),
        # Addresses send skips (unless told otherwise); one row per address.
        CreateTable("suppressions", (
            sa.Column("address", sa.String(320), primary_key=True),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("source", sa.String(30), nullable=False),  # hard-bounce|complaint|...|manual
            sa.Column("inbound", sa.Integer, nullable=True),  # the report that caused it
            sa.Column("created_at", sa.Float, nullable=False),
        )),
    )),
    ("0006_integrity", (
        # An idempotency key: a hit's is made when it is answered, an inbound event's
        # names the report and the copy. The store refuses a second row with the same
        # key, so a replayed spool or a report delivered twice in parallel counts once.
        AddColumn("events", sa.Column("key", sa.String(120), nullable=True)),
        AddUniqueIndex("events", "ux_events_key", ("key",)),
        AddDefaultedColumn("events", sa.Column("tx", sa.BigInteger, nullable=False),
                           (("postgresql", PG_TRANSACTION_ID), ("sqlite", "0"))),
        AddIndex("events", "ix_events_tx_id", ("tx", "id")),
        AddIndex("events", "ix_events_campaign_id", ("campaign", "id")),
        AddDefaultedColumn("judge_cursor", sa.Column("last_tx", sa.BigInteger, nullable=False),
                           (("postgresql", "0"), ("sqlite", "0"))),
        # API keys: only a hash is kept; the key is shown once, when it is made.
        CreateTable("api_keys", (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("prefix", sa.String(20), nullable=False),  # shown in listings
            sa.Column("sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("last_used_at", sa.Float, nullable=True),
            sa.Column("revoked_at", sa.Float, nullable=True),
        )),
    )),
    ("0007_judge_state", JUDGE_STATE_STEPS),
    ("0008_rollups", ROLLUP_STEPS),
)


def build(upto: int | None = None) -> sa.MetaData:
    """The schema after the first ``upto`` migrations (all by default)."""
    md = sa.MetaData()
    sa.Table("migrations", md,
             sa.Column("name", sa.String(200), primary_key=True),
             sa.Column("applied_at", sa.Float, nullable=False))
    for _name, steps in MIGRATIONS[:upto]:
        for step in steps:
            step.declare(md)
    return md


metadata = build()
migrations_table = metadata.tables["migrations"]
campaigns = metadata.tables["campaigns"]
messages = metadata.tables["messages"]
events = metadata.tables["events"]
attachments = metadata.tables["attachments"]
verdicts = metadata.tables["verdicts"]
judge_cursor = metadata.tables["judge_cursor"]
inbound = metadata.tables["inbound"]
suppressions = metadata.tables["suppressions"]
api_keys = metadata.tables["api_keys"]
copy_state = metadata.tables["copy_state"]
rollup_counters = metadata.tables["rollup_counters"]
rollup_links = metadata.tables["rollup_links"]
rollup_hours = metadata.tables["rollup_hours"]
rollup_copy = metadata.tables["rollup_copy"]
rollup_flagged = metadata.tables["rollup_flagged"]
