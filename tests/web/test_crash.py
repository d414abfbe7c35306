"""A SIGKILL while hits pour in loses no hit that got a response."""

from __future__ import annotations

import os
import signal
import socket
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


def _listening(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))  # no SO_REUSEPORT: fails while anyone listens
        except OSError:
            return True
    return False


@pytest.mark.slow
def test_sigkill_of_the_first_process_leaves_no_worker_holding_the_port(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", f"sqlite:///{tmp_path / 'm.db'}",
                           "--workers", "3", "--judge", "false").start()
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    workers = [int(p) for p in children.read_text().split()]
    deadline = time.monotonic() + 20  # the workers start after the first one answers
    while time.monotonic() < deadline and _listeners(server.port) < 3:
        time.sleep(0.1)
    assert _listeners(server.port) == 3, server.output()
    for _ in range(20):  # the kernel spreads these over the three processes
        assert httpx.get(f"{server.url}/o/not-a-token.gif").status_code == 200
    server.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_listening(server.port) or _alive(workers)):
        time.sleep(0.05)
    assert not _alive(workers) and not _listening(server.port), server.output()


def _listeners(port: int) -> int:
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


def _alive(pids: list[int]) -> bool:
    return any(Path(f"/proc/{p}").exists() and "zombie" not in
               Path(f"/proc/{p}/status").read_text(errors="replace").lower() for p in pids)


def test_a_killed_worker_stops_serve_with_a_failure_status(tmp_path: Path) -> None:
    """A supervisor's Restart=on-failure restarts only what exits non-zero."""
    server = ServerProcess(tmp_path / "data", f"sqlite:///{tmp_path / 'm.db'}",
                           "--workers", "2", "--judge", "false").start()
    assert server.proc is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _listeners(server.port) < 2:
        time.sleep(0.1)
    [worker] = [int(p) for p in children.read_text().split()  # (not the resource tracker)
                if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    os.kill(worker, signal.SIGKILL)
    assert server.proc.wait(30) == 1, server.output()
    assert ("mailbeacon: error: mailbeacon-worker-2 exited (status -9)"
            in server.output()), server.output()
