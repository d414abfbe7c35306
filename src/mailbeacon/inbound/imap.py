"""The IMAP poller: reads a mailbox where bounces and receipts arrive (imapclient).

For a personal mailbox, when a bounce domain of one's own (VERP) is not
possible. Each message is handed to the pipeline (which keeps it before it
does anything else) and only then moved to the done folder, or deleted when
configured; a message the store could not take stays where it was and is
tried again. Waits with IDLE when the server offers it and polls otherwise;
a dropped connection is opened again with a growing pause.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from imapclient import IMAPClient

from mailbeacon.config import Config
from mailbeacon.errors import ConfigError

log = logging.getLogger("mailbeacon.imap")
BATCH = 50  # messages fetched per round trip
IDLE_SLICE = 1.0  # seconds: how quickly a stop request is noticed while idling
MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    implicit_tls: bool = False
    starttls: bool = True  # when the server offers it
    verify: bool = True
    folder: str = "INBOX"
    done_folder: str = "mailbeacon-processed"
    delete: bool = False
    poll: float = 60.0

    @classmethod
    def from_config(cls, config: Config) -> ImapSettings:
        base = parse_imap_url(config.imap)
        return cls(
            base.host,
            base.port,
            base.user,
            base.password,
            base.implicit_tls,
            base.starttls,
            base.verify,
            config.imap_folder,
            config.imap_done_folder,
            config.imap_delete,
            float(config.imap_poll),
        )


def parse_imap_url(url: str) -> ImapSettings:
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ConfigError(f"IMAP URL {url!r}: expected imap://user:pass@host:143 or imaps://...")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    implicit = parts.scheme == "imaps"
    return ImapSettings(
        host=parts.hostname, port=parts.port or (993 if implicit else 143),
        user=unquote(parts.username or ""), password=unquote(parts.password or ""),
        implicit_tls=implicit, starttls=query.get("starttls", "true") != "false",
        verify=query.get("verify", "true") != "false",
    )  # fmt: skip


class ImapPoller:
    """Drain the folder, wait (IDLE or a pause), repeat, until ``stop`` is set."""

    def __init__(
        self,
        settings: ImapSettings,
        handle: Callable[[bytes], object],
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.stop = stop or threading.Event()
        self.processed = 0

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> IMAPClient:
        s = self.settings
        client = IMAPClient(
            s.host,
            port=s.port,
            ssl=s.implicit_tls,
            ssl_context=self._tls() if s.implicit_tls else None,
            timeout=30,
        )
        try:
            if not s.implicit_tls and s.starttls and client.has_capability("STARTTLS"):
                client.starttls(self._tls())
            client.login(s.user, s.password)
        except Exception:
            _close(client)
            raise
        return client

    def drain(self, client: IMAPClient) -> int:
        """Hand every message in the folder to the pipeline; returns how many."""
        client.select_folder(self.settings.folder)
        uids = sorted(client.search(["NOT", "DELETED"]))
        done = 0
        for start in range(0, len(uids), BATCH):
            chunk = uids[start : start + BATCH]
            fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            handled = []
            try:
                for uid in chunk:
                    raw = fetched.get(uid, {}).get(b"BODY[]")
                    if raw is not None:
                        self.handle(bytes(raw))
                        handled.append(uid)
            finally:
                if handled:
                    self._put_away(client, handled)
                    done += len(handled)
                    self.processed += len(handled)
        return done

    def _put_away(self, client: IMAPClient, uids: list[int]) -> None:
        if not self.settings.delete:
            target = self.settings.done_folder
            if not client.folder_exists(target):
                client.create_folder(target)
            if client.has_capability("MOVE"):
                client.move(uids, target)
                return
            client.copy(uids, target)
        client.delete_messages(uids)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()

    def run_once(self) -> int:
        client = self.connect()
        try:
            return self.drain(client)
        finally:
            _close(client)

    def run(self) -> None:
        """Until ``stop``: drain, then wait for news; reconnect after any failure."""
        backoff = 1.0
        while not self.stop.is_set():
            client = None
            try:
                client = self.connect()
                backoff = 1.0
                while not self.stop.is_set():
                    self.drain(client)
                    self._wait(client)
            except Exception as exc:
                log.warning("IMAP %s: %s; trying again in %.0f s", self.settings.host, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                if client is not None:
                    _close(client)

    def _wait(self, client: IMAPClient) -> None:
        if not client.has_capability("IDLE"):
            self.stop.wait(self.settings.poll)
            client.noop()
            return
        client.idle()
        try:
            waited = 0.0
            while waited < self.settings.poll and not self.stop.is_set():
                if _news(client.idle_check(timeout=IDLE_SLICE)):
                    break
                waited += IDLE_SLICE
        finally:
            client.idle_done()


def _news(responses: list[Any]) -> bool:
    return any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            log.debug("IMAP connection already gone")
