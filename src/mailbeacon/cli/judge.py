"""``mailbeacon judge`` and ``mailbeacon explain``: verdicts on demand, and their history."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from mailbeacon.cli.common import existing_store, whole_number
from mailbeacon.cli.table import printable, render
from mailbeacon.clock import SystemClock, iso
from mailbeacon.config import Config
from mailbeacon.judging import JUDGE_EVERY, Judge, catch_up, rejudge_all
from mailbeacon.services import events


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "judge", parents=[parent], help="judge hits now (person or machine)",
        description="Judge every hit that arrived since the last pass (the server does this "
        "on its own every half second). --all judges everything again, e.g. after changing "
        "--own-networks or --ip-labels; verdicts that change keep their history.")
    p.add_argument("--all", action="store_true", help="re-judge every hit")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep judging as events arrive (for servers run with --judge false)")
    p.set_defaults(run=run_judge)
    e = sub.add_parser(
        "explain", parents=[parent], help="one hit, its verdict and the reasons",
        description="Show a hit as recorded and every verdict it has had, oldest first.")
    e.add_argument("event", type=whole_number, help="the event id (see `mailbeacon events`)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=run_explain)


def run_judge(args: argparse.Namespace, config: Config) -> int:
    store, judge, now = existing_store(config), Judge.from_config(config), SystemClock().now()
    if args.all:
        print(f"{rejudge_all(store, judge, now)} verdicts changed")
    elif args.follow:
        while True:
            catch_up(store, judge, SystemClock().now())
            time.sleep(JUDGE_EVERY)
    else:
        print(f"{catch_up(store, judge, now, settle=5.0)} new events read")
    return 0


def run_explain(args: argparse.Namespace, config: Config) -> int:
    found = events.explain(existing_store(config), args.event)
    hit, verdicts = found.hit, found.verdicts
    if args.json:
        print(json.dumps({"event": hit, "verdicts": verdicts}, indent=2))
        return 0
    print(printable(f"event {hit['id']}: {hit['kind']} at {iso(hit['at'])} {hit['method']} "
                    f"from {hit['ip'] or '?'}"))
    print(f"  user agent: {printable(hit['user_agent'] or '(none)')}\n")
    if not verdicts:
        print("not judged yet (run `mailbeacon judge`)")
        return 0
    print(render(["judged at", "verdict", "confidence", "current", "reasons"], [
        (iso(v["judged_at"]), v["verdict"], f"{v['confidence']:.2f}",
         "yes" if v["current"] else "", "; ".join(v["reasons"]))
        for v in verdicts]))
    return 0
