"""A demo campaign end to end, for trying mailbeacon out and for the README screenshot.

    .venv/bin/python scripts/demo.py [DATA_DIR]

Starts a throw-away SMTP sink and `mailbeacon serve` on localhost, sends a
campaign to eight made-up recipients, replays a realistic mix of people and
machines against the tracking links, and prints `mailbeacon report`.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

MPP = "Mozilla/5.0"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Mobile/15E148")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
OUTLOOK = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0")
SCANNER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
HTML = """<html><body><h1>Spring is here</h1>
<p>See <a href="https://shop.example.com/spring">the collection</a>,
read <a href="https://blog.example.com/garden">the garden story</a> or
<a href="https://shop.example.com/stores">find a store</a>.</p></body></html>"""


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt, envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mb(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "mailbeacon", *args], check=True,
                          capture_output=True, text=True).stdout


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "data"
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    common = ["--data-dir", str(data), "--public-url", url, "--smtp",
              f"smtp://127.0.0.1:{smtp.port}", "--own-user-agents", "Edg/124"]
    server = subprocess.Popen([sys.executable, "-m", "mailbeacon", "serve", *common,
                               "--http", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = data.parent / "spring.html"
        body.write_text(HTML)
        people = ["ana", "ben", "chloe", "dev", "emma", "farid", "gus", "hana"]
        mb("send", *common, "--from", "Garden Shop <news@shop.example.com>", "--subject",
           "Spring is here", "--html", str(body), "--campaign", "spring",
           *[a for p in people for a in ("--to", f"{p}@example.net")])
        links: dict[str, tuple[str, list[str]]] = {}
        for rcpt, raw in sink.received:
            msg = message_from_bytes(raw, policy=policy.default)
            html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
            links[rcpt.split("@")[0]] = (re.findall(r'<img src="([^"]+)"', html)[0],
                                         re.findall(r'href="(http[^"]+/c/[^"]+)"', html))
        time.sleep(2.5)  # nobody reads mail the instant it is sent

        def hit(u: str, ua: str) -> None:
            httpx.get(u, headers={"User-Agent": ua})

        hit(links["ana"][0], MPP)  # Apple MPP prefetch ...
        hit(links["ana"][0], IPHONE)  # ... then Ana reads it
        hit(links["ana"][1][0], IPHONE)
        hit(links["ben"][0], GMAIL)  # Gmail's image proxy
        for u in links["chloe"][1]:  # a corporate link scanner
            hit(u, SCANNER)
        hit(links["chloe"][0], SCANNER)
        hit(links["dev"][0], FIREFOX)
        hit(links["dev"][1][1], FIREFOX)
        hit(links["emma"][0], MPP)  # MPP only: not a person
        hit(links["farid"][1][2], FIREFOX)  # images off, but clicked
        hit(links["gus"][0], OUTLOOK)  # the sender looking at the sent copy
        time.sleep(1.5)
        print(mb("report", *common, "--campaign", "spring", "--recipients"))
    finally:
        server.terminate()
        server.wait(10)
        smtp.stop()


if __name__ == "__main__":
    main()
