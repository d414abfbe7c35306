"""serve's judge runs in a process of its own: it judges, it is restarted when it dies,
it stops with serve (SIGTERM) and dies with it (SIGKILL)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from mailbeacon.store.sql import open_store
from serverproc import ServerProcess


def _judges(pid: int) -> list[int]:
    """serve's children that run the judge (spawned: multiprocessing's spawn_main)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and _alive(int(child)):
                found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text(errors="replace").lower()
    except FileNotFoundError:
        return False


def _wait(what: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _pixel(server: ServerProcess, message: int) -> None:
    keyring = keys.load_or_create(server.data_dir)
    token = tokens.encode(Claims(TokenKind.OPEN, 3, message), keyring)
    assert httpx.get(f"{server.url}/o/{token}.gif", timeout=5).status_code == 200


def _judged(store_url: str, message: int) -> bool:
    store = open_store(store_url, create=False)
    try:
        with store.connect() as conn:
            return bool(conn.exec_driver_sql(
                "SELECT count(*) FROM verdicts v JOIN events e ON e.id = v.event "
                f"WHERE e.message = {int(message)}").scalar())
    finally:
        store.close()


def _one_judge(server: ServerProcess) -> int:
    assert server.proc is not None
    pid = server.proc.pid
    _wait(lambda: len(_judges(pid)) == 1)
    judges = _judges(pid)
    assert len(judges) == 1, judges
    return judges[0]


@pytest.mark.slow
def test_the_judge_process_judges_restarts_and_stops_with_serve(tmp_path: Path,
                                                                store_url: str) -> None:
    with ServerProcess(tmp_path / "data", store_url) as server:
        judge = _one_judge(server)
        assert judge != server.proc.pid
        _pixel(server, 11)
        _wait(lambda: _judged(store_url, 11))

        os.kill(judge, signal.SIGKILL)  # dies on its own: serve starts another
        _wait(lambda: not _alive(judge))
        again = _one_judge(server)
        assert again != judge
        _pixel(server, 12)
        _wait(lambda: _judged(store_url, 12))
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    assert server.proc is not None and server.proc.returncode == 0, server.output()
    assert not _alive(again), "the judge outlived serve's SIGTERM"


@pytest.mark.slow
def test_the_judge_dies_with_a_killed_serve(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", f"sqlite:///{tmp_path / 'm.db'}").start()
    judge = _one_judge(server)
    server.kill()
    _wait(lambda: not _alive(judge), timeout=5)


def test_no_judge_process_with_judge_false(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", f"sqlite:///{tmp_path / 'm.db'}",
                       "--judge", "false") as server:
        assert server.proc is not None
        time.sleep(0.5)
        assert _judges(server.proc.pid) == []
