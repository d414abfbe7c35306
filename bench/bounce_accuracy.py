"""Score the report parser against the labelled bounce corpus.

    .venv/bin/python bench/bounce_accuracy.py [--corpus tests/data/bounces] [--misses]

Per file: is a report recognised as one (and a non-report as not). Per
expected row (matched to a parsed recipient by address, else by order):
recipient, hard/soft, reason and status class. Files whose expected value is
null are not labelled and are left out of the scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mailbeacon.core.reports import RecipientReport, Report, parse

NON_REPORT_KINDS = {"none", "reply"}


@dataclass
class Score:
    files: int = 0
    unlabeled: int = 0
    reports_found: int = 0
    reports_total: int = 0
    false_reports: int = 0
    non_reports: int = 0
    rows: int = 0
    rcpt_rows: int = 0
    rcpt_ok: int = 0
    hard_ok: int = 0
    reason_ok: int = 0
    status_ok: int = 0
    per_reason: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    misses: list[str] = field(default_factory=list)


def status_class_agrees(expected: str, got: str) -> bool:
    if not expected:
        return True  # nothing to compare against
    parts = expected.split(".")
    if len(parts) == 3 and parts[1] == "0" and parts[2].startswith("9"):
        return got[:1] == expected[:1]  # x.0.9xx: Sisimai's placeholder, class only
    return got[:1] == expected[:1]


def match_rows(expected: list[dict], got: list[RecipientReport]) -> list[RecipientReport | None]:
    by_addr = {r.recipient.lower(): r for r in got}
    used: set[int] = set()
    out: list[RecipientReport | None] = []
    for i, row in enumerate(expected):
        want = (row.get("recipient") or "").lower()
        hit = by_addr.get(want) if want else None
        if hit is None and i < len(got) and id(got[i]) not in used:
            hit = got[i]
        if hit is not None:
            used.add(id(hit))
        out.append(hit)
    return out


def score_file(score: Score, name: str, expected: list[dict], report: Report) -> None:
    if not expected:
        score.non_reports += 1
        if report.kind not in NON_REPORT_KINDS:
            score.false_reports += 1
            score.misses.append(f"{name}: FALSE REPORT kind={report.kind}")
        return
    score.reports_total += 1
    if report.kind not in NON_REPORT_KINDS:
        score.reports_found += 1
    else:
        score.misses.append(f"{name}: not recognised (kind={report.kind})")
    for row, got in zip(expected, match_rows(expected, report.recipients), strict=True):
        score_row(score, name, row, got)


def score_row(score: Score, name: str, row: dict, got: RecipientReport | None) -> None:
    score.rows += 1
    reason = got.reason if got else "(missing)"
    want_rcpt = (row.get("recipient") or "").lower()
    if want_rcpt:
        score.rcpt_rows += 1
        if got and got.recipient.lower() == want_rcpt:
            score.rcpt_ok += 1
        else:
            score.misses.append(
                f"{name}: recipient {want_rcpt} != {got.recipient if got else None}"
            )
    score.hard_ok += bool(got) and got.hard == row["hard"]
    score.status_ok += bool(got) and status_class_agrees(row["status"], got.status if got else "")
    score.per_reason[row["reason"]][reason] += 1
    if reason == row["reason"]:
        score.reason_ok += 1
    else:
        diag = (got.diagnostic if got else "")[:150]
        score.misses.append(
            f"{name}: reason {row['reason']} != {reason} [{row['status']}/"
            f"{got.status if got else ''}] {diag}"
        )


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:6.2f}% ({n}/{d})" if d else "   n/a"


def run(corpus: Path) -> tuple[Score, float]:
    entries = json.loads((corpus / "expected.json").read_text())
    score = Score()
    parse(b"Subject: warm-up\r\n\r\n")  # compile the phrase tables outside the timing
    started = time.perf_counter()
    for entry in entries:
        score.files += 1
        report = parse((corpus / entry["file"]).read_bytes())
        if entry["expected"] is None:
            score.unlabeled += 1
            continue
        score_file(score, entry["file"], entry["expected"], report)
    return score, score.files / (time.perf_counter() - started)


def print_score(score: Score, rate: float) -> None:
    print(f"files: {score.files} (unlabeled, excluded: {score.unlabeled})")
    print(f"reports recognised:   {pct(score.reports_found, score.reports_total)}")
    print(f"false reports:        {score.false_reports} of {score.non_reports} non-reports")
    print(f"recipient exact:      {pct(score.rcpt_ok, score.rcpt_rows)}")
    print(f"hard/soft agreement:  {pct(score.hard_ok, score.rows)}")
    print(f"reason agreement:     {pct(score.reason_ok, score.rows)}")
    print(f"status class:         {pct(score.status_ok, score.rows)}")
    print(f"speed:                {rate:,.0f} messages/s")
    print("\nper reason (expected: rows, agreed, top confusions)")
    for reason, got in sorted(score.per_reason.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(got.values())
        wrong = ", ".join([f"{r} {n}" for r, n in got.most_common() if r != reason][:3])
        print(f"  {reason:16} {total:4} {got[reason]:4}  {wrong}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("tests/data/bounces"))
    parser.add_argument("--misses", action="store_true", help="list every disagreement")
    args = parser.parse_args(argv)
    score, rate = run(args.corpus)
    print_score(score, rate)
    if args.misses:
        print("\nmisses:")
        print("\n".join(score.misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
