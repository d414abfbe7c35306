"""Injectable time and randomness, so tests control both."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, UTC."""
        ...

    def token_bytes(self, n: int) -> bytes:
        """n unpredictable bytes."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)


@dataclass
class FixedClock:
    """A clock for tests: time moves only when told; bytes are a counter."""

    at: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    counter: int = field(default=0)

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds

    def token_bytes(self, n: int) -> bytes:
        self.counter += 1
        return self.counter.to_bytes(n, "big")


def iso(ts: float) -> str:
    """An epoch timestamp as ISO 8601 UTC with a Z, to the millisecond."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
