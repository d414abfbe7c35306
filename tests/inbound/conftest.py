"""A real Dovecot for the IMAP poller tests: skipped without one locally, required in CI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dovecot import Dovecot, binary


def _dovecot_or_skip() -> None:
    if binary() is None:
        if os.environ.get("CI"):
            pytest.fail("Dovecot is required in CI (apt-get install dovecot-imapd)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")


@pytest.fixture(params=["idle", "no-idle"])
def dovecot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dovecot]:
    """A Dovecot IMAP server on 127.0.0.1, with and without the IDLE extension."""
    _dovecot_or_skip()
    with Dovecot(tmp_path / "dovecot", idle=request.param == "idle") as server:
        yield server
