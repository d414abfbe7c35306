"""The group commit's SQLite write path: multi-row INSERTs, and its own wait for the lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from mailbeacon.store import sql
from mailbeacon.store.sql import SQLITE_ROWS_PER_INSERT, open_store


def _row(key: str | None, message: int = 1) -> tuple[object, ...]:
    return ("open", 1.0 + message, 3, message, 0, "", "GET", "192.0.2.1", "UA", "", key)


def test_batches_of_any_size_land_once_each(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    append = store.appender()
    try:
        big = [_row(f"k{i}", i) for i in range(2 * SQLITE_ROWS_PER_INSERT + 5)]
        append(big)
        append(big[:7])  # replayed: every key is there already
        append([_row(f"n{i}", i)[:-1] for i in range(3)])  # spooled before keys: no key
        with store.connect() as conn:
            total, keyed, messages = conn.exec_driver_sql(
                "SELECT count(*), count(key), count(DISTINCT message) FROM events").one()
    finally:
        append.close()
        store.close()
    assert (total, keyed, messages) == (len(big) + 3, len(big), len(big))


def test_a_batch_waiting_for_the_lock_tries_again_every_millisecond(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.db"
    store = open_store(f"sqlite:///{path}")
    append = store.appender()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    pauses: list[float] = []
    real_sleep = time.sleep

    writer = threading.current_thread()

    def sleep(seconds: float) -> None:  # the writer's pauses (not the watchdog thread's)
        if threading.current_thread() is writer:
            pauses.append(seconds)
        real_sleep(seconds)

    try:
        append([_row("warm")])  # the connection is open
        other.execute("BEGIN IMMEDIATE")
        monkeypatch.setattr(sql.time, "sleep", sleep)
        releaser = threading.Timer(0.1, lambda: other.execute("COMMIT"))
        releaser.start()
        append([_row("after")])
        releaser.join()
    finally:
        monkeypatch.undo()
        other.close()
        append.close()
        store.close()
    # SQLite's own busy handler would sleep 1, 2, 5, 10, 15, 20, 25 ms between tries:
    # behind a writer of 100 ms, a batch would start up to 25 ms after the lock is free.
    assert len(pauses) >= 10 and max(pauses) <= sql.SQLITE_LOCK_POLL_MAX, pauses


def test_a_batch_gives_up_after_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = open_store(f"sqlite:///{path}")
    append = store.appender()
    append.bound = 0.3
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            append([_row("held")])
        assert 0.3 <= time.monotonic() - started < 1.5
        other.execute("COMMIT")
        append([_row("held")])  # a new connection, and the lock is free
    finally:
        other.close()
        append.close()
        store.close()
