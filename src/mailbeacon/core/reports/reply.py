"""A person's reply: threaded to one of our messages, not automatic, not a report."""

from __future__ import annotations

import re
from email.message import Message

from mailbeacon.core.reports import mime

_MSGID = re.compile(r"<[^<>\s]+>")


def message_ids(value: str) -> list[str]:
    return _MSGID.findall(value)


def is_reply(msg: Message) -> bool:
    return bool(
        message_ids(mime.header(msg, "In-Reply-To")) or message_ids(mime.header(msg, "References"))
    )
