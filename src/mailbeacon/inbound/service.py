"""What ``mailbeacon serve`` runs for inbound mail: the SMTP/LMTP receivers and the IMAP poller.

``start_inbound`` starts whichever are configured in the running event loop
(the poller, which blocks, in a thread) and returns an awaitable stopper.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable

from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.core.tokens import Keyring
from mailbeacon.inbound.imap import ImapPoller, ImapSettings
from mailbeacon.inbound.pipeline import Pipeline
from mailbeacon.listening import bound
from mailbeacon.smtp.receiver import InboundHandler, start_server
from mailbeacon.store.sql import SqlStore

log = logging.getLogger("mailbeacon.inbound")


async def start_inbound(
    config: Config, store: SqlStore, keyring: Keyring, clock: Clock
) -> Callable[[], Awaitable[None]]:
    """Start the configured receivers and poller; the result stops them all."""
    pipeline = Pipeline.from_config(config, store, keyring, clock)
    servers: list[asyncio.Server] = []
    for setting, lmtp in (("inbound-smtp", False), ("inbound-lmtp", True)):
        where = config.values[setting]
        if where is None:
            continue
        handler = InboundHandler(pipeline, config.receipt_addresses, lmtp=lmtp)
        servers.append(await bound(start_server(handler, *where), *where))  # or ConfigError
        print(
            f"mailbeacon: inbound {'LMTP' if lmtp else 'SMTP'} on {where[0]}:{where[1]}",
            file=sys.stderr,
            flush=True,
        )
    stop = threading.Event()
    poller_task = None
    if config.imap:
        poller = ImapPoller(
            ImapSettings.from_config(config), lambda raw: pipeline.receive(raw, source="imap"), stop
        )
        poller_task = asyncio.create_task(asyncio.to_thread(poller.run))
        print(
            f"mailbeacon: polling IMAP {poller.settings.host}:{poller.settings.port} "
            f"folder {poller.settings.folder}",
            file=sys.stderr,
            flush=True,
        )

    async def stopper() -> None:
        stop.set()
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()
        if poller_task is not None:
            await poller_task

    return stopper
