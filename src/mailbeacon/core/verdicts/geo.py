"""The country of an address, from offline data only: no lookup leaves the machine.

Two sources, in this order:

1. A database the user supplies (``load_country_db``): a CSV of
   ``first,last,CC`` address ranges (the layout of DB-IP's "IP to Country Lite"
   CSV, CC BY 4.0, which a user may download and keep updated; show "IP
   Geolocation by DB-IP" where results are shown) or of ``CIDR,CC`` lines.
2. The ``iptocc`` package (a dependency, MIT OR Apache-2.0), which embeds the
   Regional Internet Registries' delegation files. Its country is where the
   block is *registered*, not where it is used, so treat it as a hint.

With neither, ``country`` answers None. Private, loopback and other
non-global addresses are always None.
"""

from __future__ import annotations

import bisect
import csv
import importlib
import io
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from mailbeacon.core.verdicts.model import parse_ip
from mailbeacon.errors import ConfigError

CountryLookup = Callable[[str], str | None]


def _registry_lookup() -> CountryLookup | None:
    """iptocc's lookup, when the package can be imported."""
    try:
        module = importlib.import_module("iptocc")
    except ImportError:
        return None
    return cast(CountryLookup, module.country_code)


_rir_country_code = _registry_lookup()


@dataclass(frozen=True)
class CountryDB:
    """Sorted, non-overlapping address ranges, one table per IP version."""

    ranges: tuple[tuple[int, int, int, str], ...]  # (version, first, last, CC)
    _starts: dict[int, list[int]] = field(default_factory=dict, init=False, repr=False)
    _rows: dict[int, list[tuple[int, str]]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for version, first, last, cc in sorted(self.ranges):
            self._starts.setdefault(version, []).append(first)
            self._rows.setdefault(version, []).append((last, cc))

    def __call__(self, ip: str) -> str | None:
        addr = parse_ip(ip)
        if addr is None:
            return None
        starts = self._starts.get(addr.version, [])
        i = bisect.bisect_right(starts, int(addr)) - 1
        if i < 0:
            return None
        last, cc = self._rows[addr.version][i]
        return cc if int(addr) <= last else None


def parse_country_csv(text: str, *, origin: str = "<text>") -> CountryDB:
    """Parse ``first,last,CC`` or ``CIDR,CC`` rows; '#' lines are comments."""
    ranges: list[tuple[int, int, int, str]] = []
    lines = (ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#"))
    for number, row in enumerate(csv.reader(io.StringIO("\n".join(lines))), start=1):
        cells = [c.strip() for c in row]
        try:
            if len(cells) == 3:
                first, last = ipaddress.ip_address(cells[0]), ipaddress.ip_address(cells[1])
                ranges.append((first.version, int(first), int(last), cells[2].upper()))
            elif len(cells) == 2:
                net = ipaddress.ip_network(cells[0], strict=False)
                top = int(net.broadcast_address)
                ranges.append((net.version, int(net.network_address), top, cells[1].upper()))
            else:
                raise ValueError("expected 'first,last,CC' or 'CIDR,CC'")
        except ValueError as exc:
            raise ConfigError(f"{origin}: data row {number}: {exc}") from None
    return CountryDB(tuple(ranges))


def load_country_db(path: str | Path) -> CountryDB:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"country database {str(p)!r} cannot be read: {exc.strerror}") from None
    return parse_country_csv(text, origin=str(p))


def rir_country_available() -> bool:
    """Whether the iptocc package can be imported."""
    return _rir_country_code is not None


def country(ip: str | None, db: CountryLookup | None = None) -> str | None:
    """ISO 3166-1 alpha-2 code for a public address, or None when unknown."""
    addr = parse_ip(ip)
    if addr is None or not addr.is_global:
        return None
    if db is not None:
        return db(str(addr))
    if _rir_country_code is not None:
        return _rir_country_code(str(addr))
    return None
