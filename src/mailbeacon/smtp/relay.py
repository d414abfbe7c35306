"""The outgoing relay: one SMTP connection, one transaction per recipient, DSN when offered.

    with Relay(parse_relay_url("smtp+starttls://user:pass@mx.example.com:587")) as relay:
        result = relay.send("bounces+t1@example.com", "ann@example.org", data, "t1", DsnRequest())

Each recipient gets its own MAIL/RCPT/DATA transaction so its ORCPT (and the
return path carrying its token) is its own. Replies become a SendResult:

    2xx                                   sent
    5xx at MAIL, RCPT or DATA             bounced, at once
    4xx, connection lost, timeout         retried with exponential backoff, then deferred

A connection or session that cannot be set up (refused, TLS, AUTH) raises
RelayError naming host:port and the server's answer.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from mailbeacon.errors import ConfigError, RelayError
from mailbeacon.smtp.dsn import DsnRequest, envid_xtext, mail_params, parse_notify, rcpt_params

__all__ = ["DsnRequest", "Relay", "RelayURL", "SendResult", "parse_notify", "parse_relay_url"]

Security = Literal["plain", "starttls", "tls"]
SendStatus = Literal["sent", "bounced", "deferred"]

SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}
URL_FORMS = (
    "smtp://host[:port] (plain, port 25), "
    "smtp+starttls://user:pass@host[:port] (STARTTLS required, port 587), "
    "smtps://user:pass@host[:port] (implicit TLS, port 465); "
    "add ?verify=false to skip TLS certificate checks"
)
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class RelayURL:
    security: Security
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    verify: bool = True

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class SendResult:
    recipient: str
    status: SendStatus
    code: int | None
    message: str
    dsn: bool  # DSN parameters were sent: the relay advertised DSN
    attempts: int


def parse_relay_url(url: str) -> RelayURL:
    """Read the `--smtp` setting.

    smtp://host[:port]                        plain SMTP, default port 25
    smtp+starttls://user:pass@host[:port]     STARTTLS, refused if not offered; port 587
    smtps://user:pass@host[:port]             implicit TLS; port 465

    User and password are percent-decoded (`p%40ss` is `p@ss`) and optional.
    `?verify=false` skips TLS certificate checks, for self-signed test relays.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:
        raise _url_error(url, f"not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _url_error(url, f"unknown scheme {scheme or '(none)'!r}")
    if not host:
        raise _url_error(url, "no host")
    if parts.path not in ("", "/") or parts.fragment:
        raise _url_error(url, "a path or fragment is not allowed")
    security, default_port = SCHEMES[scheme]
    return RelayURL(
        security=security,
        host=host,
        port=_port(url, _port_text(parts.netloc), default_port),
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        verify=_verify_option(url, parts.query),
    )


def _port(url: str, port: str, default: int) -> int:
    if port == "":
        return default
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise _url_error(url, f"the port {port!r} is not a number from 1 to 65535")
    return int(port)


def _port_text(netloc: str) -> str:
    """What follows the host's colon; urlsplit().port would hide an empty or bad one."""
    hostport = netloc.rpartition("@")[2]
    return hostport.rpartition("]")[2].partition(":")[2]


def _verify_option(url: str, query: str) -> bool:
    verify = True
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != "verify" or value.lower() not in ("true", "false"):
            raise _url_error(url, f"unknown option {name}={value!r} (only verify=true|false)")
        verify = value.lower() == "true"
    return verify


def _url_error(url: str, problem: str) -> ConfigError:
    shown = re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)  # never echo a password
    return ConfigError(f"Config '--smtp' has value {shown!r}: {problem}. Accepted: {URL_FORMS}.")


def tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Unreachable(RelayError):
    """The relay did not answer: transient once sending has begun."""


@dataclass(frozen=True)
class _Envelope:
    mail_from: str
    rcpt: str
    data: bytes
    envid: str | None
    dsn: DsnRequest

    @property
    def ascii(self) -> bool:
        return (self.mail_from + self.rcpt).isascii()


