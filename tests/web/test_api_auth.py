"""Recipients' data is not public: /api/ answers only to a valid API key, over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from mailbeacon.services import api_keys
from mailbeacon.store.sql import open_store
from mailbeacon.web import auth
from serverproc import ServerProcess

API_PATHS = ("/api/events", "/api/report", "/api/stats", "/api", "/api/", "/api/anything",
             "/api/events?after=0&limit=5")


@pytest.fixture
def server(tmp_path: Path, store_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data", store_url) as s:
        yield s


def _cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbeacon", *args, "--data-dir",
                           str(server.data_dir), "--db", server.db_url],
                          capture_output=True, text=True, timeout=60)


def test_without_a_key_nothing_under_api_answers_but_401(server: ServerProcess) -> None:
    token = tokens.encode(Claims(TokenKind.OPEN, 1, 1), keys.read(server.data_dir))
    assert httpx.get(f"{server.url}/o/{token}.gif").status_code == 200  # pixel: public
    for path in API_PATHS:
        for headers in ({}, {"Authorization": "Bearer mb_forged"}, {"Authorization": "Basic x"},
                        {"X-Api-Key": "nope"}, {"Authorization": "Bearer"}):
            r = httpx.get(f"{server.url}{path}", headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "127.0.0.1" not in r.text and "error" in r.json()
        assert httpx.post(f"{server.url}{path}", content=b"{}").status_code == 401
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_key_made_by_the_cli_opens_the_api_until_revoked(server: ServerProcess) -> None:
    made = _cli(server, "apikey", "create", "crm sync", "--json")
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    bearer = {"Authorization": f"Bearer {doc['key']}"}
    assert httpx.get(f"{server.url}/api/report", headers=bearer).status_code == 200
    assert httpx.get(f"{server.url}/api/events", headers={"X-Api-Key": doc["key"]}
                     ).status_code == 200
    listed = _cli(server, "apikey", "list")
    assert "crm sync" in listed.stdout and doc["key"] not in listed.stdout  # shown once only
    assert doc["key"] not in server.output()
    revoked = _cli(server, "apikey", "revoke", str(doc["id"]))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    deadline = time.monotonic() + auth.CACHE_SECONDS + 5
    while httpx.get(f"{server.url}/api/report", headers=bearer).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still opens the API"
        time.sleep(0.5)


def test_only_a_hash_is_stored(store_url: str) -> None:
    store = open_store(store_url, now=1.0)
    key, secret = api_keys.create(store, "reporting", now=1.0)
    with store.engine.connect() as conn:
        dumped = repr(list(conn.exec_driver_sql("SELECT * FROM api_keys")))
    assert secret not in dumped and api_keys.digest(secret) in dumped
    first, second = (api_keys.verify(store, secret, now=t) for t in (2.0, 3.0))
    assert first is not None and second is not None and first.id == second.id == key.id
    assert second.last_used_at == 2.0  # touched once, not per request
    assert api_keys.verify(store, secret + "x", now=2.0) is None
    assert api_keys.verify(store, secret.upper(), now=2.0) is None
    api_keys.revoke(store, key.id, now=4.0)
    assert api_keys.verify(store, secret, now=5.0) is None
    store.close()


def test_clear_errors(server: ServerProcess) -> None:
    for args, message in ((("apikey", "revoke", "77"), "no API key 77"),
                          (("apikey", "create", " "), "needs a name")):
        done = _cli(server, *args)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
