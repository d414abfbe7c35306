"""Plain-text output for people (``--json`` is the stable machine form).

Everything human-readable goes through :func:`printable` (``render`` does it for
every cell): recipients, user agents, URLs and bounce diagnostics come from
strangers, and a terminal obeys escape sequences. A Diagnostic-Code of
``\\x1b]0;PWNED\\x07\\x1b[2J`` would retitle the window and clear the screen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# ESC sequences whole, so that their parameters do not print as litter: CSI
# (ESC [ ... final), OSC/DCS/SOS/PM/APC strings up to BEL or ST, and two-byte
# escapes (ESC and one or more intermediates, then a final byte).
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~]?)"
)
# What is left: C0 controls, DEL, C1 controls (0x9b alone is a CSI on some terminals),
# and the bidirectional overrides that make text display in another order than it reads.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with escape sequences removed and every control character gone.

    Line breaks and tabs become spaces, unless ``keep_lines`` (for a whole message
    shown as it is): then ``\\n`` and ``\\t`` stay, and ``\\r`` goes.
    """
    text = _ESCAPE_SEQUENCE.sub("", text)
    if keep_lines:
        return _LINE_CONTROL.sub("", text.replace("\r\n", "\n"))
    return _CONTROL.sub("", re.sub(r"[\r\n\t]+", " ", text))


def render(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = printable(str(value))
    return text if len(text) <= 80 else text[:77] + "..."


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
