"""The records the verdict engine reads and writes.

A ``Hit`` is what the tracking server recorded and is never changed; a
``Verdict`` is derived from all the hits and evidence of one recipient copy and
can change whenever more of either arrives.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

OPEN: Final = "open"
CLICK: Final = "click"
DOWNLOAD: Final = "download"
HONEYPOT: Final = "honeypot"
HIT_KINDS: Final = frozenset({OPEN, CLICK, DOWNLOAD, HONEYPOT})
LINK_KINDS: Final = frozenset({CLICK, DOWNLOAD, HONEYPOT})  # a URL was followed

HUMAN: Final = "human"
PROXY: Final = "proxy"  # a mail provider's image proxy fetched for a reader
PREFETCH: Final = "prefetch"  # fetched whether or not anyone read (Apple MPP, HEAD)
SCANNER: Final = "scanner"  # a link scanner or other robot
SELF: Final = "self"  # the sender's own devices
UNKNOWN: Final = "unknown"
VERDICTS: Final = (HUMAN, PROXY, PREFETCH, SCANNER, SELF, UNKNOWN)

OPENED_BY_PERSON: Final = "opened by a person"
ONLY_MACHINES: Final = "only by machines"
NOT_OPENED: Final = "not opened"
STATUSES: Final = (OPENED_BY_PERSON, ONLY_MACHINES, NOT_OPENED)

ELSEWHERE: Final = "opened elsewhere (forwarded or another device)"


@dataclass(frozen=True, slots=True)
class Hit:
    """One recorded tracking hit, exactly as the tracking server saw it."""

    id: int
    kind: str  # open | click | download | honeypot
    at: float  # epoch seconds
    method: str  # GET | HEAD
    ip: str | None
    user_agent: str
    link: int = 0  # 1-based link index for clicks, 0 otherwise


@dataclass(frozen=True, slots=True)
class Evidence:
    """What else is known about the recipient copy; parts of it arrive late."""

    sent_at: float
    delivered_at: float | None = None  # a DSN with Action: delivered
    link_count: int = 0  # distinct tracked links in the message
    replied_at: float | None = None
    read_receipt_at: float | None = None  # MDN "displayed" with manual-action

    @property
    def anchor(self) -> float:
        """When the copy reached the mailbox, as well as we know."""
        return self.delivered_at if self.delivered_at is not None else self.sent_at


@dataclass(frozen=True, slots=True)
class SenderProfile:
    """The sender's own devices, so their looks at the sent copy are not counted."""

    networks: tuple[IPNetwork, ...] = ()
    user_agents: tuple[str, ...] = ()  # substrings of the sender's user agents

    @classmethod
    def of(cls, networks: tuple[str, ...] = (), user_agents: tuple[str, ...] = ()) -> SenderProfile:
        """Build a profile from CIDR strings ("192.0.2.0/24", "2001:db8::/48")."""
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        return cls(networks=nets, user_agents=tuple(u for u in user_agents if u))


@dataclass(frozen=True, slots=True)
class Verdict:
    """Person or machine for one hit, with how sure and why (Braze's shape)."""

    verdict: str  # one of VERDICTS
    confidence: float  # 0..1; 1 only when a signal is certain (a hidden link)
    reasons: tuple[str, ...]

    @property
    def is_machine(self) -> bool:
        return self.verdict in (PREFETCH, SCANNER)


@lru_cache(maxsize=16384)  # the same few addresses come back on every re-judging
def parse_ip(ip: str | None) -> IPAddress | None:
    """The address of a hit, or None when it is missing or not an address."""
    if not ip:
        return None
    try:
        return ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
