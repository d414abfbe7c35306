"""An API key for tests that read ``/api/`` of a running server."""

from __future__ import annotations

from mailbeacon.services import api_keys
from mailbeacon.store.sql import open_store


def api_headers(db_url: str, name: str = "test") -> dict[str, str]:
    store = open_store(db_url, create=False)
    try:
        _, secret = api_keys.create(store, name, now=1.0)
    finally:
        store.close()
    return {"Authorization": f"Bearer {secret}"}
