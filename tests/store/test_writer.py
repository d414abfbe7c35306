"""Group commit: every acknowledged hit is in the store, or in the spool when it is away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mailbeacon.store.sql import Appender, SqlStore
from mailbeacon.store.writer import LOST_LOG_SECONDS, GroupCommitter, Spool


def _row(n: int) -> tuple[Any, ...]:
    return ("open", 1.0 + n, 1, n, 0, "", "GET", "192.0.2.1", f"hit-{n}", "")


class FlakyAppender:
    """The store's appender with a switch that makes the database 'go away'."""

    def __init__(self, real: Appender, refuse: set[str] | None = None):
        self.real, self.down, self.refuse = real, False, refuse or set()

    def __call__(self, rows: Any) -> None:
        if self.down:
            raise ConnectionError("server closed the connection unexpectedly")
        if any(row[8] in self.refuse for row in rows):
            raise ValueError("invalid byte sequence")
        self.real(rows)

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("server closed the connection unexpectedly")

    def close(self) -> None:
        self.real.close()


async def _record_all(committer: GroupCommitter, rows: list[tuple[Any, ...]]) -> None:
    await asyncio.gather(*(committer.record(r) for r in rows))


def _agents(store: SqlStore) -> list[str]:
    with store.connect() as conn:
        return sorted(r[0] for r in conn.exec_driver_sql("SELECT user_agent FROM events"))


def test_concurrent_hits_share_commits(store: SqlStore, tmp_path: Path) -> None:
    async def main() -> GroupCommitter:
        committer = GroupCommitter(store, Spool(tmp_path / "spool"), batch_max=100)
        await committer.start()
        await _record_all(committer, [_row(n) for n in range(1000)])
        await committer.stop()
        return committer

    committer = asyncio.run(main())
    assert store.count_events("open") == 1000 == committer.written
    assert committer.batches <= 100  # group commit: far fewer transactions than hits


