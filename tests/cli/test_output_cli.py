"""What people read: no terminal escape from a stranger reaches the screen, rates stay
rates, and read-only commands neither create a store nor stay silent about a wrong id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbeacon.cli.main import main
from mailbeacon.cli.table import printable
from mailbeacon.clock import FixedClock
from mailbeacon.store.sql import SqlStore
from reportmail import BOUNCE_DOMAIN, Copy, dsn, send_tracked
from smtpserver import SmtpSink

HOSTILE = "\x1b]0;PWNED\x07\x1b[2J"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
DAY = 86_400.0


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_harmless(text: str) -> None:
    bad = [c for c in text if (ord(c) < 32 and c not in "\n") or 0x7F <= ord(c) <= 0x9F]
    assert not bad, f"control characters reached the terminal: {bad!r}"
    assert "PWNED" not in text  # an OSC string goes whole, not only its ESC


@pytest.mark.parametrize(("raw", "shown"), [
    (f"550 5.1.1 {HOSTILE}user unknown", "550 5.1.1 user unknown"),
    ("a\x1b[31mred\x1b[0m b", "ared b"),
    ("nul\x00 bel\x07 del\x7f c1\x9b2J", "nul bel del c12J"),
    ("two\nlines\ttab", "two lines tab"),
    ("right-to-left \u202eevil\u202c", "right-to-left evil"),
    ("ESC at the end \x1b", "ESC at the end "),
    ("accents stay: é ü 日本", "accents stay: é ü 日本"),
])
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_keeps_lines_of_a_whole_message() -> None:
    assert printable(f"Subject: x{HOSTILE}\r\n\r\nbody\tend\r\n", keep_lines=True) == \
        "Subject: x\n\nbody\tend\n"


@pytest.fixture
def sent(store: SqlStore, store_url: str, smtp_sink: SmtpSink,
         tmp_path: Path) -> tuple[dict[str, Copy], list[str]]:
    """Three tracked copies sent for real, and the flags that reach the same store."""
    copies, _keyring, _config = send_tracked(store, smtp_sink, tmp_path / "data", FixedClock())
    flags = ["--data-dir", str(tmp_path / "data"), "--db", store_url,
             "--bounce-domain", BOUNCE_DOMAIN]
    return copies, flags


def _import(capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str],
            raw: bytes) -> dict[str, object]:
    path = tmp_path / "report.eml"
    path.write_bytes(raw)
    code, out, _ = run(capsys, "inbound", "import", str(path), "--json", *flags)
    assert code == 0
    outcome: dict[str, object] = json.loads(out)
    return outcome


def test_a_hostile_diagnostic_code_prints_harmless_everywhere(
        sent: tuple[dict[str, Copy], list[str]], store: SqlStore, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    copies, flags = sent
    ann = copies["ann@example.org"]
    outcome = _import(capsys, tmp_path, flags, dsn(ann, "failed", "5.1.1",
                                                   f"550 5.1.1 {HOSTILE}user unknown"))
    assert outcome["status"] == "matched"
    append = store.appender()  # a hit whose user agent is hostile too
    append([("open", FixedClock().now() + 60, 1, ann.message, 0, "", "GET", "198.51.100.4",
             f"Evil{HOSTILE}Agent", "")])
    append.close()
    stranger = b"From: x@example.net\r\nSubject: " + HOSTILE.encode() + b"\r\n\r\nhi\x1b[2J\r\n"
    _import(capsys, tmp_path, flags, stranger)
    _, lines, _ = run(capsys, "events", "--json", *flags)
    [hit] = [e["id"] for e in map(json.loads, lines.splitlines()) if e["kind"] == "open"]
    outputs = {}
    for command in (["events"], ["timeline", "ann@example.org"], ["report", "--recipients"],
                    ["suppress", "list"], ["inbound", "quarantine", "list"],
                    ["inbound", "quarantine", "show"], ["explain", str(hit)]):
        code, out, _ = run(capsys, *command, *flags)
        assert code == 0, command
        assert_harmless(out)
        outputs[command[0] if command[0] != "inbound" else command[-1]] = out
    assert "550 5.1.1 user unknown" in outputs["events"]
    assert "550 5.1.1 user unknown" in outputs["timeline"]
    assert "hard bounce: 5.1.1 userunknown" in outputs["suppress"]
    assert "EvilAgent" in outputs["explain"]
    assert "hi\n" in outputs["show"]  # the message is shown with its lines, less the escapes


def test_a_bounce_after_a_person_opened_keeps_the_rate_a_rate(
        sent: tuple[dict[str, Copy], list[str]], store: SqlStore, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 7: delivered=2, opened by a person=3, a human open rate of 150%."""
    copies, flags = sent
    append = store.appender()
    append([("open", FixedClock().now() + DAY, 1, c.message, 0, "", "GET", "198.51.100.4",
             FIREFOX, "") for c in copies.values()])
    append.close()
    ann = copies["ann@example.org"]
    _import(capsys, tmp_path, flags, dsn(ann, "failed", "5.1.1", "550 5.1.1 user unknown"))
    code, out, _ = run(capsys, "report", "--json", *flags)
    human = json.loads(out)["human"]
    assert code == 0
    assert (human["opened_by_person"], human["delivered"], human["bounced_later"],
            human["bounced_after_open"]) == (3, 3, 1, 1)
    assert human["estimated_human_open_rate"] == 1.0
    _, table, _ = run(capsys, "report", *flags)
    assert "bounced after a person opened it (still delivered)" in table
    assert "150" not in table and "100.0%" in table


READ_ONLY = [["report"], ["events"], ["timeline", "a@example.org"], ["explain", "1"],
             ["inbound", "quarantine", "list"], ["inbound", "quarantine", "show", "1"],
             ["suppress", "list"]]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:3]))
def test_a_read_only_command_never_creates_a_store(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing_dir = tmp_path / "nonexistent" / "dir" / "x.db"
    in_existing_dir = tmp_path / "x.db"
    for path in (missing_dir, in_existing_dir):
        code, out, err = run(capsys, *command, "--data-dir", str(tmp_path / "data"),
                             "--db", f"sqlite:///{path}")
        assert code == 1 and out == ""
        assert err.startswith("mailbeacon: error: ") and "no store at" in err
        assert str(path) in err and len(err.splitlines()) == 1
        assert not path.exists() and not path.parent.joinpath("x.db-wal").exists()
    assert not (tmp_path / "nonexistent").exists() and not (tmp_path / "data").exists()


def test_showing_an_unknown_quarantined_message_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--data-dir", str(tmp_path)]
    assert run(capsys, "migrate", *flags)[0] == 0
    code, out, err = run(capsys, "inbound", "quarantine", "show", "999", *flags)
    assert (code, out) == (1, "")
    assert err == ("mailbeacon: error: no quarantined message 999 "
                   "(see `mailbeacon inbound quarantine list`)\n")
