"""Campaigns by name: what every command and endpoint that takes ``campaign`` looks up."""

from __future__ import annotations

from mailbeacon.errors import MailbeaconError
from mailbeacon.store import queries
from mailbeacon.store.sql import SqlStore


class UnknownCampaign(MailbeaconError):
    """A campaign name the store does not have."""


def campaign_id(store: SqlStore, name: str | None) -> int | None:
    """The id of campaign ``name``; None (all mail) when no name is given."""
    if name is None:
        return None
    try:
        return queries.campaign_id(store, name)
    except queries.UnknownCampaign:
        raise UnknownCampaign(f"no campaign named {name!r}") from None
