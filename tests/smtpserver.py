"""A real SMTP server on localhost for tests: aiosmtpd taught to speak DSN.

    with SmtpSink() as sink:                       # or the smtp_sink fixture
        sink.reject("gone@example.org")            # 550 5.1.1 at RCPT
        sink.defer("busy@example.org", times=2)    # 451 the first two times
        ...send to sink.url...
        [message] = sink.wait_for(1)
        message.rcpt_options[0]                    # ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;..."]

aiosmtpd 1.4.6 does not advertise DSN, answers 555 to its parameters and
upper-cases every parameter (which would corrupt ENVID and ORCPT xtext).
DsnSMTP advertises `250-DSN` and keeps RET, ENVID, NOTIFY and ORCPT verbatim;
with dsn=False the sink behaves like a server without DSN and refuses them.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, AnyStr, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

MAIL_DSN_PARAMS = frozenset({"RET", "ENVID"})  # RFC 3461 section 4
RCPT_DSN_PARAMS = frozenset({"NOTIFY", "ORCPT"})
LOCALHOST = "127.0.0.1"


class DsnEnvelope(Envelope):
    """An envelope that also keeps each recipient's own parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.rcpt_params: list[list[str]] = []  # parallel to rcpt_tos


class DsnSMTP(SMTP):
    """aiosmtpd's SMTP with the DSN extension: advertised, and its parameters kept verbatim."""

    def __init__(self, handler: Any, *, dsn: bool = True, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.dsn = dsn
        self._in_ehlo = False

    def _create_envelope(self) -> DsnEnvelope:
        return DsnEnvelope()

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if self._in_ehlo and self.dsn and text.startswith("250 "):
            await super().push("250-DSN")  # before the last line of the EHLO reply
        await super().push(status)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        envelope = self._dsn_envelope()
        had_sender = bool(envelope.mail_from)
        arg, kept = self._set_aside(arg, "FROM:", MAIL_DSN_PARAMS)
        await super().smtp_MAIL(arg)
        if not had_sender and envelope.mail_from:
            envelope.mail_options.extend(kept)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        envelope = self._dsn_envelope()
        rcpts, options = len(envelope.rcpt_tos), len(envelope.rcpt_options)
        arg, kept = self._set_aside(arg, "TO:", RCPT_DSN_PARAMS)
        await super().smtp_RCPT(arg)
        if len(envelope.rcpt_tos) > rcpts:
            envelope.rcpt_options.extend(kept)
            envelope.rcpt_params.append(envelope.rcpt_options[options:])

    def _dsn_envelope(self) -> DsnEnvelope:
        return cast(DsnEnvelope, self.envelope)

    def _set_aside(
        self, arg: str | None, keyword: str, names: frozenset[str]
    ) -> tuple[str | None, list[str]]:
        """Take DSN parameters out of a MAIL/RCPT argument, before aiosmtpd upper-cases them."""
        if not self.dsn or arg is None:
            return arg, []
        stripped = self._strip_command_keyword(keyword, arg)
        address, rest = self._getaddr(stripped) if stripped is not None else (None, None)
        if address is None or not rest or not arg.endswith(rest):
            return arg, []  # let aiosmtpd answer the syntax error
        params = rest.split()
        kept = [p for p in params if p.partition("=")[0].upper() in names]
        others = [p for p in params if p not in kept]
        return " ".join([arg[: len(arg) - len(rest)].rstrip(), *others]), kept


@dataclass(frozen=True)
class Received:
    """One envelope as the sink accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    rcpt_options: list[list[str]]  # per recipient, in rcpt_tos order
    data: bytes
    peer: tuple[str, int]

    def message(self) -> EmailMessage:
        return cast(EmailMessage, email.message_from_bytes(self.data, policy=email.policy.default))


@dataclass
class _Script:
    code: int
    text: str
    stage: str
    times: int | None  # None: every time

    def answer(self) -> str | None:
        if self.times is not None:
            if self.times <= 0:
                return None
            self.times -= 1
        return f"{self.code} {self.text}"


def _peer(session: Session) -> tuple[str, int]:
    return cast(tuple[str, int], session.peer)  # aiosmtpd types it loosely; it is (host, port)


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        self.sink._greeted(_peer(session))
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        answer = self.sink._scripted(address, "RCPT")
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            answer = self.sink._scripted(address, "DATA")
            if answer is not None:
                return answer
        queued = self.sink._receive(cast(DsnEnvelope, envelope), _peer(session))
        return f"250 2.0.0 OK queued as {queued}"


class _SinkController(Controller):
    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(_SinkHandler(sink), **kwargs)
        self.sink = sink
        self.protocols: list[DsnSMTP] = []

    def factory(self) -> DsnSMTP:
        protocol = DsnSMTP(self.handler, dsn=self.sink.dsn, **self.SMTP_kwargs)
        self.protocols.append(protocol)
        return protocol

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]  # port 0 asked the OS for one
        super()._trigger_server()


class SmtpSink:
    """A scripted SMTP server on 127.0.0.1 that keeps everything it accepts."""

    def __init__(
        self,
        dsn: bool = True,
        port: int = 0,
        *,
        smtputf8: bool = True,
        tls: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """tls is (certfile, keyfile): offered by STARTTLS, or from the first byte if
        implicit_tls. credentials make AUTH required (after STARTTLS when tls is set)."""
        self.dsn = dsn
        self.host = LOCALHOST
        self.port = port
        self.messages: list[Received] = []
        self.running = False
        self._peers: set[tuple[str, int]] = set()
        self._scripts: dict[tuple[str, str], _Script] = {}
        self._changed = threading.Condition()
        self._controller = _SinkController(
            self, hostname=LOCALHOST, port=port, server_hostname="sink.mailbeacon.test",
            **_server_options(smtputf8, tls, implicit_tls, credentials),
        )  # fmt: skip
        self.scheme = "smtps" if implicit_tls else "smtp"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """How many client connections greeted the server with EHLO."""
        with self._changed:
            return len(self._peers)

    def start(self) -> SmtpSink:
        self._controller.start()
        self.port = self._controller.port
        self.running = True
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection, as a server going away would."""
        if self.running:
            self.drop_connections()
            self._controller.stop()
            self.running = False

    def drop_connections(self) -> None:
        """Close the open connections from the server's side, as an idle timeout would."""
        future = asyncio.run_coroutine_threadsafe(self._close_all(), self._controller.loop)
        future.result(timeout=5)

    async def _close_all(self) -> None:
        for protocol in self._controller.protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        await asyncio.sleep(0.05)  # let the loop deliver the closes

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reject(
        self, address: str, code: int = 550, text: str = "5.1.1 user unknown", stage: str = "RCPT"
    ) -> None:
        """Answer `code text` for this recipient at RCPT (or DATA), every time."""
        self._script(address, _Script(code, text, stage.upper(), times=None))

    def defer(
        self,
        address: str,
        times: int | None = 2,
        code: int = 451,
        text: str = "4.3.0 try again later",
        stage: str = "RCPT",
    ) -> None:
        """Answer a temporary failure for this recipient the first `times` times (None: always)."""
        self._script(address, _Script(code, text, stage.upper(), times))

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """The received envelopes once there are at least n; fails the test after timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= n, timeout):
                raise AssertionError(
                    f"SMTP sink expected {n} messages within {timeout} s, got {len(self.messages)}"
                )
            return list(self.messages)

    def _script(self, address: str, script: _Script) -> None:
        with self._changed:
            self._scripts[(address.lower(), script.stage)] = script

    def _scripted(self, address: str, stage: str) -> str | None:
        with self._changed:
            script = self._scripts.get((address.lower(), stage))
            return script.answer() if script is not None else None

    def _greeted(self, peer: tuple[str, int]) -> None:
        with self._changed:
            self._peers.add(peer)

    def _receive(self, envelope: DsnEnvelope, peer: tuple[str, int]) -> int:
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            mail_options=list(envelope.mail_options),
            rcpt_options=[list(params) for params in envelope.rcpt_params],
            data=envelope.original_content or b"",
            peer=peer,
        )
        with self._changed:
            self.messages.append(received)
            self._changed.notify_all()
            return len(self.messages)


def _server_options(
    smtputf8: bool,
    tls: tuple[Path, Path] | None,
    implicit_tls: bool,
    credentials: tuple[str, str] | None,
) -> dict[str, Any]:
    options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        options["ssl_context" if implicit_tls else "tls_context"] = context
    if credentials is not None:
        options["authenticator"] = _Authenticator(*credentials)
        options["auth_required"] = True
        options["auth_require_tls"] = tls is not None and not implicit_tls
    return options


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.expected = (user.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == self.expected
        return AuthResult(success=ok, handled=False)


def self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """(certfile, keyfile) for localhost and 127.0.0.1, made by the openssl CLI; None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
