"""``mailbeacon report --json`` and ``/api/report`` are one report: the same figures for
the same data, read over real HTTP from a running server with an API key."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apikeys import api_headers
from mailbeacon.store.schema import messages
from mailbeacon.store.sql import NewMessage, open_store
from serverproc import ServerProcess

T0 = 1_767_225_600.0
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def server(tmp_path: Path, store_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data", store_url) as s:
        yield s


def _campaign(db_url: str) -> None:
    """Three copies: a person opens and clicks one, Apple MPP fetches another, a bounce
    comes back for the third; and an anonymous open."""
    store = open_store(db_url)
    try:
        c = store.campaign("spring", T0)
        ids = store.add_messages([NewMessage(c, "me@example.com", f"r{i}@example.net", "s",
                                             "identified") for i in range(3)], T0)
        for m in ids:
            store.set_prepared(m, f"<{m}@example.com>", ["https://e.example/offer"])
        with store.engine.begin() as conn:
            conn.execute(messages.update().values(status="sent", sent_at=T0))
        append = store.appender()
        append([("open", T0 + 3600, c, ids[0], 0, "", "GET", "8.8.8.8", FIREFOX, ""),
                ("click", T0 + 3700, c, ids[0], 1, "https://e.example/offer", "GET",
                 "8.8.8.8", FIREFOX, ""),
                ("open", T0 + 60, c, ids[1], 0, "", "GET", "17.58.0.1", "Mozilla/5.0", ""),
                ("bounced", T0 + 900, c, ids[2], 0, "", "", "", "", ""),
                ("open", T0 + 7200, c, 0, 0, "", "GET", "1.1.1.1", FIREFOX, "")])
        append.close()
    finally:
        store.close()


def _cli_report(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbeacon", "report", "--json", *args,
                           "--data-dir", str(server.data_dir), "--db", server.db_url],
                          capture_output=True, text=True, timeout=120)


def test_the_cli_and_the_api_give_the_same_report(server: ServerProcess) -> None:
    """``report`` judges first; ``/api/report`` reads the rollups the judge keeps, so once
    judged (here by the CLI) both give the same figures."""
    _campaign(server.db_url)
    headers = api_headers(server.db_url)
    for params, args in (({"campaign": "spring"}, ("--campaign", "spring")), ({}, ())):
        cli = _cli_report(server, *args)
        assert cli.returncode == 0, cli.stderr
        api = httpx.get(f"{server.url}/api/report", params=params, headers=headers,
                        timeout=60)
        assert api.status_code == 200, api.text
        assert json.loads(cli.stdout) == api.json()
    body = api.json()
    assert (body["opens"], body["anonymous_opens"], body["unique_opens"]) == (3, 1, 2)
    human = body["human"]
    assert (human["opened_by_person"], human["only_machines"], human["bounced_later"]) == (
        1, 1, 1)
    assert human["human_links"] == [{"url": "https://e.example/offer", "clicks": 1,
                                     "human_clicks": 1, "unique_human_clicks": 1}]


def test_the_api_reads_what_the_judge_kept_and_never_judges(tmp_path: Path,
                                                          store_url: str) -> None:
    """With ``serve --judge false`` nothing judges inside ``serve``: ``/api/report`` shows
    no hit until ``mailbeacon judge`` has run, then the same figures as ``report``."""
    with ServerProcess(tmp_path / "data", store_url, "--judge", "false") as server:
        _campaign(server.db_url)
        headers = api_headers(server.db_url)

        def api() -> dict[str, object]:
            answer = httpx.get(f"{server.url}/api/report", headers=headers, timeout=60)
            assert answer.status_code == 200, answer.text
            body: dict[str, object] = answer.json()
            return body

        assert (api()["opens"], api()["recipients"]) == (0, 3)  # not judged: not counted
        judged = subprocess.run([sys.executable, "-m", "mailbeacon", "judge", "--data-dir",
                                 str(server.data_dir), "--db", server.db_url],
                                capture_output=True, text=True, timeout=120)
        assert judged.returncode == 0, judged.stderr
        assert api()["opens"] == 3
        assert json.loads(_cli_report(server).stdout) == api()


def test_an_unknown_campaign_is_a_404_and_a_one_line_error(server: ServerProcess) -> None:
    headers = api_headers(server.db_url)
    api = httpx.get(f"{server.url}/api/report", params={"campaign": "nope"}, headers=headers)
    assert api.status_code == 404 and api.json() == {"error": "no campaign named 'nope'"}
    cli = _cli_report(server, "--campaign", "nope")
    assert cli.returncode == 1 and "no campaign named 'nope'" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_recipients_json_streams_every_line(server: ServerProcess) -> None:
    _campaign(server.db_url)
    cli = _cli_report(server, "--campaign", "spring", "--recipients")
    assert cli.returncode == 0, cli.stderr
    lines = json.loads(cli.stdout)["recipients"]
    assert [(r["recipient"], r["opens"], r["clicks"]) for r in lines] == [
        ("r0@example.net", 1, 1), ("r1@example.net", 1, 0), ("r2@example.net", 0, 0)]


def test_rebuild_gives_back_the_same_report(server: ServerProcess) -> None:
    _campaign(server.db_url)
    before = _cli_report(server, "--campaign", "spring")
    rebuilt = subprocess.run([sys.executable, "-m", "mailbeacon", "rebuild", "--data-dir",
                              str(server.data_dir), "--db", server.db_url],
                             capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith("4 judged hits counted")  # the bounce is no hit
    after = _cli_report(server, "--campaign", "spring")
    assert json.loads(after.stdout) == json.loads(before.stdout)
