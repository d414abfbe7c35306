"""What several subcommands open the same way."""

from __future__ import annotations

from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.store.sql import SqlStore, open_store


def store_for(config: Config) -> SqlStore:
    return open_store(config.db_url, now=SystemClock().now())
