"""Opening a store: read-only commands create nothing, files are private, a silent
PostgreSQL fails a hit batch within its bound instead of hanging it."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from mailbeacon.errors import StoreError
from mailbeacon.store import sql
from mailbeacon.store.sql import open_store
from tcpproxy import CuttableProxy


def test_a_read_only_open_creates_no_file_and_no_directory(tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.db"
    with pytest.raises(StoreError, match=f"no store at {target}"):
        open_store(f"sqlite:///{target}", create=False)
    assert not (tmp_path / "nonexistent").exists()


def test_the_sqlite_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = open_store(f"sqlite:///{path}")
    with store.connect() as conn:  # a write: the -wal and -shm exist now
        conn.exec_driver_sql("INSERT INTO campaigns (name, created_at) VALUES ('x', 1)")
        conn.commit()
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.glob("m.db*")}
    store.close()
    assert modes == {"m.db": 0o600, "m.db-wal": 0o600, "m.db-shm": 0o600}


def test_postgres_connections_carry_timeouts_and_keep_the_url_options() -> None:
    url = sql.sa.engine.make_url("postgresql+psycopg://u@h/db?options=-csearch_path%3Ds1")
    args = sql._pg_connect_args(url, 5000)
    assert args["connect_timeout"] == sql.CONNECT_TIMEOUT and args["keepalives"] == 1
    assert args["tcp_user_timeout"] == sql.TCP_USER_TIMEOUT_MS
    assert args["options"] == "-csearch_path=s1 -c statement_timeout=5000"
    mine = sql.sa.engine.make_url("postgresql+psycopg://u@h/db?connect_timeout=1")
    assert "connect_timeout" not in sql._pg_connect_args(mine, 5000)


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}"))


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_batch_to_a_silent_database_fails_within_its_bound(store_url: str) -> None:
    pg = urlsplit(store_url)
    with CuttableProxy((pg.hostname or "127.0.0.1", pg.port or 5432)) as proxy:
        store = open_store(_through(store_url, proxy.port))
        append = store.appender()
        append.bound = 1.0
        row = ("open", 1.0, 1, 1, 0, "", "GET", "192.0.2.1", "ua", "", "k1")
        append([row])
        proxy.blackhole()  # the connection stays up; nothing comes back
        started = time.monotonic()
        with pytest.raises(Exception, match=r"closed|timeout"):
            append([(*row[:-1], "k2")])
        assert time.monotonic() - started < 3
        proxy.restore()
        append([(*row[:-1], "k2")])  # a new connection: back without a restart
        assert store.count_events() == 2
        append.close()
        store.close()
