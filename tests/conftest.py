"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbeacon.store.sql import SqlStore, open_store
from smtpserver import SmtpSink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A local SMTP server that advertises DSN and keeps what it accepts (tests/smtpserver.py)."""
    with SmtpSink(dsn=True) as sink:
        yield sink


@pytest.fixture
def smtp_sink_nodsn() -> Iterator[SmtpSink]:
    """The same server without the DSN extension: DSN parameters are answered 555."""
    with SmtpSink(dsn=False) as sink:
        yield sink


# -- stores: every store test runs on SQLite and on PostgreSQL ---------------------------

PG_URL = os.environ.get("MAILBEACON_TEST_PG_URL",
                        "postgresql://postgres@127.0.0.1/mailbeacon_test")


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass(frozen=True)
class Postgres:
    url: str | None  # None: no server; ``problem`` says why
    problem: str = ""


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The test server's database: PG_URL's own, or, when the server answers but has no
    such database (a fresh machine), one made for this run and dropped at its end."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        psycopg.connect(_libpq(PG_URL), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        wanted = str(conninfo_to_dict(_libpq(PG_URL)).get("dbname", ""))
        server = make_conninfo(_libpq(PG_URL), dbname="postgres", connect_timeout=3)
        try:
            with psycopg.connect(server, autocommit=True) as conn:
                known = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                     (wanted,)).fetchone()
                if known:  # it exists: the problem is elsewhere (rights, say)
                    raise
                own = f"mailbeacon_test_{uuid.uuid4().hex[:12]}"
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(own)))
        except psycopg.Error:
            yield Postgres(None, str(exc).strip())
            return
        url = sa.engine.make_url(PG_URL).set(database=own)
        yield Postgres(url.render_as_string(hide_password=False))
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(own)))
        return
    yield Postgres(PG_URL)


def _postgres_or_skip(postgres: Postgres) -> str:
    if postgres.url is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI: {postgres.problem}")
        pytest.skip(f"no PostgreSQL at {PG_URL} (set MAILBEACON_TEST_PG_URL): "
                    f"{postgres.problem}")
    return postgres.url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailbeacon.db'}"
        return
    pg_url = _postgres_or_skip(request.getfixturevalue("postgres"))
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = _libpq(pg_url)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url, now=1_767_225_600.0)
    yield s
    s.close()
