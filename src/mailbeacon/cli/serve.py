"""``mailbeacon serve``: the tracking server (pixels, clicks, downloads, API)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvloop

from mailbeacon.clock import SystemClock
from mailbeacon.config import Config
from mailbeacon.web.server import serve


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[parent], help="run the tracking server",
                       description="Serve the tracking pixel, click redirects, tracked "
                       "downloads and the JSON API on --http; records every hit in the store.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, SystemClock()))
    return 0
