"""How well, and how fast, the verdict engine judges the labelled scenarios.

    .venv/bin/python bench/verdict_accuracy.py [--seconds 3] [--misses] [FOLDER]

Prints precision and recall per verdict, the confusion table, message-status
agreement, then hits judged per second (judge() over whole recipient copies,
as the server re-runs it; the parse caches are warm, as in a running server).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mailbeacon.core.verdicts.accuracy import Scenario, evaluate, format_report, load_scenarios
from mailbeacon.core.verdicts.engine import judge, message_status

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "data" / "verdicts"


def judge_all(scenarios: list[Scenario]) -> int:
    judged = 0
    for sc in scenarios:
        verdicts = judge(sc.hits, sc.evidence, sc.sender, sc.ip_labels)
        message_status(sc.hits, verdicts, sc.evidence)
        judged += len(verdicts)
    return judged


def throughput(scenarios: list[Scenario], seconds: float) -> tuple[float, float]:
    """Hits judged per second, and milliseconds per judge() call (one copy re-judged)."""
    judged, calls, start = 0, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        judged += judge_all(scenarios)
        calls += len(scenarios)
    return judged / elapsed, elapsed / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--misses", action="store_true", help="list every disagreement")
    args = parser.parse_args()

    scenarios = load_scenarios(args.folder)
    hits = sum(len(s.hits) for s in scenarios)
    print(f"{len(scenarios)} scenarios, {hits} labelled hits from {args.folder}\n")
    report = evaluate(scenarios)
    print(format_report(report))
    if args.misses:
        print("\n" + "\n".join(report.misses or ["no misses"]))
    rate, per_copy = throughput(scenarios, args.seconds)
    print(f"\nhits judged per second: {rate:,.0f} ({per_copy:.3f} ms to re-judge one copy)")


if __name__ == "__main__":
    main()
