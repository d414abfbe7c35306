"""Network labels the user supplies: CIDR -> label, from a plain text file.

No vendor publishes the addresses of its mail scanners, and Apple does not
publish the addresses of its Mail Privacy Protection proxy, so mailbeacon ships
no ranges. A user who knows some (their own gateway, a list an owner publishes)
writes them in a file, one per line::

    # comments and blank lines are ignored; the separator is a comma or spaces
    192.0.2.0/24, apple-mpp      # source: where you got it
    2001:db8:10::/48 google-proxy
    198.51.100.7 scanner          # a single address is a /32 (or /128)

The labels the engine acts on are in ``LABEL_VERDICTS``; any other label is
kept and shown as a reason but does not decide a verdict.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mailbeacon.core.verdicts.model import PREFETCH, PROXY, SCANNER, IPAddress, IPNetwork, parse_ip
from mailbeacon.errors import ConfigError

LABEL_VERDICTS: Final[dict[str, str]] = {
    "apple-mpp": PREFETCH,  # Apple Mail Privacy Protection proxy
    "google-proxy": PROXY,  # Gmail image proxy
    "yahoo-proxy": PROXY,  # Yahoo/AOL image proxy
    "scanner": SCANNER,  # a link scanner the user knows of (e.g. their own gateway)
}

_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class IpLabels:
    """A lookup from address to the label of the most specific network holding it."""

    entries: tuple[tuple[IPNetwork, str], ...] = ()
    # (version, prefix length, {network: label}), longest prefix first
    _tables: list[tuple[int, int, dict[IPNetwork, str]]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        grouped: dict[tuple[int, int], dict[IPNetwork, str]] = {}
        for net, label in self.entries:
            grouped.setdefault((net.version, net.prefixlen), {})[net] = label
        for (version, prefix), nets in sorted(grouped.items(), key=lambda kv: -kv[0][1]):
            self._tables.append((version, prefix, nets))

    def __len__(self) -> int:
        return len(self.entries)

    def label(self, ip: str | IPAddress | None) -> str | None:
        """The label of the longest matching network, or None."""
        addr = parse_ip(ip) if ip is None or isinstance(ip, str) else ip
        if addr is None:
            return None
        for version, prefix, nets in self._tables:
            if version == addr.version:
                label = nets.get(ipaddress.ip_network((addr, prefix), strict=False))
                if label is not None:
                    return label
        return None


def parse_ip_labels(text: str, *, origin: str = "<text>") -> IpLabels:
    """Parse the label file format; a bad line fails loudly with its number."""
    entries: list[tuple[IPNetwork, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in _SPLIT.split(line) if p]
        if len(parts) != 2:
            raise ConfigError(f"{origin}:{number}: expected 'CIDR label', got {raw.strip()!r}")
        try:
            net = ipaddress.ip_network(parts[0], strict=False)
        except ValueError:
            raise ConfigError(f"{origin}:{number}: {parts[0]!r} is not a network") from None
        entries.append((net, parts[1].lower()))
    return IpLabels(tuple(entries))


def load_ip_labels(path: str | Path) -> IpLabels:
    """Read a label file the user maintains (see the module docstring)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"IP label file {str(p)!r} cannot be read: {exc.strerror}") from None
    return parse_ip_labels(text, origin=str(p))
