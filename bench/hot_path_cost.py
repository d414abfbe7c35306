"""CPU cost of the hot path's two halves, in process, without the network.

    .venv/bin/python bench/hot_path_cost.py

1. The HTTP protocol (web/http1.py + web/tracking.py): 64 connections, each fed one
   pixel (then click) request per round, every hit "committed" at once at the end
   of the round; CPU time per request, best of 15 rounds of 6,400 requests.
2. The SQLite write (the group commit's ``Appender``): batches of 64 hits spread
   over 20,000 copies, with the events table's indexes as they are and with the
   ones that begin with ``message`` dropped, to show what each costs.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from mailbeacon import keys
from mailbeacon.clock import SystemClock
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from mailbeacon.store.sql import open_store
from mailbeacon.web import http1
from mailbeacon.web.tracking import TrackingApp

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
CONNECTIONS = 64
COPIES = 20_000


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555)

    def is_reading(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _requests(keyring: tokens.Keyring, kind: str) -> list[bytes]:
    def path(m: int) -> str:
        if kind == "pixel":
            return f"/o/{tokens.encode(Claims(TokenKind.OPEN, 7, m), keyring)}.gif"
        claims = Claims(TokenKind.CLICK, 7, m, 3, "https://example.com/page?x=1")
        return f"/c/{tokens.encode(claims, keyring)}"
    return [f"GET {path(m)} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: {UA}\r\n\r\n"
            .encode() for m in range(1, 2001)]


async def protocol_cost(kind: str) -> float:
    """Best CPU seconds per request over 15 rounds."""
    keyring = keys.load_or_create(Path(tempfile.mkdtemp()))
    requests = _requests(keyring, kind)
    pending: list[Any] = []
    app = TrackingApp(keyring=keyring, record=None, clock=SystemClock(),  # type: ignore[arg-type]
                      fallback=None, load_attachment=None)  # type: ignore[arg-type]
    server = http1.Server(app, app, lambda row, done: pending.append(done), "127.0.0.1", 8080)
    connections = []
    for _ in range(CONNECTIONS):
        protocol = server.protocol()
        protocol.connection_made(_Transport())  # type: ignore[arg-type]
        connections.append(protocol)
    best = float("inf")
    for _ in range(15):
        started, count = time.thread_time(), 0
        for n in range(100):
            for j, protocol in enumerate(connections):
                protocol.data_received(requests[(n * CONNECTIONS + j) % len(requests)])
                count += 1
            for done in pending:
                done(None)
            pending.clear()
        best = min(best, (time.thread_time() - started) / count)
    server.close()
    return best


def write_cost(drop: tuple[str, ...], batches: int = 200, size: int = 64) -> tuple[float, float]:
    """(CPU µs per hit, wall ms per batch) of the Appender on a fresh SQLite store."""
    directory = Path(tempfile.mkdtemp())
    store = open_store(f"sqlite:///{directory / 'm.db'}")
    with sqlite3.connect(directory / "m.db") as conn:
        for index in drop:
            conn.execute(f"DROP INDEX {index}")
    append = store.appender()
    append([])
    rng, key = random.Random(1), 0
    work = []
    for _ in range(batches):
        rows = []
        for _ in range(size):
            key += 1
            rows.append(("open", time.time(), 7, rng.randint(1, COPIES), 0, "", "GET",
                         "127.0.0.1", UA, "", f"bench.{key}"))
        work.append(rows)
    wall, cpu = time.perf_counter(), time.thread_time()
    for rows in work:
        append(rows)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    append.close()
    store.close()
    return cpu / batches / size * 1e6, wall / batches * 1e3


def main() -> None:
    for kind in ("pixel", "click"):
        print(f"protocol, {kind}: {asyncio.run(protocol_cost(kind)) * 1e6:.1f} µs CPU "
              "per request (best of 15)")
    indexes = ("ix_events_message_kind", "ix_events_message_at", "ix_events_message_tx_id")
    for dropped in range(len(indexes) + 1):
        cpu, wall = write_cost(indexes[:dropped])
        label = "all indexes" if not dropped else "without " + ", ".join(indexes[:dropped])
        print(f"SQLite batch of 64 over {COPIES:,} copies, {label}: {cpu:.1f} µs CPU per hit, "
              f"{wall:.2f} ms per batch")


if __name__ == "__main__":
    main()