class Relay:
    """One connection to the relay, reused for every send(); reopened when the server drops it.

    A temporary failure is tried `attempts` times in all, sleeping `backoff` seconds
    before the first retry and twice as long before each next one.
    """

    def __init__(
        self,
        url: RelayURL,
        *,
        attempts: int = 3,
        backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        local_hostname: str | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep
        self._timeout = timeout
        self._local_hostname = local_hostname
        self._smtp: smtplib.SMTP | None = None
        self._opened = False  # once connected, a lost connection is transient

    def __enter__(self) -> Relay:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect now, so a bad setting fails before the first message."""
        self._connection()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except OSError:
                self._smtp.close()
            self._smtp = None

    def send(
        self, mail_from: str, rcpt: str, data: bytes, envid: str | None, dsn: DsnRequest
    ) -> SendResult:
        """One envelope to one recipient, retried while the failure is temporary."""
        if envid is not None:
            envid_xtext(envid)  # an envelope id the RFC does not allow fails here, at once
        if not self._opened:
            self.open()
        envelope = _Envelope(mail_from, rcpt, _BARE_LINE_END.sub(b"\r\n", data), envid, dsn)
        attempt, result = 1, self._attempt(envelope)
        while result.status == "deferred" and attempt < self.attempts:
            self._sleep(self.backoff * 2 ** (attempt - 1))
            attempt, result = attempt + 1, self._attempt(envelope)
        return replace(result, attempts=attempt)

    def _attempt(self, envelope: _Envelope) -> SendResult:
        reused = self._smtp is not None
        try:
            return self._transaction(self._connection(), envelope)
        except _Unreachable as exc:
            return _result(envelope, "deferred", None, str(exc), dsn=False)
        except OSError as exc:  # smtplib's errors are OSErrors too; replies were handled
            self._drop()
            if not reused:
                lost = f"connection to SMTP relay {self.url.address} lost: {_why(exc)}"
                return _result(envelope, "deferred", None, lost, dsn=False)
        # The server closed a connection we had kept open: one fresh try, not counted.
        return self._attempt(envelope)

    def _transaction(self, smtp: smtplib.SMTP, envelope: _Envelope) -> SendResult:
        dsn = smtp.has_extn("dsn")
        if not envelope.ascii and not smtp.has_extn("smtputf8"):
            problem = f"non-ASCII address and relay {self.url.address} does not offer SMTPUTF8"
            return _result(envelope, "bounced", None, problem, dsn)
        mail_options, rcpt_options = self._options(smtp, envelope, dsn)
        code, reply = smtp.mail(envelope.mail_from, mail_options)
        if code == 530:  # our setting is wrong, not the recipient: no bounce for them
            self._drop()
            raise RelayError(
                f"SMTP relay {self.url.address} requires AUTH (give user:pass@ in --smtp): "
                f"{code} {_text(reply)}"
            )
        if 200 <= code < 300:
            code, reply = smtp.rcpt(envelope.rcpt, rcpt_options)
        if 200 <= code < 300:
            code, reply = _data(smtp, envelope.data)
        if not 200 <= code < 300:
            self._reset(smtp, code)
        return _result(envelope, _status(code), code, _text(reply), dsn)

    def _options(
        self, smtp: smtplib.SMTP, envelope: _Envelope, dsn: bool
    ) -> tuple[list[str], list[str]]:
        mail_options = mail_params(envelope.dsn, envelope.envid) if dsn else []
        rcpt_options = rcpt_params(envelope.dsn, envelope.rcpt) if dsn else []
        if not envelope.ascii:
            mail_options.append("SMTPUTF8")
        if not envelope.data.isascii() and smtp.has_extn("8bitmime"):
            mail_options.append("BODY=8BITMIME")
        return mail_options, rcpt_options

    def _reset(self, smtp: smtplib.SMTP, code: int) -> None:
        """End a failed transaction; a 421 means the server is closing anyway."""
        if code == 421:
            self._drop()
            return
        try:
            smtp.rset()
        except OSError:
            self._drop()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._connect()
            self._opened = True
        return self._smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        address = self.url.address
        try:
            smtp = self._dial()
        except ssl.SSLError as exc:
            raise RelayError(f"SMTP relay {address}: TLS failed: {exc}") from exc
        except OSError as exc:
            raise _Unreachable(f"cannot connect to SMTP relay {address}: {_why(exc)}") from exc
        try:
            self._start_session(smtp)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _dial(self) -> smtplib.SMTP:
        url, name, timeout = self.url, self._local_hostname, self._timeout
        if url.security == "tls":
            context = tls_context(url.verify)
            return smtplib.SMTP_SSL(url.host, url.port, name, timeout=timeout, context=context)
        return smtplib.SMTP(url.host, url.port, name, timeout=timeout)

    def _start_session(self, smtp: smtplib.SMTP) -> None:
        url, step = self.url, "EHLO"
        try:
            smtp.ehlo_or_helo_if_needed()
            if url.security == "starttls":
                step = "STARTTLS"
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("not offered, smtp+starttls:// requires it")
                smtp.starttls(context=tls_context(url.verify))
                smtp.ehlo_or_helo_if_needed()
            if url.user is not None:
                step = f"AUTH as {url.user!r}"
                smtp.login(url.user, url.password or "")
        except OSError as exc:  # ssl.SSLError and every smtplib error are OSErrors
            raise RelayError(f"SMTP relay {url.address}: {step} failed: {_why(exc)}") from exc


def _data(smtp: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    try:
        return smtp.data(data)
    except smtplib.SMTPDataError as exc:  # the reply to DATA itself, before the content
        return exc.smtp_code, _text(exc.smtp_error).encode()


def _status(code: int) -> SendStatus:
    if 200 <= code < 300:
        return "sent"
    return "bounced" if 500 <= code < 600 else "deferred"


def _result(
    envelope: _Envelope, status: SendStatus, code: int | None, message: str, dsn: bool
) -> SendResult:
    return SendResult(envelope.rcpt, status, code, message, dsn, attempts=0)


def _why(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc) or type(exc).__name__


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
