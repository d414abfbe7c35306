"""What several subcommands open the same way."""

from __future__ import annotations

import argparse

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


BIGGEST_ID = 2**63 - 1  # the database's BIGINT: a larger number overflows the driver


def whole_number(text: str) -> int:
    """An argparse type for ids and counts: a whole number from 1 to 2**63-1, or a
    one-line usage error (a larger one would reach the database driver and overflow)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= BIGGEST_ID:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number from 1 to {BIGGEST_ID}")
    return value
