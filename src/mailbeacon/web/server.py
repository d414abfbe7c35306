"""Run the tracking server: open the store, start the group committer, serve HTTP.

The HTTP server is granian, embedded in this process (one event loop, one
writer thread), so a SIGKILL leaves no orphan worker holding the port.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time

from granian.constants import Interfaces
from granian.server.embed import Server

from mailbeacon import keys
from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.inbound.service import start_inbound
from mailbeacon.judging import JUDGE_EVERY, Judge, catch_up
from mailbeacon.store.sql import SqlStore, open_store
from mailbeacon.store.writer import GroupCommitter, Spool
from mailbeacon.web.app import create_app

log = logging.getLogger("mailbeacon.server")


async def judge_forever(store: SqlStore, judge: Judge, clock: Clock,
                        stop: threading.Event, every: float = JUDGE_EVERY) -> None:
    """Keep verdicts current: hits are judged a moment after they are answered.

    One pass at a time, then a pause at least as long as the pass took: under a
    flood of hits the judge takes at most about half of the interpreter and
    falls behind for a while, rather than slowing the answers to the hits.
    """
    while not stop.is_set():
        started = time.monotonic()
        try:
            await asyncio.to_thread(catch_up, store, judge, clock.now(), stop=stop, passes=1)
        except Exception as exc:  # the store is away: the hits wait in the event stream
            log.warning("judge pass failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
        await asyncio.sleep(max(every, time.monotonic() - started))


async def serve(config: Config, clock: Clock) -> None:
    """Serve until SIGINT/SIGTERM. Raises StoreError before listening if the store is unusable."""
    store = open_store(config.db_url, now=clock.now())
    keyring = keys.load_or_create(config.data_path)
    committer = GroupCommitter(store, Spool(config.data_path / "spool"),
                               batch_max=config.commit_batch)
    await committer.start()
    host, port = config.http
    server = Server(
        create_app(config, store, keyring, committer, clock), address=host, port=port,
        interface=Interfaces.ASGINL, backlog=2048, log_enabled=config.log_access,
        log_access=config.log_access, websockets=False,
    )
    stop_judging = threading.Event()
    judge_task = (asyncio.create_task(
        judge_forever(store, Judge.from_config(config), clock, stop_judging))
        if config.judge else None)
    stop_inbound = await start_inbound(config, store, keyring, clock)  # docs/inbound.md
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.signal_handler_interrupt)
    print(f"mailbeacon: tracking at {config.public_url} (listening on http://{host}:{port}, "
          f"store {store.dialect}, data in {config.data_path})", file=sys.stderr, flush=True)
    try:
        await server.serve()
    finally:
        stop_judging.set()
        if judge_task:
            judge_task.cancel()
        await stop_inbound()
        await committer.stop()
        store.close()
        print("mailbeacon: stopped", file=sys.stderr, flush=True)
