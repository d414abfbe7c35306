"""``mailbeacon settings`` and ``send`` refusing a bad setting, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon.cli.main import main
from mailbeacon.store.sql import SqlStore


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_settings_hide_every_password_and_print_values_as_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILBEACON_DB", "postgresql://mb:db-secret@127.0.0.1/mb")
    code, out, _ = run(capsys, "settings", "--data-dir", str(tmp_path),
                       "--imap", "imaps://me:imap-secret@imap.example:993",
                       "--smtp", "smtp+starttls://me:smtp-secret@relay.example:587")
    assert code == 0
    assert "secret" not in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["db"].split() == ["db", "postgresql://mb:***@127.0.0.1/mb", "(environment)"]
    assert lines["imap"].split() == ["imap", "imaps://me:***@imap.example:993", "(command", "line)"]
    assert lines["smtp"].split()[1] == "smtp+starttls://me:***@relay.example:587"
    assert lines["http"].split() == ["http", "127.0.0.1:8080", "(default)"]
    assert lines["trusted-proxies"].split() == ["trusted-proxies", "(default)"]  # empty
    assert lines["inbound-smtp"].split() == ["inbound-smtp", "(default)"]
    assert lines["judge"].split()[1] == "true"
    assert "store in use: postgresql://mb:***@127.0.0.1/mb" in out
    for python in ("('", "()", "None", "True", "IPv4Network"):
        assert python not in out


def test_settings_refuse_an_unknown_relay_scheme(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "settings", "--data-dir", str(tmp_path), "--smtp", "foo://x")
    assert (code, out) == (1, "")
    assert err.startswith("mailbeacon: error: Setting '--smtp' has value 'foo://x' (from "
                          "command line): unknown scheme 'foo'; expected smtp://host[:port]")


def test_send_with_a_bad_relay_records_no_copy(store: SqlStore, store_url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "body.txt"
    body.write_text("hello\n")
    code, out, err = run(capsys, "send", "--data-dir", str(tmp_path), "--db", store_url,
                         "--smtp", "foo://x", "--from", "me@example.com",
                         "--to", "you@example.org", "--text", str(body))
    assert (code, out) == (1, "") and "unknown scheme 'foo'" in err
    code, out, _ = run(capsys, "report", "--json", "--data-dir", str(tmp_path), "--db", store_url)
    assert code == 0 and '"recipients": 0' in out and '"queued": 0' in out


def test_send_reads_the_relay_url_before_it_records_anything(store: SqlStore,
                                                             tmp_path: Path) -> None:
    """A Config made in code skips load()'s checks: send itself still refuses first."""
    from mailbeacon import config, keys
    from mailbeacon.clock import FixedClock
    from mailbeacon.errors import ConfigError
    from mailbeacon.services.sending import Outgoing, send
    from mailbeacon.store import queries

    good = config.load({"data-dir": str(tmp_path)}, environ={})
    bad = config.Config({**good.values, "smtp": "foo://x"}, good.sources)
    out = Outgoing(sender="me@example.com", recipients=("you@example.org",),
                   source=b"From: me@example.com\r\n\r\nhello\r\n")
    with pytest.raises(ConfigError, match="unknown scheme 'foo'"):
        send(out, config=bad, store=store, keyring=keys.load_or_create(tmp_path),
             clock=FixedClock())
    assert queries.counts(store).recipients == 0
