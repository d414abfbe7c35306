"""PostgreSQL goes away under a running tracking server: hits are still answered,
kept on disk, and land in the store when it comes back. Nothing is lost."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from mailbeacon.store.sql import open_store
from serverproc import ServerProcess
from tcpproxy import CuttableProxy


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{host}@127.0.0.1:{port}"))


def _wait(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # a network outage
def test_hits_survive_a_database_outage(tmp_path: Path, store_url: str) -> None:
    pg = urlsplit(store_url.split("?")[0])
    with CuttableProxy((pg.hostname or "127.0.0.1", pg.port or 5432)) as proxy:
        url = _through(store_url, proxy.port)
        open_store(url).close()  # the schema exists before the server starts
        with ServerProcess(tmp_path / "data", url, "--judge", "false") as server:
            keyring = keys.load_or_create(server.data_dir)

            def hit(n: int) -> httpx.Response:
                token = tokens.encode(Claims(TokenKind.OPEN, 1, n), keyring)
                return httpx.get(f"{server.url}/o/{token}.gif", timeout=10,
                                 headers={"User-Agent": f"hit-{n}"})

            assert all(hit(n).status_code == 200 for n in range(1, 21))
            proxy.cut()
            answers = [hit(n) for n in range(21, 61)]  # the store is gone
            assert all(r.status_code == 200 and len(r.content) == 43 for r in answers)
            # (/api/stats needs an API key, which the server checks in the store: away)
            spooled = server.data_dir / "spool"
            assert list(spooled.glob("hits-*.jsonl"))
            proxy.restore()
            _wait(lambda: not list(spooled.glob("hits-*.jsonl")))
            assert all(hit(n).status_code == 200 for n in range(61, 71))
    store = open_store(store_url, create=False)
    with store.connect() as conn:
        agents = {r[0] for r in conn.exec_driver_sql("SELECT user_agent FROM events")}
    store.close()
    assert agents == {f"hit-{n}" for n in range(1, 71)}
