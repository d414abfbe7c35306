"""Messages instrumented per second: a 60 KB HTML newsletter with 40 links.

    .venv/bin/python bench/instrument_speed.py [--recipients N] [--seconds S]

Prints copies per second when one instrument() call serves a batch of recipients
(the send path; identified and anonymous tracking), and calls per second with a
single recipient (the parse is paid by every copy, the worst case).
"""

from __future__ import annotations

import argparse
import time
from email import message_from_bytes

from mailbeacon.clock import SystemClock
from mailbeacon.core.instrument import Options, Recipient, compose, instrument
from mailbeacon.core.tokens import Keyring, TrackLevel

HTML_BYTES = 60_000
LINKS = 40


def newsletter_html() -> str:
    """About 60 KB of table-heavy HTML with 40 distinct links, like a real newsletter."""
    blocks = []
    for n in range(LINKS):
        blocks.append(
            f'<tr><td style="padding:12px;font-family:Arial,sans-serif;font-size:15px">'
            f'<h2 style="margin:0 0 8px">Story {n}: something happened</h2>'
            f"<p>{'Lorem ipsum dolor sit amet, consectetur adipiscing elit. ' * 20}</p>"
            f'<a href="https://news.example.com/2026/01/story-{n}?utm_source=newsletter&amp;'
            f'utm_medium=email" style="color:#0066cc">Read more</a></td></tr>\n'
        )
    body = "".join(blocks)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>News</title></head>"
        f'<body style="margin:0"><table width="100%">\n{body}</table></body></html>\n'
    )
    padding = HTML_BYTES - len(page.encode())
    return page.replace("</table>", f"<!-- {'x' * max(padding - 9, 0)} --></table>")


def message() -> bytes:
    html = newsletter_html()
    return compose(
        sender="News <news@example.com>",
        to=["reader@example.org"],
        subject="January news",
        html=html,
        text=None,
        clock=SystemClock(),
        message_id_domain="example.com",
    )


def measure(
    source: bytes, recipients: list[Recipient], options: Options, keyring: Keyring, seconds: float
) -> tuple[float, float]:
    """Messages (copies) per wall-clock second and per CPU second, over about ``seconds``.

    CPU time is the steadier figure on a shared machine; wall time is what a sender sees.
    """
    clock = SystemClock()
    wall, cpu, done = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - wall < seconds:
        done += len(instrument(source, recipients, options, keyring, clock))
    return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    source = message()
    keyring = Keyring({1: b"k" * 32}, 1)
    identified = Options(campaign=42, public_url="https://t.example.com")
    anonymous = Options(campaign=42, public_url="https://t.example.com", level=TrackLevel.ANONYMOUS)
    batch = [Recipient(f"r{n}@example.org", 1_000_000 + n) for n in range(args.recipients)]
    [copy] = instrument(source, batch[:1], identified, keyring, SystemClock())
    assert len(copy.links) == LINKS, copy.links
    cte = message_from_bytes(source)["Content-Transfer-Encoding"]
    print(f"message: {len(source):,} bytes of text/html ({cte}), {LINKS} links")
    for label, options, recipients in (
        (f"identified, batch of {args.recipients}", identified, batch),
        (f"anonymous, batch of {args.recipients}", anonymous, batch),
        ("identified, one recipient per call", identified, batch[:1]),
    ):
        wall, cpu = measure(source, recipients, options, keyring, args.seconds)
        print(f"{label}: {wall:,.0f} messages/s ({cpu:,.0f} per CPU second)")


if __name__ == "__main__":
    main()
