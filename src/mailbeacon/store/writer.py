"""Group commit: many hits per transaction, each answered only after its COMMIT.

One thread owns the writes. Request handlers add a hit and a future to the
pending list and await the future; the flusher hands everything pending (up
to ``batch_max``) to the writer thread, which inserts it in one transaction
and commits; only then are the handlers woken. Under load batches grow by
themselves, so one fsync serves many hits; with no load a hit waits for one
commit, no timer.

When the store refuses a batch (the database went away), the batch is
appended to a spool file in the data directory and fsynced before anyone is
answered, so an acknowledged hit is never lost; the thread replays spool files
into the store once it answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mailbeacon.store.sql import Appender, SqlStore

log = logging.getLogger("mailbeacon.writer")
Done = Callable[[BaseException | None], None]
# Tests widen the window between a hit's arrival and its COMMIT, as a slow disk
# would, to show that no hit is answered inside that window. Not a setting.
SLOW_DISK_SECONDS = float(os.environ.get("MAILBEACON_TEST_SLOW_DISK_MS", "0")) / 1000



class Spool:
    """Append-only JSON-lines files holding batches the store could not take."""

    def __init__(self, directory: Path):
        self.directory = directory

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"hits-{os.getpid()}.jsonl"
        with open(path, "a", encoding="utf-8") as out:
            out.write("".join(json.dumps(r) + "\n" for r in rows))
            out.flush()
            os.fsync(out.fileno())

    def pending(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("hits-*.jsonl"))

    def replay(self, append: Appender) -> int:
        """Move spooled rows into the store; returns how many. Raises if the store is away.

        A row the store refuses while it takes others (bad data, not a dead
        database) is moved to ``rejected-*.jsonl`` beside the spool: kept, and
        no longer blocking the rows behind it.
        """
        moved = 0
        for path in self.pending():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip()]
            try:
                if rows:
                    append(rows)
            except Exception:
                self._one_by_one(rows, append)
            path.unlink()
            moved += len(rows)
        return moved

    def _one_by_one(self, rows: list[Any], append: Appender) -> None:
        append.ping()  # raises when the store is away: the file stays for the next try
        refused = []
        for row in rows:
            try:
                append([row])
            except Exception as exc:
                refused.append({"row": row, "error": str(exc).splitlines()[0]})
        if refused:
            log.error("the store refused %d spooled hits; kept in %s", len(refused),
                      self.directory / "rejected-*.jsonl")
            with open(self.directory / f"rejected-{os.getpid()}.jsonl", "a") as out:
                out.write("".join(json.dumps(r) + "\n" for r in refused))
                out.flush()
                os.fsync(out.fileno())


class GroupCommitter:
    """Collects hits on the event loop; one writer thread commits each batch.

    While a batch is being written, new hits only append to a list: no lock,
    no thread wake-up per hit. When the write returns, everything that piled
    up meanwhile is the next batch.
    """

    def __init__(self, store: SqlStore, spool: Spool, batch_max: int = 512,
                 retry_every: float = 5.0):
        self.spool = spool
        self.batch_max = batch_max
        self.retry_every = retry_every
        self.append = store.appender()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        self._pending: list[tuple[tuple[Any, ...], Done]] = []
        self._flushing = False
        self._spooling = False
        self._retry: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.written = 0

    @property
    def spooling(self) -> bool:
        return self._spooling

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._replay_spool)
        self._retry = loop.create_task(self._retry_spool())

    async def stop(self) -> None:
        while self._pending or self._flushing:
            await asyncio.sleep(0.01)
        if self._retry:
            self._retry.cancel()
        await asyncio.get_running_loop().run_in_executor(self._executor, self.append.close)
        self._executor.shutdown(wait=True)

    async def record(self, row: tuple[Any, ...]) -> None:
        """Return once ``row`` (``events.COLUMNS`` order) is committed (or fsynced to the spool)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submit(row, lambda error: _settle_future(future, error))
        await future

    def submit(self, row: tuple[Any, ...], done: Done) -> None:
        """Call ``done(None)`` on the event loop once ``row`` is committed (or fsynced to the
        spool), ``done(error)`` if neither took it. No task or future per hit: the hot path."""
        self._pending.append((row, done))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[: self.batch_max]
                del self._pending[: self.batch_max]
                rows = [row for row, _ in batch]
                try:
                    await loop.run_in_executor(self._executor, self._write, rows)
                except OSError as exc:  # neither the store nor the spool took them
                    log.error("could not keep %d hits: %s", len(rows), exc)
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
        finally:
            self._flushing = False

    async def _retry_spool(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.retry_every)
            if self._spooling:
                await loop.run_in_executor(self._executor, self._replay_spool)

    # -- on the writer thread -------------------------------------------------------

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        if SLOW_DISK_SECONDS:
            time.sleep(SLOW_DISK_SECONDS)
        if self._spooling:
            self._replay_spool()
        if not self._spooling:
            try:
                self.append(rows)
            except Exception as exc:  # any driver's error: the store did not take them
                log.error("store refused %d hits (%s); spooling them to %s", len(rows),
                          str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                          self.spool.directory)
                self._spooling = True
        if self._spooling:
            self.spool.append(rows)
        self.batches += 1
        self.written += len(rows)

    def _replay_spool(self) -> None:
        try:
            moved = self.spool.replay(self.append)
        except Exception as exc:  # the store is still away; keep spooling
            self._spooling = True
            log.debug("spool replay deferred: %s", exc)
            return
        if moved:
            log.warning("replayed %d spooled hits into the store", moved)
        self._spooling = False


def _settle(batch: list[tuple[Any, Done]], error: BaseException | None) -> None:
    for _, done in batch:
        try:
            done(error)
        except Exception:  # one waiter's failure (a closed connection) is not the batch's
            log.exception("a hit's completion failed")


def _settle_future(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