def test_store_away_spools_then_replays(store: SqlStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")

    async def main() -> None:
        committer = GroupCommitter(store, spool, retry_every=0.05)
        flaky = FlakyAppender(committer.append)
        committer.append = flaky  # type: ignore[assignment]
        await committer.start()
        await _record_all(committer, [_row(n) for n in range(10)])
        flaky.down = True
        await _record_all(committer, [_row(n) for n in range(10, 30)])  # answered anyway
        assert committer.spooling and spool.pending()
        assert store.count_events() == 10
        flaky.down = False
        for _ in range(100):
            if not committer.spooling:
                break
            await asyncio.sleep(0.02)
        await _record_all(committer, [_row(n) for n in range(30, 35)])
        await committer.stop()

    asyncio.run(main())
    assert _agents(store) == sorted(f"hit-{n}" for n in range(35))
    assert not spool.pending()


def test_a_refused_row_is_set_aside_not_lost(store: SqlStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")

    async def main() -> None:
        committer = GroupCommitter(store, spool, retry_every=0.05)
        committer.append = FlakyAppender(committer.append, refuse={"hit-3"})  # type: ignore
        await committer.start()
        await _record_all(committer, [_row(n) for n in range(6)])
        for _ in range(100):
            if not committer.spooling:
                break
            await asyncio.sleep(0.02)
        await committer.stop()

    asyncio.run(main())
    assert _agents(store) == [f"hit-{n}" for n in (0, 1, 2, 4, 5)]
    [rejected] = list((tmp_path / "spool").glob("rejected-*.jsonl"))
    assert "hit-3" in rejected.read_text()


def test_spool_left_by_a_crash_is_replayed_at_start(store: SqlStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([_row(1), _row(2)])

    async def main() -> None:
        committer = GroupCommitter(store, spool)
        await committer.start()
        await committer.stop()

    asyncio.run(main())
    assert _agents(store) == ["hit-1", "hit-2"]


def _keyed(n: int) -> tuple[Any, ...]:
    return (*_row(n), f"key-{n}")


class FullDisk:
    """A spool on a disk with no room left: every append fails as ENOSPC does."""

    def __init__(self, real: Spool):
        self.real, self.full = real, True
        self.directory = real.directory

    def append(self, rows: Any) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        self.real.append(rows)

    def pending(self) -> list[Path]:
        return self.real.pending()

    def replay(self, append: Appender) -> int:
        return self.real.replay(append)


def test_a_hit_neither_store_nor_spool_took_is_reported_not_kept(store: SqlStore,
                                                                  tmp_path: Path) -> None:
    disk = FullDisk(Spool(tmp_path / "spool"))
    outcomes: list[BaseException | None] = []

    async def main() -> None:
        committer = GroupCommitter(store, disk, retry_every=0.05)  # type: ignore[arg-type]
        flaky = FlakyAppender(committer.append)
        committer.append = flaky  # type: ignore[assignment]
        await committer.start()
        flaky.down = True
        for n in range(5):
            committer.submit(_keyed(n), outcomes.append)
        with pytest.raises(OSError, match="No space"):
            await committer.record(_keyed(5))
        assert committer.refused == 6
        disk.full, flaky.down = False, False  # room again, and the store is back
        await _record_all(committer, [_keyed(n) for n in range(6, 9)])
        for _ in range(100):
            if not committer.spooling:
                break
            await asyncio.sleep(0.02)
        await _record_all(committer, [_keyed(n) for n in range(9, 11)])
        await committer.stop()

    asyncio.run(main())
    assert len(outcomes) == 5 and all(isinstance(e, OSError) for e in outcomes)
    assert _agents(store) == sorted(f"hit-{n}" for n in range(6, 11))  # no restart needed


def test_a_torn_line_is_set_aside_and_the_rest_replays(store: SqlStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([_keyed(1), _keyed(2)])
    [path] = spool.pending()
    torn = json.dumps(list(_keyed(3)))[:25].encode()
    with open(path, "ab") as out:  # a write cut short by ENOSPC, then later batches
        out.write(torn + b"\n" + b"\xff\xfe{\n" + json.dumps(list(_keyed(4))).encode() + b"\n")
    assert spool.replay(store.appender()) == 3
    assert _agents(store) == ["hit-1", "hit-2", "hit-4"]
    assert not spool.pending()
    [kept] = (tmp_path / "spool").glob("torn-*.jsonl")
    assert kept.read_bytes() == torn + b"\n\xff\xfe{\n"


def test_a_torn_line_is_set_aside_once_when_the_replay_waits(store: SqlStore,
                                                              tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([_keyed(1)])
    [path] = spool.pending()
    with open(path, "ab") as out:
        out.write(b'["open", 1.0, 1\n')
    away = FlakyAppender(store.appender())
    away.down = True
    for _ in range(3):  # the store is still away: the file waits, the torn line is kept once
        with pytest.raises(ConnectionError):
            spool.replay(away)  # type: ignore[arg-type]
    [kept] = (tmp_path / "spool").glob("torn-*.jsonl")
    assert kept.read_bytes() == b'["open", 1.0, 1\n'
    away.down = False
    assert spool.replay(away) == 1 and _agents(store) == ["hit-1"]  # type: ignore[arg-type]


def test_a_failed_append_leaves_no_torn_line(tmp_path: Path, monkeypatch: Any) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([_keyed(1)])
    [path] = spool.pending()
    before = path.read_bytes()
    real_write = os.write

    def short_then_enospc(fd: int, data: Any) -> int:
        if len(data) > 20:
            return real_write(fd, data[:20])  # a partial write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_enospc)
    with pytest.raises(OSError, match="No space"):
        spool.append([_keyed(2)])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_replay_after_a_crash_before_the_unlink_counts_once(store: SqlStore,
                                                              tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([_keyed(n) for n in range(1, 4)])
    [path] = spool.pending()
    saved = path.read_bytes()
    assert spool.replay(store.appender()) == 3  # committed and unlinked ...
    path.write_bytes(saved)  # ... but a crash came between the COMMIT and the unlink
    spool.append([_keyed(4)])
    assert spool.replay(store.appender()) == 4
    assert _agents(store) == ["hit-1", "hit-2", "hit-3", "hit-4"]


def test_rows_spooled_before_the_key_column_still_replay(store: SqlStore,
                                                         tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([_row(1), _keyed(2)])  # ten columns and eleven, in one file
    assert spool.replay(store.appender()) == 2
    assert _agents(store) == ["hit-1", "hit-2"]


def test_a_bad_spooled_row_holds_back_none_of_the_good_ones(store: SqlStore,
                                                             tmp_path: Path) -> None:
    """The real appender: the bad row's failed transaction must not keep SQLite's write lock
    while the rows around it are tried one by one (they would all be 'database is locked')."""
    spool = Spool(tmp_path / "spool")
    bad = list(_keyed(1))
    bad[2] = None  # a null campaign: the store refuses this row, not the others
    spool.append([bad, _keyed(2), _keyed(3)])
    append = store.appender()
    started = time.monotonic()
    try:
        assert spool.replay(append) == 3
    finally:
        append.close()
    assert time.monotonic() - started < 2  # no wait on a lock we hold ourselves
    assert _agents(store) == ["hit-2", "hit-3"]
    [rejected] = list((tmp_path / "spool").glob("rejected-*.jsonl"))
    assert [json.loads(line)["row"][8] for line in rejected.read_text().splitlines()] == ["hit-1"]


def test_a_full_disk_is_logged_once_per_interval_with_counts(store: SqlStore, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    disk = FullDisk(Spool(tmp_path / "spool"))
    now = [1000.0]

    async def main() -> None:
        committer = GroupCommitter(store, disk, batch_max=1)  # type: ignore[arg-type]
        committer.lost_log.clock = lambda: now[0]
        committer.append = FlakyAppender(committer.append)  # type: ignore[assignment]
        committer.append.down = True  # type: ignore[attr-defined]
        await committer.start()
        for n in range(40):  # one batch each
            with contextlib.suppress(OSError):
                await committer.record(_keyed(n))
        now[0] += LOST_LOG_SECONDS
        with contextlib.suppress(OSError):
            await committer.record(_keyed(40))
        await committer.stop()

    with caplog.at_level(logging.ERROR, logger="mailbeacon.writer"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "could not keep" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("could not keep 1 hits in 1 batches")
    assert lines[1].startswith("could not keep 40 hits in 40 batches")
