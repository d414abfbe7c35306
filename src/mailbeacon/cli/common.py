"""What several subcommands open the same way."""

from __future__ import annotations

from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.store.sql import SqlStore, open_store


def store_for(config: Config) -> SqlStore:
    """The store, created and migrated when missing: for commands that record something."""
    return open_store(config.db_url, now=SystemClock().now())


def existing_store(config: Config) -> SqlStore:
    """The store as it is, for commands that only read: a mistyped --db is an error
    ("no store at PATH"), not a new empty store that every figure then comes from."""
    return open_store(config.db_url, create=False, now=SystemClock().now())
