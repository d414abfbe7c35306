"""Delivery figures of a campaign: copies sent, and what came back about them.

Counted from the messages table and the delivery events (the rules of what
counts live in ``core.delivery``); the suppression list's size is reported
beside them.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from mailbeacon.core.delivery import DELIVERY_KINDS, DeliveryCounts, tally
from mailbeacon.store import suppressions
from mailbeacon.store.schema import events, messages
from mailbeacon.store.sql import SqlStore


def delivery_counts(store: SqlStore, campaign: int | None = None) -> DeliveryCounts:
    sent_q = sa.select(sa.func.count()).select_from(messages).where(messages.c.status == "sent")
    ev_q = sa.select(events.c.kind, events.c.message, events.c.detail).where(
        events.c.kind.in_([str(k) for k in DELIVERY_KINDS]), events.c.message != 0
    )
    if campaign is not None:
        sent_q = sent_q.where(messages.c.campaign == campaign)
        ev_q = ev_q.where(events.c.campaign == campaign)
    with store.connect() as conn:
        sent = int(conn.scalar(sent_q) or 0)
        rows = [(k, int(m), json.loads(d) if d else {}) for k, m, d in conn.execute(ev_q)]
        listed = suppressions.listed(conn)
    return tally(rows, sent=sent, suppressed=listed)
