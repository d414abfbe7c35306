"""Person or machine, for every open and click, with the reasons (pure: no I/O but files).

    model.py     Hit, Evidence, SenderProfile, Verdict and the verdict/status words
    signals.py   one small function per documented signal
    engine.py    judge(), message_status(), elsewhere(), estimated_human_open_rate()
    iplabels.py  the user's CIDR -> label file (none shipped: no owner publishes one)
    clients.py   client, system and device from a user agent (ua-parser)
    geo.py       country from offline data only (a user's CSV, or the bundled iptocc)
    accuracy.py  labelled scenarios and precision/recall over them

docs/verdicts.md explains each signal and its source.
"""

from mailbeacon.core.verdicts.clients import NO_CLIENT, Client, client_of, parse_client
from mailbeacon.core.verdicts.engine import (
    decide,
    elsewhere,
    estimated_human_open_rate,
    judge,
    message_status,
)
from mailbeacon.core.verdicts.geo import CountryDB, country, load_country_db
from mailbeacon.core.verdicts.iplabels import IpLabels, load_ip_labels, parse_ip_labels
from mailbeacon.core.verdicts.model import (
    ELSEWHERE,
    NOT_OPENED,
    ONLY_MACHINES,
    OPENED_BY_PERSON,
    VERDICTS,
    Evidence,
    Hit,
    SenderProfile,
    Verdict,
)

__all__ = [
    "ELSEWHERE",
    "NOT_OPENED",
    "NO_CLIENT",
    "ONLY_MACHINES",
    "OPENED_BY_PERSON",
    "VERDICTS",
    "Client",
    "CountryDB",
    "Evidence",
    "Hit",
    "IpLabels",
    "SenderProfile",
    "Verdict",
    "client_of",
    "country",
    "decide",
    "elsewhere",
    "estimated_human_open_rate",
    "judge",
    "load_country_db",
    "load_ip_labels",
    "message_status",
    "parse_client",
    "parse_ip_labels",
]
