"""The inbound SMTP and LMTP receiver for the bounce domain (aiosmtpd).

It takes mail only for addresses it can use: VERP return paths whose token
verifies (``bounces+TOKEN@bounce-domain``) and the configured receipt
addresses; anything else is refused at RCPT with 550, so a mail server keeps
the bounce instead of us dropping it. Each message is committed to the store
before the 250 (a store that is down answers 451: the sender retries), then
goes through the same pipeline as IMAP and file imports.

Mail servers send reports with ``MAIL FROM:<>`` and may use BODY=8BITMIME and
SMTPUTF8; both are accepted. DSN is not advertised, so no DSN parameters come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbeacon.core.matching import verp_token
from mailbeacon.core.tokens import TokenKind, decode_verp
from mailbeacon.errors import TokenError
from mailbeacon.inbound.pipeline import Pipeline, header_message_id
from mailbeacon.store import inbound as db

log = logging.getLogger("mailbeacon.smtp.receiver")

# A report carries at most the original message; its parser reads 4 MiB of it.
DATA_SIZE_LIMIT = 32 * 1024 * 1024
HOSTNAME = "mailbeacon"


class InboundHandler:
    """aiosmtpd handler: RCPT filter, then keep and process at DATA."""

    def __init__(
        self, pipeline: Pipeline, receipt_addresses: Sequence[str], *, lmtp: bool = False
    ) -> None:
        self.pipeline = pipeline
        self.receipt_addresses = frozenset(a.lower() for a in receipt_addresses)
        self.lmtp = lmtp

    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused, as an SMTP reply; None when it is accepted."""
        if address.lower() in self.receipt_addresses:
            return None
        token = verp_token(address, self.pipeline.bounce_domain)
        if token is None:
            return f"550 5.1.1 <{_shown(address)}>: no such mailbox here"
        try:
            claims = decode_verp(token, self.pipeline.keyring)
        except TokenError:
            return f"550 5.1.1 <{_shown(address)}>: unknown or forged return path"
        if claims.kind is not TokenKind.BOUNCE:
            return f"550 5.1.1 <{_shown(address)}>: not a return path"
        return None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refused = self.refusal(address)
        if refused is not None:
            log.info("refused RCPT %s: %s", address, refused)
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        source = "lmtp" if self.lmtp else "smtp"
        try:
            inbound_id = await asyncio.to_thread(
                db.save,
                self.pipeline.store,
                raw,
                source=source,
                at=self.pipeline.clock.now(),
                envelope_from=envelope.mail_from or "",
                envelope_to=list(envelope.rcpt_tos),
                header_message_id=header_message_id(raw),
            )
        except Exception as exc:
            log.warning("cannot keep an inbound message: %s", exc)
            return self._answer(envelope, "451 4.3.0 cannot store the message now; try later")
        try:
            await asyncio.to_thread(self.pipeline.process, inbound_id)
        except Exception:  # kept already: it waits with status "received" for a rematch
            log.exception("inbound %s kept but not processed", inbound_id)
        return self._answer(envelope, f"250 2.0.0 kept as inbound {inbound_id}")

    def _answer(self, envelope: Envelope, reply: str) -> str:
        # LMTP answers DATA once per accepted recipient (RFC 2033 section 4.2).
        if self.lmtp and len(envelope.rcpt_tos) > 1:
            return "\r\n".join([reply] * len(envelope.rcpt_tos))
        return reply


async def start_server(handler: InboundHandler, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` in the running loop; SMTP or LMTP by the handler."""
    protocol = LMTP if handler.lmtp else SMTP
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return protocol(
            handler,
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=HOSTNAME,
            ident="mailbeacon inbound",
            loop=loop,
        )

    return await loop.create_server(factory, host=host, port=port)


def _shown(address: str) -> str:
    """An address as a reply may echo it: printable ASCII, the rest escaped."""
    return address.encode("ascii", "backslashreplace").decode("ascii")[:256]
