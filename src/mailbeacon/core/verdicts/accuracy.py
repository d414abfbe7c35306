"""Labelled scenarios, and how well the engine agrees with them.

A scenario is one recipient copy written down from documented behaviour: the
evidence, the hits, the verdict each hit should get and the status the copy
should get. Times are seconds after sending, so a file reads like a timeline::

    {"description": "...", "source": "...",
     "evidence": {"sent_at": 1767225600, "delivered": 4, "link_count": 3,
                  "replied": null, "read_receipt": null},
     "sender": {"networks": ["10.1.0.0/16"], "user_agents": []},
     "ip_labels": "203.0.113.0/26 scanner",
     "hits": [{"id": 1, "kind": "open", "t": 40, "method": "GET", "ip": "192.0.2.10",
               "user_agent": "Mozilla/5.0", "link": 0, "expected": "prefetch"}],
     "expected_status": "only by machines", "expected_elsewhere": []}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbeacon.core.verdicts.engine import elsewhere, judge, message_status
from mailbeacon.core.verdicts.iplabels import IpLabels, parse_ip_labels
from mailbeacon.core.verdicts.model import VERDICTS, Evidence, Hit, SenderProfile, Verdict

Judge = Callable[[Sequence[Hit], Evidence, SenderProfile, IpLabels], dict[int, Verdict]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    evidence: Evidence
    sender: SenderProfile
    ip_labels: IpLabels
    hits: tuple[Hit, ...]
    expected: Mapping[int, str]  # hit id -> verdict
    expected_status: str
    expected_elsewhere: frozenset[int] = frozenset()


def _after(sent_at: float, offset: float | None) -> float | None:
    return None if offset is None else sent_at + offset


def scenario_from_dict(name: str, data: Mapping[str, Any]) -> Scenario:
    ev = data["evidence"]
    sent_at = float(ev["sent_at"])
    evidence = Evidence(
        sent_at=sent_at,
        delivered_at=_after(sent_at, ev.get("delivered")),
        link_count=int(ev.get("link_count", 0)),
        replied_at=_after(sent_at, ev.get("replied")),
        read_receipt_at=_after(sent_at, ev.get("read_receipt")),
    )
    sender = data.get("sender", {})
    hits = tuple(
        Hit(
            id=int(h["id"]),
            kind=h["kind"],
            at=sent_at + float(h["t"]),
            method=h.get("method", "GET"),
            ip=h.get("ip"),
            user_agent=h.get("user_agent", ""),
            link=int(h.get("link", 0)),
        )
        for h in data["hits"]
    )
    return Scenario(
        name=name,
        description=data.get("description", ""),
        evidence=evidence,
        sender=SenderProfile.of(
            tuple(sender.get("networks", ())), tuple(sender.get("user_agents", ()))
        ),
        ip_labels=parse_ip_labels(data.get("ip_labels", ""), origin=name),
        hits=hits,
        expected={int(h["id"]): h["expected"] for h in data["hits"]},
        expected_status=data["expected_status"],
        expected_elsewhere=frozenset(data.get("expected_elsewhere", ())),
    )


def load_scenarios(folder: str | Path) -> list[Scenario]:
    """Every ``*.json`` scenario in a folder, in name order."""
    paths = sorted(Path(folder).glob("*.json"))
    return [scenario_from_dict(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in paths]


@dataclass
class Report:
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, got)
    status_right: int = 0
    status_total: int = 0
    elsewhere_right: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return sum(self.confusion.values())

    def precision(self, verdict: str) -> float | None:
        said = sum(n for (_, got), n in self.confusion.items() if got == verdict)
        return self.confusion[(verdict, verdict)] / said if said else None

    def recall(self, verdict: str) -> float | None:
        truly = sum(n for (exp, _), n in self.confusion.items() if exp == verdict)
        return self.confusion[(verdict, verdict)] / truly if truly else None


def evaluate(scenarios: Iterable[Scenario], run: Judge = judge) -> Report:
    """Judge every scenario and count where the engine and the labels agree."""
    report = Report()
    for sc in scenarios:
        verdicts = run(sc.hits, sc.evidence, sc.sender, sc.ip_labels)
        for hit in sc.hits:
            got, want = verdicts[hit.id].verdict, sc.expected[hit.id]
            report.confusion[(want, got)] += 1
            if got != want:
                report.misses.append(f"{sc.name} hit {hit.id}: expected {want}, got {got}")
        status = message_status(sc.hits, verdicts, sc.evidence)
        report.status_total += 1
        report.status_right += status == sc.expected_status
        if status != sc.expected_status:
            report.misses.append(f"{sc.name}: status {sc.expected_status!r}, got {status!r}")
        report.elsewhere_right += elsewhere(sc.hits, verdicts) == sc.expected_elsewhere
    return report


def format_report(report: Report) -> str:
    """Precision and recall per verdict, then the confusion table (rows: labelled)."""

    def pct(x: float | None) -> str:
        return "   -" if x is None else f"{x:4.0%}"

    lines = [f"{'verdict':9} {'precision':>9} {'recall':>7} {'labelled':>9}"]
    for v in VERDICTS:
        labelled = sum(n for (exp, _), n in report.confusion.items() if exp == v)
        lines.append(
            f"{v:9} {pct(report.precision(v)):>9} {pct(report.recall(v)):>7} {labelled:>9}"
        )
    lines += ["", "confusion (rows: labelled, columns: judged)"]
    lines.append(" " * 10 + "".join(f"{v[:8]:>9}" for v in VERDICTS))
    for exp in VERDICTS:
        row = "".join(f"{report.confusion[(exp, got)]:>9}" for got in VERDICTS)
        lines.append(f"{exp:10}{row}")
    lines += [
        "",
        f"message status right: {report.status_right}/{report.status_total}",
        f"elsewhere sets right: {report.elsewhere_right}/{report.status_total}",
    ]
    return "\n".join(lines)
