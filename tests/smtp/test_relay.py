"""The relay client against a real SMTP server on localhost (tests/smtpserver.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbeacon.errors import ConfigError, RelayError
from mailbeacon.smtp.dsn import DsnRequest, orcpt, parse_notify, xtext_decode, xtext_encode
from mailbeacon.smtp.relay import Relay, RelayURL, parse_relay_url
from smtpserver import SmtpSink, self_signed_cert

SENDER = "bounces+t1@example.com"
MESSAGE = b"From: sender@example.com\r\nTo: ann@example.org\r\nSubject: hello\r\n\r\nHello.\r\n"
DSN = DsnRequest()


@pytest.fixture
def delays() -> list[float]:
    """The backoff sleeps the relay asked for, instead of sleeping."""
    return []


def relay_to(url: str, delays: list[float], **options: Any) -> Relay:
    return Relay(parse_relay_url(url), sleep=delays.append, timeout=5.0, **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the --smtp setting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mx.example.com", RelayURL("plain", "mx.example.com", 25)),
        ("smtp://mx.example.com:2525", RelayURL("plain", "mx.example.com", 2525)),
        ("SMTP://MX.Example.com:25/", RelayURL("plain", "mx.example.com", 25)),
        ("smtp://[::1]:2525", RelayURL("plain", "::1", 2525)),
        ("smtp+starttls://mx.example.com", RelayURL("starttls", "mx.example.com", 587)),
        (
            "smtp+starttls://user:pass@mx.example.com:587",
            RelayURL("starttls", "mx.example.com", 587, "user", "pass"),
        ),
        ("smtps://u:p@mx.example.com", RelayURL("tls", "mx.example.com", 465, "u", "p")),
        (
            "smtps://ann%40example.org:p%40ss%3Aw%2Frd@mx.example.com:465",
            RelayURL("tls", "mx.example.com", 465, "ann@example.org", "p@ss:w/rd"),
        ),
        (
            "smtps://u:p@127.0.0.1:2465?verify=false",
            RelayURL("tls", "127.0.0.1", 2465, "u", "p", verify=False),
        ),
        (
            "smtp+starttls://u:p@mx.example.com?verify=TRUE",
            RelayURL("starttls", "mx.example.com", 587, "u", "p", verify=True),
        ),
    ],
)
def test_parse_relay_url(url: str, expected: RelayURL) -> None:
    assert parse_relay_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mx.example.com:25", "unknown scheme 'mx.example.com'"),
        ("http://mx.example.com", "unknown scheme 'http'"),
        ("smtp+ssl://mx.example.com", "unknown scheme 'smtp+ssl'"),
        ("//mx.example.com", "unknown scheme '(none)'"),
        ("smtp://", "no host"),
        ("smtps://user:pw@:465", "no host"),
        ("smtp://[::1", "not a URL"),
        ("smtp://mx.example.com:smtp", "the port 'smtp' is not a number from 1 to 65535"),
        ("smtp://mx.example.com:70000", "the port '70000' is not a number from 1 to 65535"),
        ("smtp://mx.example.com:0", "the port '0' is not a number from 1 to 65535"),
        ("smtp://mx.example.com/relay", "a path or fragment is not allowed"),
        ("smtps://mx.example.com?verify=no", "unknown option verify='no'"),
        ("smtps://mx.example.com?timeout=5", "unknown option timeout='5'"),
    ],
)
def test_parse_relay_url_refuses(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_relay_url(url)
    message = str(caught.value)
    assert problem in message
    assert "'--smtp'" in message
    assert "smtp+starttls://user:pass@host[:port]" in message  # the accepted forms


def test_parse_relay_url_never_echoes_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_relay_url("smtps://ann:hunter2@mx.example.com:99999")
    assert "hunter2" not in str(caught.value)
    assert "ann:***@mx.example.com" in str(caught.value)
    assert "hunter2" not in repr(parse_relay_url("smtps://ann:hunter2@mx.example.com"))


# --- xtext and the DSN request ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "xtext"),
    [
        ("ann@example.org", "ann@example.org"),
        ("", ""),
        ("+", "+2B"),  # RFC 3461 section 4: "+" and "=" are always encoded
        ("=", "+3D"),
        ("bob+news=x@example.org", "bob+2Bnews+3Dx@example.org"),
        ("two words", "two+20words"),  # 32 is outside 33..126
        ("tab\there", "tab+09here"),
        ("!~", "!~"),  # 33 and 126 are kept
        ("\x7f", "+7F"),
        ("josé@example.org", "jos+C3+A9@example.org"),  # each UTF-8 byte
        ("€", "+E2+82+AC"),
    ],
)
def test_xtext(text: str, xtext: str) -> None:
    assert xtext_encode(text) == xtext
    assert xtext_decode(xtext) == text


def test_xtext_decode_is_lenient_about_case_and_strict_about_truncation() -> None:
    assert xtext_decode("a+2bb") == "a+b"
    for bad in ("+2", "abc+", "+G1"):
        with pytest.raises(ValueError, match="two hex digits"):
            xtext_decode(bad)


def test_orcpt_of_a_non_ascii_address_uses_the_utf8_type() -> None:
    assert orcpt("ann+x@example.org") == "rfc822;ann+2Bx@example.org"
    assert orcpt("josé@example.org") == "utf-8;jos\\x{E9}@example.org"  # RFC 6533


@pytest.mark.parametrize(
    ("text", "notify"),
    [
        ("success,failure,delay", ("SUCCESS", "FAILURE", "DELAY")),
        ("FAILURE, delay", ("FAILURE", "DELAY")),
        ("delay,success", ("SUCCESS", "DELAY")),
        ("failure", ("FAILURE",)),
        ("never", ("NEVER",)),
        ("Never", ("NEVER",)),
    ],
)
def test_parse_notify(text: str, notify: tuple[str, ...]) -> None:
    assert parse_notify(text) == notify


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("never,success", "'NEVER' is not allowed"),
        ("sometimes", "'SOMETIMES' is not allowed"),
        ("", "'' is not allowed"),
    ],
)
def test_parse_notify_refuses(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        parse_notify(text)
    assert "never alone" in str(caught.value)


def test_dsn_request_defaults_and_checks() -> None:
    assert (DSN.notify, DSN.ret) == (("FAILURE", "DELAY"), "HDRS")
    with pytest.raises(ValueError):
        DsnRequest(notify=("NEVER", "SUCCESS"))
    with pytest.raises(ValueError):
        DsnRequest(notify=())


@pytest.mark.parametrize("envid", ["x" * 101, "a+" * 40, "has space", "ünï", ""])
def test_an_envelope_id_the_rfc_does_not_allow_fails_before_connecting(envid: str) -> None:
    relay = Relay(parse_relay_url(f"smtp://127.0.0.1:{free_port()}"))
    with pytest.raises(ValueError, match="envelope id"):
        relay.send(SENDER, "ann@example.org", MESSAGE, envid, DSN)


# --- DSN on the wire --------------------------------------------------------------------------


def test_dsn_parameters_reach_the_server_verbatim(smtp_sink: SmtpSink, delays: list[float]) -> None:
    envelopes = [
        ("Ann.Lee@Example.org", "Msg-1.a@Mail.Example.com"),
        ("bob+n=x@example.org", "M+1="),
    ]
    with relay_to(smtp_sink.url, delays) as relay:
        results = [relay.send(SENDER, rcpt, MESSAGE, envid, DSN) for rcpt, envid in envelopes]
    assert [(r.recipient, r.status, r.code, r.dsn, r.attempts) for r in results] == [
        ("Ann.Lee@Example.org", "sent", 250, True, 1),
        ("bob+n=x@example.org", "sent", 250, True, 1),
    ]
    first, second = smtp_sink.wait_for(2)
    assert (first.mail_from, first.rcpt_tos) == (SENDER, ["Ann.Lee@Example.org"])
    assert first.mail_options == ["RET=HDRS", "ENVID=Msg-1.a@Mail.Example.com"]
    assert first.rcpt_options == [["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;Ann.Lee@Example.org"]]
    assert second.mail_options == ["RET=HDRS", "ENVID=M+2B1+3D"]
    assert second.rcpt_options == [["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;bob+2Bn+3Dx@example.org"]]
    assert first.data == MESSAGE


def test_notify_never_and_ret_full(smtp_sink: SmtpSink, delays: list[float]) -> None:
    with relay_to(smtp_sink.url, delays) as relay:
        result = relay.send(
            SENDER, "ann@example.org", MESSAGE, None, DsnRequest(("NEVER",), "FULL")
        )
    assert (result.status, result.dsn) == ("sent", True)
    [received] = smtp_sink.wait_for(1)
    assert received.mail_options == ["RET=FULL"]  # no envelope id given, no ENVID
    assert received.rcpt_options == [["NOTIFY=NEVER", "ORCPT=rfc822;ann@example.org"]]


def test_no_dsn_parameters_when_the_server_does_not_offer_dsn(
    smtp_sink_nodsn: SmtpSink, delays: list[float]
) -> None:
    with relay_to(smtp_sink_nodsn.url, delays) as relay:
        result = relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN)
    assert (result.status, result.code, result.dsn) == ("sent", 250, False)
    [received] = smtp_sink_nodsn.wait_for(1)
    assert (received.mail_options, received.rcpt_options) == ([], [[]])


def test_one_connection_carries_many_recipients(smtp_sink: SmtpSink, delays: list[float]) -> None:
    recipients = [f"r{i}@example.org" for i in range(5)]
    with relay_to(smtp_sink.url, delays) as relay:
        results = [
            relay.send(SENDER, rcpt, MESSAGE, f"t{i}", DSN) for i, rcpt in enumerate(recipients)
        ]
    assert {r.status for r in results} == {"sent"}
    assert [m.rcpt_tos for m in smtp_sink.wait_for(5)] == [[r] for r in recipients]
    assert smtp_sink.connections == 1


def test_non_ascii_addresses_use_smtputf8_when_offered(
    smtp_sink: SmtpSink, delays: list[float]
) -> None:
    body = "Subject: café\r\n\r\nDéjà vu.\r\n".encode()
    with relay_to(smtp_sink.url, delays) as relay:
        result = relay.send(SENDER, "josé@example.org", body, "t1", DSN)
    assert result.status == "sent"
    [received] = smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["josé@example.org"]
    assert "SMTPUTF8" in received.mail_options and "BODY=8BITMIME" in received.mail_options
    assert received.rcpt_options == [["NOTIFY=FAILURE,DELAY", "ORCPT=utf-8;jos\\x{E9}@example.org"]]


def test_non_ascii_address_without_smtputf8_fails_that_recipient_only(delays: list[float]) -> None:
    with SmtpSink(smtputf8=False) as sink, relay_to(sink.url, delays) as relay:
        refused = relay.send(SENDER, "josé@example.org", MESSAGE, "t1", DSN)
        accepted = relay.send(SENDER, "ann@example.org", MESSAGE, "t2", DSN)
        assert [m.rcpt_tos for m in sink.wait_for(1)] == [["ann@example.org"]]
    assert (refused.status, refused.code, refused.attempts) == ("bounced", None, 1)
    assert "does not offer SMTPUTF8" in refused.message
    assert accepted.status == "sent"


# --- answers: bounced, deferred, retried ------------------------------------------------------


def test_550_at_rcpt_bounces_at_once(smtp_sink: SmtpSink, delays: list[float]) -> None:
    smtp_sink.reject("gone@example.org")
    with relay_to(smtp_sink.url, delays) as relay:
        gone = relay.send(SENDER, "gone@example.org", MESSAGE, "t1", DSN)
        ann = relay.send(SENDER, "ann@example.org", MESSAGE, "t2", DSN)
    assert (gone.status, gone.code, gone.message, gone.attempts) == (
        "bounced",
        550,
        "5.1.1 user unknown",
        1,
    )
    assert delays == []
    assert ann.status == "sent"  # the RSET left the connection usable
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["ann@example.org"]]
    assert smtp_sink.connections == 1


def test_5xx_at_data_bounces(smtp_sink: SmtpSink, delays: list[float]) -> None:
    smtp_sink.reject("ann@example.org", 554, "5.7.1 message refused as spam", stage="DATA")
    with relay_to(smtp_sink.url, delays) as relay:
        result = relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN)
    assert (result.status, result.code, result.message) == (
        "bounced",
        554,
        "5.7.1 message refused as spam",
    )
    assert smtp_sink.messages == []


def test_451_twice_then_accepted(smtp_sink: SmtpSink, delays: list[float]) -> None:
    smtp_sink.defer("busy@example.org", times=2, code=451)
    with relay_to(smtp_sink.url, delays) as relay:
        result = relay.send(SENDER, "busy@example.org", MESSAGE, "t1", DSN)
    assert (result.status, result.code, result.attempts) == ("sent", 250, 3)
    assert delays == [2.0, 4.0]
    assert len(smtp_sink.wait_for(1)) == 1


def test_451_forever_is_deferred_with_the_last_answer(
    smtp_sink: SmtpSink, delays: list[float]
) -> None:
    smtp_sink.defer("busy@example.org", times=None, code=452, text="4.2.2 mailbox full")
    with relay_to(smtp_sink.url, delays, attempts=4, backoff=0.5) as relay:
        result = relay.send(SENDER, "busy@example.org", MESSAGE, "t1", DSN)
    assert (result.status, result.code, result.message, result.attempts) == (
        "deferred",
        452,
        "4.2.2 mailbox full",
        4,
    )
    assert delays == [0.5, 1.0, 2.0]


# --- connections ------------------------------------------------------------------------------


def test_reconnects_when_the_server_closed_the_connection(
    smtp_sink: SmtpSink, delays: list[float]
) -> None:
    with relay_to(smtp_sink.url, delays) as relay:
        first = relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN)
        smtp_sink.drop_connections()  # an idle timeout on the server's side
        second = relay.send(SENDER, "bob@example.org", MESSAGE, "t2", DSN)
    assert [(r.status, r.attempts) for r in (first, second)] == [("sent", 1), ("sent", 1)]
    assert delays == []
    assert len(smtp_sink.wait_for(2)) == 2
    assert smtp_sink.connections == 2


@pytest.fixture
def restartable() -> Iterator[list[SmtpSink]]:
    sinks: list[SmtpSink] = []
    yield sinks
    for sink in sinks:
        sink.stop()


def test_reconnects_to_a_restarted_server(restartable: list[SmtpSink], delays: list[float]) -> None:
    before = SmtpSink().start()
    restartable.append(before)
    with relay_to(before.url, delays) as relay:
        assert relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN).status == "sent"
        before.stop()
        after = SmtpSink(port=before.port).start()
        restartable.append(after)
        result = relay.send(SENDER, "bob@example.org", MESSAGE, "t2", DSN)
    assert (result.status, result.attempts) == ("sent", 1)
    assert [m.rcpt_tos for m in after.wait_for(1)] == [["bob@example.org"]]


def test_server_gone_for_good_defers(restartable: list[SmtpSink], delays: list[float]) -> None:
    sink = SmtpSink().start()
    restartable.append(sink)
    with relay_to(sink.url, delays) as relay:
        assert relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN).status == "sent"
        sink.stop()
        result = relay.send(SENDER, "bob@example.org", MESSAGE, "t2", DSN)
    assert (result.status, result.code, result.attempts) == ("deferred", None, 3)
    assert f"cannot connect to SMTP relay 127.0.0.1:{sink.port}" in result.message
    assert delays == [2.0, 4.0]


def test_cannot_connect_at_start_raises() -> None:
    port = free_port()
    with pytest.raises(RelayError, match=rf"cannot connect to SMTP relay 127\.0\.0\.1:{port}: "):
        relay_to(f"smtp://127.0.0.1:{port}", []).open()
    with pytest.raises(RelayError, match="cannot connect"):  # send() opens it too: no retries
        relay_to(f"smtp://127.0.0.1:{port}", []).send(SENDER, "ann@example.org", MESSAGE, None, DSN)


def test_a_server_that_never_greets_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        relay = Relay(parse_relay_url(f"smtp://127.0.0.1:{port}"), timeout=0.3)
        with pytest.raises(RelayError, match=rf"relay 127\.0\.0\.1:{port}: .*timed out"):
            relay.open()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_required_but_no_user_given_raises(delays: list[float]) -> None:
    with SmtpSink(credentials=("relay-user", "s3cret")) as sink:
        relay = relay_to(sink.url, delays)
        with relay, pytest.raises(RelayError, match=r"requires AUTH .*: 530 5\.7\.0"):
            relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN)


# --- TLS and AUTH (a certificate made at test time) -------------------------------------------


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    made = self_signed_cert(tmp_path)
    if made is None:
        pytest.skip("openssl is not on PATH: cannot make a self-signed certificate")
    return made


def starttls_url(sink: SmtpSink, userinfo: str = "", query: str = "") -> str:
    return f"smtp+starttls://{userinfo}{sink.host}:{sink.port}{query}"


def test_starttls_with_auth(cert: tuple[Path, Path], delays: list[float]) -> None:
    with SmtpSink(tls=cert, credentials=("relay-user", "s3cret")) as sink:
        url = starttls_url(sink, "relay-user:s3cret@", "?verify=false")
        with relay_to(url, delays) as relay:
            result = relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN)
        assert (result.status, result.dsn) == ("sent", True)
        assert len(sink.wait_for(1)) == 1


def test_starttls_verifies_the_certificate(
    cert: tuple[Path, Path], delays: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    with SmtpSink(tls=cert) as sink:
        with pytest.raises(RelayError, match=r"STARTTLS failed: .*CERTIFICATE_VERIFY_FAILED"):
            relay_to(starttls_url(sink), delays).open()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # now trusted, for 127.0.0.1
        with relay_to(starttls_url(sink), delays) as relay:
            assert relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN).status == "sent"


def test_starttls_not_offered_raises(smtp_sink: SmtpSink, delays: list[float]) -> None:
    with pytest.raises(RelayError, match=rf":{smtp_sink.port}: STARTTLS failed: not offered"):
        relay_to(starttls_url(smtp_sink), delays).open()


def test_auth_rejected_raises(cert: tuple[Path, Path], delays: list[float]) -> None:
    with SmtpSink(tls=cert, credentials=("relay-user", "s3cret")) as sink:
        url = starttls_url(sink, "relay-user:wrong@", "?verify=false")
        with pytest.raises(RelayError, match=r"AUTH as 'relay-user' failed: 535 "):
            relay_to(url, delays).open()


def test_implicit_tls(cert: tuple[Path, Path], delays: list[float]) -> None:
    with SmtpSink(tls=cert, implicit_tls=True) as sink:
        with pytest.raises(RelayError, match=r"TLS failed: .*CERTIFICATE_VERIFY_FAILED"):
            relay_to(sink.url, delays).open()
        with relay_to(f"{sink.url}?verify=false", delays) as relay:
            assert relay.send(SENDER, "ann@example.org", MESSAGE, "t1", DSN).status == "sent"
