"""The event store: SQLite by default, PostgreSQL when one machine is not enough."""

from mailbeacon.store.sql import NewMessage, SqlStore, open_store

__all__ = ["NewMessage", "SqlStore", "open_store"]
