"""Group commit: many hits per transaction, each answered only after its COMMIT.

One thread owns the writes. Request handlers add a hit and a future to the
pending list and await the future; the flusher hands everything pending (up
to ``batch_max``) to the writer thread, which inserts it in one transaction
and commits; only then are the handlers woken. Under load batches grow by
themselves, so one fsync serves many hits; with no load a hit waits for one
commit, no timer.

When the store refuses a batch (the database went away, or hangs past the
Appender's time bound), the batch is appended to a spool file in the data
directory and fsynced before anyone is answered, so an acknowledged hit is
never lost; the thread replays spool files into the store once it answers
again. When the spool cannot take it either (the disk is full), the waiters
are told (``done(error)``: the server answers 503), never that it was kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mailbeacon.core.events import COLUMNS
from mailbeacon.store.sql import Appender, SqlStore

log = logging.getLogger("mailbeacon.writer")
Done = Callable[[BaseException | None], None]
# Tests widen the window between a hit's arrival and its COMMIT, as a slow disk
# would, to show that no hit is answered inside that window. Not a setting.
SLOW_DISK_SECONDS = float(os.environ.get("MAILBEACON_TEST_SLOW_DISK_MS", "0")) / 1000
REPLAY_BATCH = 500  # spooled rows per transaction: each well inside the batch time bound
LOST_LOG_SECONDS = 10.0  # at most one "could not keep" line this often (a full disk
# refuses every batch: thousands a second)


class Spool:
    """Append-only JSON-lines files (mode 0600) holding batches the store could not take.

    A line cut short (a full disk, a crash mid-write) is set aside in
    ``torn-*.jsonl``, byte for byte, and the lines around it replay: one bad
    line never holds back the hits behind it.
    """

    def __init__(self, directory: Path):
        self.directory = directory

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append and fsync ``rows``; on failure (ENOSPC) the file is cut back to where it
        was, so a failed batch leaves no torn line, and the OSError goes to the caller."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"hits-{os.getpid()}.jsonl"
        data = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
        _append_synced(path, data)

    def pending(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("hits-*.jsonl"))

    def replay(self, append: Appender) -> int:
        """Move spooled rows into the store; returns how many. Raises if the store is away.

        Rows go in batches of ``REPLAY_BATCH``, each within the writer's time bound;
        a file is removed once all its rows are in. A crash before the removal
        replays the file again: each row's idempotency key makes the store skip
        the rows it already holds. A row the store refuses while it takes others
        (bad data, not a dead database) is moved to ``rejected-*.jsonl``.
        """
        moved = 0
        for path in self.pending():
            rows = self._read(path)
            for first in range(0, len(rows), REPLAY_BATCH):
                chunk = rows[first:first + REPLAY_BATCH]
                if not _appended(append, chunk):
                    # Outside the ``except``: a live traceback holds the failed cursor,
                    # and with it (SQLite) the write lock the rows one by one need.
                    self._one_by_one(chunk, append)
            path.unlink()
            moved += len(rows)
        return moved

    def _read(self, path: Path) -> list[list[Any]]:
        """The file's rows; torn lines are copied to ``torn-*.jsonl`` (fsynced) first."""
        rows, torn = [], []
        for line in path.read_bytes().splitlines(keepends=True):
            if not line.strip():
                continue
            row = _parse_row(line)
            if row is None:
                torn.append(line if line.endswith(b"\n") else line + b"\n")
            else:
                rows.append(row)
        if torn:
            kept = self.directory / f"torn-{os.getpid()}.jsonl"
            _append_synced(kept, b"".join(torn))
            # The spool file loses its torn lines now, so a replay deferred by a store
            # still away does not set them aside a second time.
            fresh = path.with_suffix(".rewrite")
            with contextlib.suppress(FileNotFoundError):
                fresh.unlink()
            _append_synced(fresh, "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))
            os.replace(fresh, path)
            log.error("%d torn lines in %s (a full disk or a crash mid-write): kept in %s, "
                      "the other %d rows replay", len(torn), path, kept, len(rows))
        return rows

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
            _append_synced(self.directory / f"rejected-{os.getpid()}.jsonl",
                           "".join(json.dumps(r) + "\n" for r in refused).encode("utf-8"))


def _appended(append: Appender, rows: list[Any]) -> bool:
    """Whether the store took ``rows`` in one transaction."""
    try:
        append(rows)
    except Exception:
        return False
    return True


def _parse_row(line: bytes) -> list[Any] | None:
    """A spooled row, or None for a line that is not one (torn). Rows from before the
    idempotency key (one column fewer) get a null key."""
    try:
        row = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both
        return None
    if not isinstance(row, list) or len(row) not in (len(COLUMNS), len(COLUMNS) - 1):
        return None
    return row if len(row) == len(COLUMNS) else [*row, None]


def _append_synced(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created 0600) and fsync; all of it or none of it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # no half line for the replay to trip on
            raise
    finally:
        os.close(fd)


class LostHitsLog:
    """The "could not keep" ERROR line, at most once every ``every`` seconds: the first
    refusal is said at once, the next line counts the batches and hits refused since."""

    def __init__(self, every: float = LOST_LOG_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.every, self.clock = every, clock
        self.said = -every  # (so the first refusal is said whenever it comes)
        self.batches = self.hits = 0

    def refused(self, hits: int, exc: BaseException) -> None:
        self.batches += 1
        self.hits += hits
        now = self.clock()
        if now - self.said < self.every:
            return
        log.error("could not keep %d hits in %d batches (store and spool refused) since the "
                  "last such line: %s", self.hits, self.batches, exc)
        self.said, self.batches, self.hits = now, 0, 0


class GroupCommitter:
    """Collects hits on the event loop; one writer thread commits each batch.

    While a batch is being written, new hits only append to a list: no lock,
    no thread wake-up per hit. When the write returns, everything that piled
    up meanwhile is the next batch.

    Once the store refused a batch, later batches go straight to the spool (no
    batch waits on a dead or silent database) and every ``retry_every`` seconds
    a probe on its own connection and thread asks the store; when it answers,
    the writer replays the spool and writes to the store again. When the spool
    cannot take a batch either (a full disk), its waiters get the error: a hit
    is reported kept only when it is.
    """

    def __init__(self, store: SqlStore, spool: Spool, batch_max: int = 512,
                 retry_every: float = 5.0):
        self.spool = spool
        self.batch_max = batch_max
        self.retry_every = retry_every
        self.append = store.appender()
        self.probe = store.appender()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        self._prober = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-probe")
        self._pending: list[tuple[tuple[Any, ...], Done]] = []
        self._flushing = False
        self._spooling = False
        self._retry: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.written = 0
        self.refused = 0  # hits neither the store nor the spool took (answered 503)
        self.lost_log = LostHitsLog()

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
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.append.close)
        self._executor.shutdown(wait=True)
        self._prober.shutdown(wait=False)  # a probe hung on a silent database: let it be

    async def record(self, row: tuple[Any, ...]) -> None:
        """Return once ``row`` (``events.COLUMNS`` order) is committed (or fsynced to the
        spool); raise the error when neither took it."""
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
                except Exception as exc:  # neither the store nor the spool took them
                    self.refused += len(rows)
                    self.lost_log.refused(len(rows), exc)
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
        finally:
            self._flushing = False

    async def _retry_spool(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.retry_every)
            if self._spooling and await loop.run_in_executor(self._prober, self._store_answers):
                await loop.run_in_executor(self._executor, self._replay_spool)

    # -- on the writer thread (and the probe's) ------------------------------------------

    def _store_answers(self) -> bool:
        try:
            self.probe.ping()
        except Exception:  # still away, or still silent (bounded by the connect timeout)
            return False
        finally:
            self.probe.close()  # hold no connection between probes
        return True

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        if SLOW_DISK_SECONDS:
            time.sleep(SLOW_DISK_SECONDS)
        if not self._spooling:
            try:
                self.append(rows)
            except Exception as exc:  # any driver's error: the store did not take them
                log.error("store refused %d hits (%s); spooling them to %s", len(rows),
                          str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                          self.spool.directory)
                self._spooling = True
        if self._spooling:
            self.spool.append(rows)  # OSError (a full disk): the waiters hear of it
        self.batches += 1
        self.written += len(rows)

    def _replay_spool(self) -> None:
        try:
            moved = self.spool.replay(self.append)
        except Exception as exc:  # the store is still away (or the disk full); keep spooling
            self._spooling = True
            log.warning("spool replay deferred: %s", str(exc).splitlines()[0] if str(exc)
                        else type(exc).__name__)
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
