"""The inbound, suppress and mdn subcommands, run in-process as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbeacon.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "data" / "reports"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_parse_prints_one_object_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in DATA.glob("*.eml"))
    code, out = run(capsys, "inbound", "parse", *files, "--json")
    docs = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [d["file"] for d in docs] == files
    by_name = {Path(d["file"]).name: d for d in docs}
    assert by_name["dsn-base64-status.eml"]["kind"] == "dsn"
    rcpt = by_name["dsn-base64-status.eml"]["recipients"][0]
    assert set(rcpt) >= {"recipient", "action", "status", "reason", "hard", "diagnostic"}
    assert by_name["thunderbird-mdn.eml"]["recipients"][0]["disposition"] == "displayed"
    assert by_name["gmail-style-arf.eml"]["recipients"][0]["feedback_type"]
    assert by_name["human-reply.eml"]["kind"] == "reply"


def test_import_quarantine_and_rematch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(
        b"".join(
            b"From x@y Thu Jan  1 00:00:00 2026\n" + p.read_bytes() + b"\n"
            for p in sorted(DATA.glob("*.eml"))[:3]
        )
    )
    code, out = run(capsys, "inbound", "import", str(mbox), "--json", *d)
    outcomes = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [o["status"] for o in outcomes] == ["quarantined"] * 3
    code, out = run(capsys, "inbound", "quarantine", "list", "--json", *d)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [1, 2, 3]
    code, out = run(capsys, "inbound", "quarantine", "rematch", "2", "--json", *d)
    assert [json.loads(line)["inbound"] for line in out.splitlines()] == [2]


def test_suppression_list_edits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert run(capsys, "migrate", *d)[0] == 0  # editing the list never creates a store
    assert run(capsys, "suppress", "add", "Ann@Example.org", "--reason", "asked", *d)[0] == 0
    _, out = run(capsys, "suppress", "list", "--json", *d)
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["address"], row["reason"], row["source"]) == ("ann@example.org", "asked", "manual")
    assert run(capsys, "suppress", "remove", "ann@example.org", *d)[0] == 0
    assert run(capsys, "suppress", "remove", "ann@example.org", *d)[0] == 1


def test_mdn_prints_the_receipt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = tmp_path / "m.eml"
    original.write_bytes(
        b"From: a@example.com\r\nTo: b@example.org\r\nMessage-ID: <m1@x>\r\n"
        b"Disposition-Notification-To: a@example.com\r\nSubject: hi\r\n\r\nhi\r\n"
    )
    code, out = run(
        capsys, "mdn", str(original), "--from", "b@example.org", "--data-dir", str(tmp_path)
    )
    assert code == 0 and "Disposition: manual-action/MDN-sent-manually; displayed" in out
    assert "Original-Message-ID: <m1@x>" in out
