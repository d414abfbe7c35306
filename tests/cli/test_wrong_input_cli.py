"""What a user sees when the input is wrong (fixes-cli.md): one clear line and a non-zero
exit, never a traceback, and no store created by a command that records nothing. The
crashes are run as real ``python -m mailbeacon`` processes, since a traceback is what
escapes ``main``; the rest go through ``main`` as the other CLI tests do."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailbeacon.cli.main import main
from mailbeacon.cli.report import BREAKDOWN_HEADING
from mailbeacon.store.sql import SqlStore
from smtpserver import SmtpSink

HUGE = "99999999999999999999999"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
HTML = b"<html><body><a href='https://example.com/x'>x</a></body></html>\r\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbeacon", *args], capture_output=True,
                          text=True, timeout=120)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def nested_rfc822(depth: int) -> bytes:
    msg = b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n" + HTML
    for _ in range(depth):
        msg = b"From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\n" + msg
    return msg


@pytest.mark.parametrize("depth", [300, 5000])
def test_send_eml_nested_too_deep_is_one_line(depth: int, tmp_path: Path,
                                              smtp_sink: SmtpSink) -> None:
    eml = tmp_path / "deep.eml"
    eml.write_bytes(nested_rfc822(depth))
    done = cli("send", "--data-dir", str(tmp_path), "--smtp", smtp_sink.url,
               "--from", "me@example.com", "--to", "you@example.org", "--eml", str(eml))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("mailbeacon: error: malformed MIME: parts and attached messages "
                           "nested deeper than 50 levels (the nesting limit)\n")
    assert smtp_sink.messages == []


# Every command that takes an id or a count.
HUGE_ARGS = [["explain", HUGE], ["explain", "0"], ["apikey", "revoke", HUGE], ["inbound", "quarantine", "rematch", HUGE],
             ["inbound", "quarantine", "show", HUGE], ["events", "--limit", HUGE],
             ["events", "--limit", "0"], ["apikey", "revoke", "-1"],
             ["inbound", "quarantine", "show", "x"]]


@pytest.mark.parametrize("command", HUGE_ARGS, ids=" ".join)
def test_an_id_or_count_out_of_range_is_a_usage_error(command: list[str],
                                                      tmp_path: Path) -> None:
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    done = cli(*command, "--data-dir", str(tmp_path))
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("mailbeacon ") and ": error: argument " in last
    assert last.endswith(f"{command[-1]!r} is not a whole number from 1 to "
                         "9223372036854775807")


NOT_RECORDING = [["apikey", "create", "crm"], ["apikey", "list"], ["apikey", "revoke", "1"],
                 ["suppress", "add", "a@example.org"], ["suppress", "remove", "a@example.org"],
                 ["inbound", "quarantine", "rematch"], ["rebuild"], ["judge"], ["judge", "--all"],
                 ["explain", "1"]]


@pytest.mark.parametrize("command", NOT_RECORDING, ids=" ".join)
def test_a_command_that_records_nothing_never_creates_a_store(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nonexistent" / "x.db"
    code, out, err = run(capsys, *command, "--data-dir", str(tmp_path / "data"),
                         "--db", f"sqlite:///{path}")
    assert (code, out) == (1, "")
    assert err.startswith("mailbeacon: error: ") and "no store at" in err
    assert str(path) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "nonexistent").exists()


def test_rematching_an_unknown_quarantined_message_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--data-dir", str(tmp_path)]
    assert run(capsys, "migrate", *flags)[0] == 0
    code, out, err = run(capsys, "inbound", "quarantine", "rematch", "99999", *flags)
    assert (code, out) == (1, "")
    assert err == ("mailbeacon: error: no quarantined message 99999 "
                   "(see `mailbeacon inbound quarantine list`)\n")


@pytest.mark.parametrize("address", ["", "  "])
def test_a_timeline_needs_an_address(address: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--data-dir", str(tmp_path)]
    assert run(capsys, "migrate", *flags)[0] == 0
    code, out, err = run(capsys, "timeline", address, *flags)
    assert (code, out) == (1, "")
    assert err == ("mailbeacon: error: no address given: name the recipient whose "
                   "timeline to show\n")


def test_opens_of_a_refused_copy_do_not_push_the_open_rate_past_100(
        store: SqlStore, store_url: str, tmp_path: Path, smtp_sink: SmtpSink,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Sent to 3, one refused 550 (sent = 2); pixels for the refused copy and another:
    unique opens counted 3 and the open rate 150%."""
    smtp_sink.reject("gone@example.org")
    html = tmp_path / "m.html"
    html.write_bytes(HTML)
    flags = ["--data-dir", str(tmp_path), "--db", store_url, "--smtp", smtp_sink.url]
    code, _, _ = run(capsys, "send", *flags, "--from", "me@example.com", "--to",
                     "ann@example.org", "--to", "bob@example.org", "--to", "gone@example.org",
                     "--html", str(html), "--campaign", "spring")
    assert code == 3  # not every copy was accepted
    rows = {r["recipient"]: r for r in store.message_rows(range(1, 100))}
    assert rows["gone@example.org"]["status"] == "bounced"
    append = store.appender()
    at = time.time() + 3600  # an hour after the send, from a person's browser
    append([("open", at, 1, rows[who]["id"], 0, "", "GET", "8.8.8.8", FIREFOX, "")
            for who in ("gone@example.org", "ann@example.org")])
    append.close()
    code, out, _ = run(capsys, "report", "--json", "--campaign", "spring", *flags)
    body = json.loads(out)
    assert (body["sent"], body["opens"], body["unique_opens"]) == (2, 2, 1)
    assert body["open_rate"] == 0.5 and body["human"]["estimated_human_open_rate"] == 0.5
    _, table, _ = run(capsys, "report", "--campaign", "spring", *flags)
    assert "150" not in table and "50.0%" in table
    assert BREAKDOWN_HEADING == "hits (human or unknown verdict)"
    assert BREAKDOWN_HEADING in table and "hits by people" not in table
