"""Run the tracking server: open the store, start the group committer, serve HTTP.

The HTTP server is our own HTTP/1.1 protocol on the event loop (web/http1.py:
pixels and clicks straight from the parser, the rest through the ASGI app),
with one writer thread. With ``--workers N`` the first process starts N-1
more, each listening on the same address (SO_REUSEPORT, so the kernel spreads
connections over them), each with its own store connection,
group committer and spool directory. The inbound receiver runs only in the
first. The judge runs in a process of its own (``JudgeProcess``), started by
the first, so it never holds the hot path's interpreter. The others die with
the first: a SIGKILL leaves no orphan holding the port or judging.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from mailbeacon import keys
from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.errors import ConfigError, MailbeaconError
from mailbeacon.inbound.service import start_inbound
from mailbeacon.judging import JUDGE_EVERY, Judge, catch_up
from mailbeacon.listening import bound, nobody_holds
from mailbeacon.store.sql import SqlStore, open_store
from mailbeacon.store.writer import GroupCommitter, Spool
from mailbeacon.web import http1
from mailbeacon.web.app import create_app
from mailbeacon.web.tracking import TrackingApp

log = logging.getLogger("mailbeacon.server")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# The judge process: lower CPU priority than the hot path, so on a busy machine the
# answers go first and the judge catches up from what CPU is left.
JUDGE_NICE = 10
JUDGE_RESTART_SECONDS = 1.0  # wait before starting a judge that died again
JUDGE_PASS_EVENTS = 500  # events per pass: one write transaction each, kept short (SQLite
# has one writer at a time: the hot path's commits wait behind it)


class WorkerGone(MailbeaconError):
    """A worker exited on its own: serve stops and exits non-zero, so a supervisor
    (``Restart=on-failure``) starts it again."""


async def serve(config: Config, clock: Clock) -> None:
    """Serve until SIGINT/SIGTERM. Raises StoreError before listening if the store is unusable."""
    store = open_store(config.db_url, now=clock.now())
    keyring = keys.LiveKeyring(config.data_path)  # `keys rotate` needs no restart
    spool = config.data_path / "spool"
    _replay_worker_spools(store, spool)
    committer = GroupCommitter(store, Spool(spool), batch_max=config.commit_batch)
    await committer.start()
    server = Listener(config, create_app(config, store, keyring, committer, clock), committer)
    try:  # every listener is bound before the banner: a taken address stops serve here
        await server.bind()
        stop_inbound = await start_inbound(config, store, keyring, clock)  # docs/inbound.md
    except BaseException:
        await server.close()
        await committer.stop()
        store.close()
        raise
    judge = JudgeProcess(config, clock) if config.judge else None
    if judge is not None:
        judge.start()
    gone: list[str] = []  # the worker whose exit stopped us, if one did

    def worker_gone(why: str) -> None:
        gone.append(why)
        server.signal_handler_interrupt()

    workers = _start_workers(config, clock, worker_gone)
    _stop_on_signals(server)
    host, port = config.http
    print(f"mailbeacon: tracking at {config.public_url} (listening on http://{host}:{port}, "
          f"{config.workers} worker(s), store {store.dialect}, data in {config.data_path})",
          file=sys.stderr, flush=True)
    try:
        await server.serve()
    finally:
        for process in workers:
            asyncio.get_running_loop().remove_reader(process.sentinel)
        await asyncio.to_thread(_stop_workers, workers)
        if judge is not None:
            await asyncio.to_thread(judge.stop)
        await stop_inbound()
        await committer.stop()
        store.close()
        print("mailbeacon: stopped", file=sys.stderr, flush=True)
    if gone:
        raise WorkerGone(gone[0])


async def serve_hits(config: Config, clock: Clock, worker: int) -> None:
    """One more tracking process: the hot path and the API, no judge, no inbound receiver."""
    store = open_store(config.db_url, create=False)
    keyring = keys.LiveKeyring(config.data_path)
    committer = GroupCommitter(store, Spool(config.data_path / "spool" / f"worker-{worker}"),
                               batch_max=config.commit_batch)
    await committer.start()
    server = Listener(config, create_app(config, store, keyring, committer, clock), committer)
    _stop_on_signals(server)
    try:
        await server.serve()
    finally:
        await committer.stop()
        store.close()


def _replay_worker_spools(store: SqlStore, spool: Path) -> None:
    """Before any other worker runs: spools that workers of an earlier run left (there may
    have been more of them). One that cannot replay now stays for its worker, or the next
    start: never a reason not to serve."""
    append = store.appender()
    try:
        for leftover in sorted(spool.glob("worker-*")):
            try:
                Spool(leftover).replay(append)
            except Exception as exc:
                log.error("spool %s not replayed yet: %s", leftover, exc)
    finally:
        append.close()


class Listener:
    """The HTTP listener (web/http1.py) for one process, until told to stop."""

    def __init__(self, config: Config, app: TrackingApp, committer: GroupCommitter):
        host, port = config.http
        self.server = http1.Server(app, app, committer.submit, host, port,
                                   log_access=config.log_access)
        if config.log_access:  # INFO lines reach the root handler though it says WARNING
            logging.getLogger(http1.access_log.name).setLevel(logging.INFO)
        self.reuse_port = config.workers > 1  # the kernel spreads connections over workers
        self.stopping = asyncio.Event()
        self.listening: asyncio.AbstractServer | None = None

    async def bind(self, *, first: bool = True) -> None:
        """Listen on --http; ConfigError (naming the address) when it cannot be bound.
        ``first``: the first process checks that nobody holds the port, SO_REUSEPORT
        or not; the other workers then join it."""
        host, port = self.server.address
        if first and self.reuse_port:
            nobody_holds(host, port)
        self.listening = await bound(http1.listen(self.server, reuse_port=self.reuse_port),
                                     host, port)

    async def serve(self) -> None:
        if self.listening is None:  # a worker: the first process is already listening
            await self.bind(first=False)
        try:
            await self.stopping.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        self.server.close()
        if self.listening is not None:
            self.listening.close()
            await self.listening.wait_closed()
            self.listening = None

    def signal_handler_interrupt(self) -> None:
        self.stopping.set()


def _stop_on_signals(server: Listener) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.signal_handler_interrupt)


# -- the other workers ---------------------------------------------------------------------

def _start_workers(config: Config, clock: Clock,
                   on_exit: Callable[[str], None]) -> list[BaseProcess]:
    """Start workers 2..N; when one exits on its own, ``on_exit(why)`` stops this server
    too."""
    if config.workers > 1 and not sys.platform.startswith("linux"):
        raise ConfigError("--workers above 1 needs Linux (SO_REUSEPORT and PR_SET_PDEATHSIG)")
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: no threads, no loop
    workers: list[BaseProcess] = []
    for number in range(2, config.workers + 1):
        # Started from the main thread: the child's parent-death signal follows this thread.
        # The settings go as plain dicts: Config's __getattr__ does not survive unpickling.
        settings = (dict(config.values), dict(config.sources))
        worker = spawn.Process(target=_worker_main, args=(settings, clock, number, os.getpid()),
                               name=f"mailbeacon-worker-{number}")
        worker.start()
        workers.append(worker)
    loop = asyncio.get_running_loop()
    for process in workers:
        loop.add_reader(process.sentinel, _worker_gone, loop, process, on_exit)
    return workers


def _worker_gone(loop: asyncio.AbstractEventLoop, process: BaseProcess,
                 on_exit: Callable[[str], None]) -> None:
    loop.remove_reader(process.sentinel)
    process.join(1.0)  # (its pipe closes a moment before the kernel can reap it)
    why = f"{process.name} exited (status {process.exitcode})"
    log.error("%s: stopping the server", why)
    print(f"mailbeacon: {why}; stopping", file=sys.stderr, flush=True)
    on_exit(why)


def _stop_workers(workers: list[BaseProcess], grace: float = 30.0) -> None:
    for process in workers:
        if process.is_alive():
            process.terminate()  # SIGTERM: it answers what it holds, then stops
    deadline = time.monotonic() + grace
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _worker_main(settings: tuple[dict[str, Any], dict[str, str]], clock: Clock, number: int,
                 parent: int) -> None:
    _die_with_parent(parent)
    asyncio.run(serve_hits(Config(*settings), clock, number))


# -- the judge ------------------------------------------------------------------------------

class JudgeProcess:
    """The judge in a process of its own, so it never holds the hot path's interpreter.

    Spawned like the workers (it dies with this process, however that dies), started
    again when it dies on its own, stopped (SIGTERM: it ends its pass) on shutdown.
    Several judges on one store are safe (the cursor's compare-and-set), so a new one
    started while an old one still ends its pass is harmless.
    """

    def __init__(self, config: Config, clock: Clock):
        # The settings go as plain dicts: Config's __getattr__ does not survive unpickling.
        self.settings = (dict(config.values), dict(config.sources))
        self.clock = clock
        self.process: BaseProcess | None = None
        self.stopping = False
        self.restarts = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the judge; from the event loop's (main) thread: the parent-death signal
        follows the thread that started the child."""
        self.loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")
        process = spawn.Process(target=_judge_main,
                                args=(self.settings, self.clock, os.getpid()),
                                name="mailbeacon-judge", daemon=True)
        process.start()
        self.process = process
        self.loop.add_reader(process.sentinel, self._gone, process)

    def _gone(self, process: BaseProcess) -> None:
        assert self.loop is not None
        self.loop.remove_reader(process.sentinel)
        process.join(0)
        if self.stopping:
            return
        self.restarts += 1
        log.error("the judge exited (status %s): starting it again", process.exitcode)
        self.loop.call_later(JUDGE_RESTART_SECONDS, self._restart)

    def _restart(self) -> None:
        if not self.stopping:
            self.start()

    def stop(self, grace: float = 30.0) -> None:
        """Stop the judge (from any thread): SIGTERM, then SIGKILL after ``grace``."""
        self.stopping = True
        process = self.process
        if process is None:
            return
        if self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.call_soon_threadsafe(self.loop.remove_reader, process.sentinel)
        _stop_workers([process], grace)


def _judge_main(settings: tuple[dict[str, Any], dict[str, str]], clock: Clock,
                parent: int) -> None:
    _die_with_parent(parent)
    with contextlib.suppress(OSError):
        os.nice(JUDGE_NICE)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches serve, which stops us
    config = Config(*settings)
    store = open_store(config.db_url, create=False)
    try:
        judge_until(store, Judge.from_config(config), clock, stop)
    finally:
        store.close()


def judge_until(store: SqlStore, judge: Judge, clock: Clock, stop: threading.Event,
                every: float = JUDGE_EVERY) -> None:
    """Keep verdicts current until ``stop``: catch up, wait ``every`` seconds, again.

    In its own process the judge can take all the CPU it is given: it never slows
    the answers through the interpreter, only through the CPU and the store they
    share (SQLite: one writer at a time, so its passes stay short).
    """
    while not stop.is_set():
        try:
            catch_up(store, judge, clock.now(), batch=JUDGE_PASS_EVENTS, stop=stop)
        except Exception as exc:  # the store is away: the hits wait in the event stream
            log.warning("judge pass failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
        stop.wait(every)


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this worker when the first process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
