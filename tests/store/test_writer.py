"""Group commit: every acknowledged hit is in the store, or in the spool when it is away."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mailbeacon.store.sql import Appender, SqlStore
from mailbeacon.store.writer import GroupCommitter, Spool


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
