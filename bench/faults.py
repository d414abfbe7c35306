"""Print the fault suite's figures: acknowledged vs stored hits under each fault.

    .venv/bin/python bench/faults.py [--pg postgresql://postgres@127.0.0.1/mailbeacon_test]
                                     [--only disk,torn,blackhole,sigkill,rotation]

Each line: hits sent, answered 200 (acked) and 503, distinct hits stored, acked
hits missing, hits counted twice, and whether the server recovered without a
restart. The promise holds when missing=0, doubled=0 and recovered=yes on
every line. Runs real ``mailbeacon serve`` processes (tests/faults/faultlab.py);
the disk-full case mounts a 5 MB tmpfs and needs root.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "faults")]

import faultlab  # noqa: E402
from faultlab import Figures  # noqa: E402

PG_DEFAULT = "postgresql://postgres@127.0.0.1/mailbeacon_test"


def scenarios(base: Path, pg: str | None) -> dict[str, Callable[[], Figures]]:
    sqlite = f"sqlite:///{base / 'store' / 'mailbeacon.db'}"
    store = pg or sqlite
    return {
        "disk": lambda: faultlab.disk_full(faultlab.fresh(base, "disk")),
        "torn": lambda: faultlab.torn_spool(faultlab.fresh(base, "torn"), _fresh_db(base, store)),
        "blackhole": lambda: _needs_pg(pg, lambda url: faultlab.blackholed_postgres(
            faultlab.fresh(base, "blackhole"), url)),
        "sigkill": lambda: faultlab.sigkill_under_load(faultlab.fresh(base, "sigkill"),
                                                       _fresh_db(base, store)),
        "rotation": lambda: faultlab.key_rotation(faultlab.fresh(base, "rotation"),
                                                  _fresh_db(base, sqlite)),
    }


def _fresh_db(base: Path, url: str) -> str:
    """An empty store: a new SQLite file, or a new PostgreSQL schema."""
    if url.startswith("sqlite"):
        path = faultlab.fresh(base, "store-" + str(len(list(base.glob("store-*"))))) / "m.db"
        return f"sqlite:///{path}"
    import uuid

    import psycopg

    schema = f"faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def _needs_pg(pg: str | None, run: Callable[[str], Figures]) -> Figures:
    if pg is None:
        raise faultlab.Unavailable("needs PostgreSQL (--pg URL)")
    return run(_fresh_db(Path(), pg))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL URL ('' for SQLite only)")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(
        scenarios(Path(), None)))
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="mailbeacon-faults-") as tmp:
        runs = scenarios(Path(tmp), args.pg or None)
        for name in [n for n in args.only.split(",") if n] or list(runs):
            try:
                fig = runs[name]()
            except faultlab.Unavailable as exc:
                print(f"{name:<22} skipped: {exc}", flush=True)
                continue
            print(fig.line(), flush=True)
            failed |= not fig.held
    print("every figure held" if not failed else "A FIGURE DID NOT HOLD")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
