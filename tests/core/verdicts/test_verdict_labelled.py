"""The engine against the labelled scenarios in tests/data/verdicts.

The labels say what each hit *is* by documented behaviour (an MPP prefetch, a
gateway sweeping every link, a person clicking a day later). Why these floors:

- proxy, prefetch and self rest on exact user agents and the user's own
  networks: any miss there is a bug, so the floor is 100%.
- scanner and human rest on patterns. The ``hard-*`` scenarios are behaviours
  the documented signals cannot see (a person opening 4 tabs in 4 s; a
  sandbox following 2 links half an hour late); they are the only misses
  allowed, and the floors leave room for them and little else.
- unknown has two hits: no floor, but both must be right (no "hard-" label).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon.core.verdicts.accuracy import Report, evaluate, load_scenarios
from mailbeacon.core.verdicts.model import STATUSES, VERDICTS

DATA = Path(__file__).parents[2] / "data" / "verdicts"
FLOORS = {  # verdict: (precision, recall)
    "proxy": (1.0, 1.0),
    "prefetch": (1.0, 1.0),
    "self": (1.0, 1.0),
    "scanner": (0.95, 0.95),
    "human": (0.93, 0.93),
}


@pytest.fixture(scope="module")
def report() -> Report:
    return evaluate(load_scenarios(DATA))


def test_the_labelled_set_is_big_and_varied():
    scenarios = load_scenarios(DATA)
    assert len(scenarios) >= 40
    assert sum(len(s.hits) for s in scenarios) >= 200
    labelled = {v for s in scenarios for v in s.expected.values()}
    assert labelled == set(VERDICTS)
    assert {s.expected_status for s in scenarios} == set(STATUSES)
    assert all(s.description for s in scenarios)


@pytest.mark.parametrize("verdict", sorted(FLOORS))
def test_precision_and_recall_floors(report: Report, verdict: str):
    precision_floor, recall_floor = FLOORS[verdict]
    assert (report.precision(verdict) or 0) >= precision_floor, report.misses
    assert (report.recall(verdict) or 0) >= recall_floor, report.misses


def test_only_the_hard_cases_are_missed(report: Report):
    assert [m for m in report.misses if not m.startswith("hard-")] == []


def test_statuses_and_elsewhere(report: Report):
    assert report.status_right >= report.status_total - 1  # hard-slow-sandbox
    assert report.elsewhere_right == report.status_total
