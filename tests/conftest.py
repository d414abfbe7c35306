"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def _postgres_or_skip() -> None:
    try:
        import psycopg

        psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"),
                        connect_timeout=3).close()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_URL} (set MAILBEACON_TEST_PG_URL): {exc}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailbeacon.db'}"
        return
    _postgres_or_skip()
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url, now=1_767_225_600.0)
    yield s
    s.close()
