"""The fault suite: each fault of issue 7 against a real ``mailbeacon serve``.

Every figure must hold: no acknowledged hit missing, no hit counted twice after
any replay, and the server recovered without a restart once the fault ended.
bench/faults.py prints the same figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import faultlab
import pytest
from faultlab import Figures

pytestmark = pytest.mark.slow


def _held(fig: Figures) -> None:
    assert fig.missing == 0, f"{fig.missing} acknowledged hits missing: {fig.line()}"
    assert fig.doubled == 0, f"{fig.doubled} hits counted twice: {fig.line()}"
    assert fig.recovered, f"no recovery without a restart: {fig.line()}"


def test_disk_full_never_acknowledges_a_hit_it_loses(tmp_path: Path) -> None:
    try:
        fig = faultlab.disk_full(tmp_path)
    except faultlab.Unavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    _held(fig)
    assert fig.refused > 0, f"the disk never filled: {fig.line()}"  # the fault happened
    assert fig.notes["others"] == 0, fig.line()  # every hit got 200 or 503


def test_a_torn_line_in_the_main_and_a_worker_spool(tmp_path: Path, store_url: str) -> None:
    fig = faultlab.torn_spool(tmp_path, store_url)
    _held(fig)
    assert fig.notes["torn_set_aside"] == 2, fig.line()


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # a network fault
def test_a_blackholed_postgres_fails_over_and_recovers(tmp_path: Path, store_url: str) -> None:
    fig = faultlab.blackholed_postgres(tmp_path, store_url, silent=7.0)
    _held(fig)
    assert fig.notes["spooled"] == "yes", fig.line()
    slowest = float(str(fig.notes["slowest_hit_s"]))
    assert slowest < 12, f"hits hung on the silent database: {fig.line()}"


def test_sigkill_under_load_with_two_workers(tmp_path: Path, store_url: str) -> None:
    fig = faultlab.sigkill_under_load(tmp_path, store_url, before_kill=500)
    _held(fig)


def test_keys_rotated_under_a_running_server(tmp_path: Path) -> None:
    fig = faultlab.key_rotation(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    _held(fig)
    assert fig.notes["click"] == "302 https://example.com/x" and fig.notes["verp_rcpt"] == 250
