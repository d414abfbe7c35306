"""A SIGKILL while hits pour in loses no hit that got a response."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from mailbeacon.store.sql import open_store
from serverproc import ServerProcess

WORKERS = 16


def _fire(url: str, paths: list[tuple[int, str]], acked: list[int], stop: threading.Event) -> None:
    with httpx.Client(timeout=5) as client:
        for message, path in paths:
            if stop.is_set():
                return
            try:
                if client.get(url + path).status_code == 200:
                    acked.append(message)
            except httpx.HTTPError:
                return  # the server is gone


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_hit(tmp_path: Path, store_url: str) -> None:
    # Commits take 30 ms, as on a slow disk: a hit answered before its COMMIT would be lost.
    server = ServerProcess(tmp_path / "data", store_url,
                           env={"MAILBEACON_TEST_SLOW_DISK_MS": "30"}).start()
    keyring = keys.load_or_create(server.data_dir)
    acked: list[int] = []
    stop = threading.Event()
    threads = []
    for w in range(WORKERS):
        paths = [(m, f"/o/{tokens.encode(Claims(TokenKind.OPEN, 1, m), keyring)}.gif")
                 for m in range(w * 100_000 + 1, w * 100_000 + 5_000)]
        threads.append(threading.Thread(target=_fire, args=(server.url, paths, acked, stop)))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 600 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL, mid-stream
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 600, server.output()

    restarted = ServerProcess(tmp_path / "data", store_url, port=server.port).start()
    restarted.stop()
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        stored = {r[0] for r in conn.exec_driver_sql("SELECT message FROM events")}
    store.close()
    lost = set(acked) - stored
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged hits are missing"
