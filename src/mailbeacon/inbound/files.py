"""Messages from files: one .eml, a Maildir, or an mbox (``mailbeacon inbound import``)."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

from mailbeacon.errors import MailbeaconError


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


def is_mbox(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(5) == b"From "


def messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(a name for each message, its bytes) in the file, Maildir or mbox at ``path``."""
    if not path.exists():
        raise MailbeaconError(f"{path} does not exist")
    if is_maildir(path):
        box = mailbox.Maildir(str(path), create=False)
        for key in sorted(box.keys()):
            yield f"{path}/{key}", box.get_bytes(key)
        return
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            yield from messages(child)
        return
    try:
        if is_mbox(path):
            box_m = mailbox.mbox(str(path), create=False)
            for n, key in enumerate(box_m.keys(), 1):
                yield f"{path}#{n}", box_m.get_bytes(key)
            return
        yield str(path), path.read_bytes()
    except OSError as exc:
        raise MailbeaconError(f"cannot read {path}: {exc.strerror or exc}") from exc
