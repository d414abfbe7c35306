"""Which mail client, system and kind of device a user agent names.

Parsing uses ua-parser (the uap-core rules). A proxy or prefetch hit carries the
proxy's user agent, not the reader's (Gmail's proxy claims Firefox 11 on
Windows XP), so ``client_of`` gives nothing for those and the caller shows no
device or place for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ua_parser import Device, parse

from mailbeacon.core.verdicts.model import HUMAN, SELF, UNKNOWN, Hit, Verdict

DESKTOP: Final = "desktop"
MOBILE: Final = "mobile"
TABLET: Final = "tablet"
UNKNOWN_DEVICE: Final = "unknown"

_DESKTOP_OS: Final = frozenset(
    {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Debian", "Fedora", "Red Hat",
     "SUSE", "openSUSE", "Chrome OS", "FreeBSD", "OpenBSD", "NetBSD", "Arch Linux"}
)  # fmt: skip
_MOBILE_OS: Final = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"}
)
# uap-core puts its list of known robots under this device family
_ROBOT_DEVICE: Final = "Spider"
# verdicts whose user agent is the reader's own software
_READER_VERDICTS: Final = frozenset({HUMAN, SELF, UNKNOWN})


@dataclass(frozen=True, slots=True)
class Client:
    client: str | None  # "Thunderbird 115", "Chrome Mobile 124"
    family: str | None  # "Thunderbird": what re-reads on another client are told apart by
    os: str | None  # "Windows 10", "iOS 17.4"
    device: str  # desktop | mobile | tablet | unknown
    robot: bool = False  # uap-core lists the user agent as a robot

    @property
    def is_reader_software(self) -> bool:
        """A named client on a named system: what a person's mail client or browser sends."""
        return self.family is not None and self.os is not None and not self.robot


NO_CLIENT: Final = Client(client=None, family=None, os=None, device=UNKNOWN_DEVICE)


@lru_cache(maxsize=8192)
def parse_client(user_agent: str) -> Client:
    """Parse a user agent; unknown parts are None, the device "unknown"."""
    ua = user_agent.strip()
    if not ua:
        return NO_CLIENT
    result = parse(ua)
    agent, system, hardware = result.user_agent, result.os, result.device
    robot = hardware is not None and hardware.family == _ROBOT_DEVICE
    family = agent.family if agent is not None else None
    client = _versioned(family, agent.major if agent is not None else None)
    os_name = system.family if system is not None else None
    os_version = ".".join(v for v in (system.major, system.minor) if v) if system else None
    return Client(
        client=client,
        family=family,
        os=_versioned(os_name, os_version),
        device=UNKNOWN_DEVICE if robot else _device(ua, os_name, hardware),
        robot=robot,
    )


def client_of(hit: Hit, verdict: Verdict) -> Client:
    """The reader's client for a hit, or NO_CLIENT when the hit came from a machine."""
    if verdict.verdict not in _READER_VERDICTS:
        return NO_CLIENT
    return parse_client(hit.user_agent)


def _versioned(name: str | None, version: str | None) -> str | None:
    if name is None:
        return None
    return f"{name} {version}" if version else name


def _device(ua: str, os_name: str | None, hardware: Device | None) -> str:
    family = hardware.family if hardware is not None else ""
    brand = (hardware.brand if hardware is not None else None) or ""
    if family == "iPad" or "Tablet" in family or brand.endswith("Tablet"):
        return TABLET
    # Android tablets leave "Mobile" out of the user agent (Chrome's documented convention)
    if os_name == "Android" and "Mobile" not in ua:
        return TABLET
    if os_name in _MOBILE_OS or family in ("iPhone", "iPod"):
        return MOBILE
    if os_name in _DESKTOP_OS:
        return DESKTOP
    return UNKNOWN_DEVICE
