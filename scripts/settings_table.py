"""Rewrite the settings table in docs/configuration.md from config.SETTINGS.

    .venv/bin/python scripts/settings_table.py
"""

from __future__ import annotations

import re
from pathlib import Path

from mailbeacon import config

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def table() -> str:
    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for s in config.SETTINGS:
        default = f"`{s.default}`" if s.default else "(empty)"
        rows.append(f"| `--{s.name}` | `{s.env}` | {default} | {s.help} |")
    return "\n".join(rows)


def main() -> None:
    text = DOC.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    DOC.write_text(pattern.sub(f"{START}\n{table()}\n{END}", text))


if __name__ == "__main__":
    main()
