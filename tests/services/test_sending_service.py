"""services.sending: a draft composed and sent for real (to the SMTP sink), one result per
recipient, and the mistakes a caller can make refused before anything is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon import config as cfg
from mailbeacon import keys
from mailbeacon.clock import FixedClock
from mailbeacon.errors import MailbeaconError
from mailbeacon.services import sending, suppressions
from mailbeacon.services.sending import Attachment, Draft
from mailbeacon.store import queries
from mailbeacon.store.sql import SqlStore
from smtpserver import SmtpSink

HTML = "<p>Hello <a href='https://example.com/x'>there</a></p>"


def _config(tmp_path: Path, sink: SmtpSink) -> cfg.Config:
    return cfg.load({"data-dir": str(tmp_path), "smtp": sink.url, "send-backoff": "0"},
                    environ={})


def test_a_draft_is_composed_tracked_and_sent(store: SqlStore, smtp_sink: SmtpSink,
                                              tmp_path: Path) -> None:
    config, clock = _config(tmp_path, smtp_sink), FixedClock()
    suppressions.add(store, ["cyd@example.org"], "asked us to stop", clock.now())
    draft = Draft(sender="Ann <ann@example.com>",
                  recipients=("bob@example.net", "cyd@example.org"), subject="Spring offer",
                  html=HTML, attachments=(Attachment("price list.pdf", b"%PDF-1.4"),),
                  campaign="spring")
    results = sending.send_draft(draft, config=config, store=store,
                                 keyring=keys.load_or_create(tmp_path), clock=clock)
    assert [(r.recipient, r.status) for r in results] == [
        ("bob@example.net", "sent"), ("cyd@example.org", "suppressed")]
    assert results[1].detail == "asked us to stop"
    assert not sending.all_sent(results)
    [got] = smtp_sink.wait_for(1)
    message = got.message()
    assert (message["To"], message["Subject"]) == ("bob@example.net", "Spring offer")
    assert "/o/" in message.get_body(("html",)).get_content()  # the pixel
    [part] = list(message.iter_attachments())
    assert (part.get_filename(), part.get_content_type()) == ("price list.pdf",
                                                              "application/pdf")
    assert queries.counts(store, queries.campaign_id(store, "spring")).sent == 1


def test_a_whole_message_goes_as_it_is_apart_from_tracking(tmp_path: Path,
                                                           smtp_sink: SmtpSink) -> None:
    eml = b"From: ann@example.com\r\nTo: list@example.com\r\nSubject: As is\r\n\r\nhello\r\n"
    out = sending.outgoing(Draft("ann@example.com", ("bob@example.net",), subject="ignored",
                                 eml=eml, dsn="never"),
                           config=_config(tmp_path, smtp_sink), clock=FixedClock())
    assert (out.source, out.subject, out.composed) == (eml, "", False)
    assert out.dsn.notify == ("NEVER",)


@pytest.mark.parametrize(("draft", "problem"), [
    (Draft("nobody", ("bob@example.net",), text="hi"), "--from 'nobody' is not an email address"),
    (Draft("ann@example.com", ("Bob <bob@example.net>",), text="hi"),
     "--to 'Bob <bob@example.net>' is not a bare email address"),
    (Draft("ann@example.com", ("bob@example.net",), eml=b"x", attachments=(Attachment("a", b""),)),
     "a whole message (--eml) takes no body or attachments"),
])
def test_a_bad_draft_is_refused_before_anything_is_recorded(
        draft: Draft, problem: str, store: SqlStore, smtp_sink: SmtpSink,
        tmp_path: Path) -> None:
    with pytest.raises(MailbeaconError) as caught:
        sending.send_draft(draft, config=_config(tmp_path, smtp_sink), store=store,
                           keyring=keys.load_or_create(tmp_path), clock=FixedClock())
    assert str(caught.value) == problem
    assert (queries.counts(store).recipients, smtp_sink.messages) == (0, [])
