"""How the pure verdict engine scales with the hits of one recipient copy.

    .venv/bin/python bench/judge_engine.py [--sizes 1000,10000,100000,250000]

judge() over one copy (no store): N opens from a mix of readers, proxies and
MPP; N clicks over 5 links (readers and scanner bursts); and a million
identical hits of one client (parse caches warm). Prints seconds, microseconds per hit, and the
per-hit cost over that at the smallest N (1.0 is linear).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from mailbeacon.core.verdicts.engine import judge
from mailbeacon.core.verdicts.model import CLICK, OPEN, Evidence, Hit

T = 1_767_225_600.0
EVIDENCE = Evidence(sent_at=T, delivered_at=T + 4, link_count=5)
AGENTS = (
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
)
ADDRESSES = tuple(f"198.51.{a}.{b}" for a in range(4) for b in range(1, 51))  # 200 clients


def opens(n: int, rng: random.Random) -> list[Hit]:
    """N opens, about 50 a second (a busy copy), from 200 addresses and 5 clients."""
    at = T + 1
    hits = []
    for i in range(n):
        at += rng.expovariate(50)
        hits.append(Hit(i, OPEN, at, "GET", rng.choice(ADDRESSES), rng.choice(AGENTS)))
    return hits


def clicks(n: int, rng: random.Random) -> list[Hit]:
    """N clicks over 5 links: scanner bursts of 5-20 clicks and single reader clicks."""
    at = T + 5
    hits: list[Hit] = []
    while len(hits) < n:
        at += rng.expovariate(1 / 20)
        burst = rng.randint(5, 20) if rng.random() < 0.5 else 1
        ip, ua = rng.choice(ADDRESSES), rng.choice(AGENTS)
        for _ in range(min(burst, n - len(hits))):
            at += rng.uniform(0.05, 0.5)
            hits.append(Hit(len(hits), CLICK, at, "GET", ip, ua, link=rng.randint(1, 5)))
    return hits


def identical(n: int, kind: str) -> list[Hit]:
    """N hits of one client, 10 microseconds apart (a flood on one tracking URL)."""
    link = 1 if kind == CLICK else 0
    ip, ua = ADDRESSES[0], AGENTS[4]
    return [Hit(i, kind, T + 600 + i * 1e-5, "GET", ip, ua, link) for i in range(n)]


def timed(hits: list[Hit]) -> float:
    start = time.perf_counter()
    verdicts = judge(hits, EVIDENCE)
    elapsed = time.perf_counter() - start
    assert len(verdicts) == len(hits)
    return elapsed


def series(name: str, make: Callable[[int], list[Hit]], sizes: list[int]) -> None:
    base: float | None = None
    for n in sizes:
        seconds = timed(make(n))
        per_hit = seconds / n * 1e6
        base = base or per_hit
        print(f"{name:<22}{n:>10,}{seconds:>10.2f} s{per_hit:>10.2f} us{per_hit / base:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,250000")
    parser.add_argument("--flood", type=int, default=1_000_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(8)
    judge(opens(2000, random.Random(1)), EVIDENCE)  # warm the parse caches, as a server has them
    print(f"{'one copy':<22}{'hits':>10}{'time':>12}{'per hit':>13}{'ratio':>9}")
    series("opens", lambda n: opens(n, rng), sizes)
    series("clicks over 5 links", lambda n: clicks(n, rng), sizes)
    series("identical opens", lambda n: identical(n, OPEN), [sizes[0], args.flood])
    series("identical clicks", lambda n: identical(n, CLICK), [sizes[0], args.flood])


if __name__ == "__main__":
    main()
