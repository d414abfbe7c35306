"""Read receipts we answer (RFC 8098 MDN): build the one a message asks for, and send it.

Sending one is the recipient's choice (RFC 8098 section 2.1), so building and
sending are two steps.
"""

from __future__ import annotations

from email.utils import parseaddr

from mailbeacon import __version__
from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.core.reports import build_mdn
from mailbeacon.core.reports.mdn import requested_by
from mailbeacon.core.reports.mime import load
from mailbeacon.smtp.dsn import DsnRequest
from mailbeacon.smtp.relay import Relay, SendResult, parse_relay_url


def build(original: bytes, disposition: str, *, sender: str, manual: bool,
          clock: Clock) -> bytes:
    """The MDN answering ``original``, from ``sender`` (the recipient who read it)."""
    return build_mdn(original, disposition, reporting_ua=f"mailbeacon {__version__}",
                     sender_address=parseaddr(sender)[1], manual=manual, clock=clock)


def send(original: bytes, receipt: bytes, config: Config) -> tuple[str, SendResult]:
    """Send ``receipt`` to whom ``original`` asked; the address and the relay's answer."""
    to = requested_by(load(original))
    with Relay(parse_relay_url(config.smtp), attempts=config.send_attempts,
               backoff=config.send_backoff) as relay:
        # An MDN goes with a null return path (RFC 8098 section 2.1) and asks for no DSN.
        answer = relay.send("", to, receipt, envid=None, dsn=DsnRequest(notify=("NEVER",)))
    return to, answer
