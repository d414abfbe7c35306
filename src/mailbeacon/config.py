"""One table of settings, read the same way by every command.

Precedence, lowest first: the defaults below < ``mailbeacon.toml`` in the data
directory < environment (``--foo-bar`` is ``MAILBEACON_FOO_BAR``) < flags.
Values are validated once at start; a bad one stops the command with a message
that names the setting, where it came from and what would be accepted.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailbeacon.errors import ConfigError
from mailbeacon.smtp.relay import SCHEMES as RELAY_SCHEMES
from mailbeacon.smtp.relay import URL_FORMS as RELAY_URL_FORMS
from mailbeacon.smtp.relay import parse_relay_url

CONFIG_FILE = "mailbeacon.toml"
ENV_PREFIX = "MAILBEACON_"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _text(value: str) -> str:
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL such as https://t.example.com")
    _ = parts.port  # ValueError for a port that is not one
    return value.rstrip("/")


def _relay_url(value: str) -> str:
    scheme = urlsplit(value.strip()).scheme.lower()
    if scheme not in RELAY_SCHEMES:
        raise ValueError(f"unknown scheme {scheme or '(none)'!r}; expected {RELAY_URL_FORMS}")
    try:
        parse_relay_url(value)  # the one reading of --smtp, so what passes here connects
    except ConfigError as exc:
        raise ValueError(f"expected {RELAY_URL_FORMS}") from exc
    return value


_STORE_URL = re.compile(r"(sqlite|postgres|postgresql|postgresql\+psycopg)://", re.I)


def _store_url(value: str) -> str:
    if value and not _STORE_URL.match(value):
        raise ValueError("expected sqlite:///PATH or postgresql://user@host/db (empty: SQLite "
                         "in the data dir)")
    return value


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("expected HOST:PORT such as 127.0.0.1:8025")
    return host.strip("[]") or "127.0.0.1", int(port)


def _networks(value: str) -> tuple[Network, ...]:
    items = [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in items)
    except ValueError as exc:
        raise ValueError(f"expected comma-separated networks such as 10.0.0.0/8 ({exc})") from exc


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("expected a whole number above 0") from None
    if number <= 0:
        raise ValueError("expected a whole number above 0")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return number


def _domain(value: str) -> str:
    value = value.strip().lower()
    if value and ("@" in value or "." not in value or " " in value):
        raise ValueError("expected a domain name such as bounces.example.com")
    return value


def _optional_host_port(value: str) -> tuple[str, int] | None:
    return _host_port(value) if value.strip() else None


def _addresses(value: str) -> tuple[str, ...]:
    items = tuple(v.strip().lower() for v in value.replace(";", ",").split(",") if v.strip())
    for item in items:
        if item.count("@") != 1 or " " in item:
            raise ValueError(f"{item!r} is not an address; expected a@example.com,b@example.com")
    return items


def _imap_url(value: str) -> str:
    parts = urlsplit(value)
    if value and (parts.scheme not in ("imap", "imaps") or not parts.hostname):
        raise ValueError("expected imap://user:pass@host:143 or imaps://user:pass@host:993")
    _ = parts.port  # ValueError for a port that is not one
    return value


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a valid bool (use true or false)")


def _alternatives(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split("|") if v.strip())


def _optional_file(value: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError("no such file")
    return value


def _level(value: str) -> str:
    if value not in ("identified", "anonymous", "off"):
        raise ValueError("expected identified, anonymous or off")
    return value


# -- values as a person writes them (``mailbeacon settings``) ----------------------------


def _written_host_port(value: tuple[str, int] | None) -> str:
    if value is None:
        return ""
    host, port = value
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _written_list(separator: str) -> Callable[[tuple[object, ...]], str]:
    return lambda items: separator.join(str(item) for item in items)


def _written_bool(value: bool) -> str:
    return "true" if value else "false"


def _written_number(value: float) -> str:
    return f"{value:g}"


_WRITTEN: dict[Callable[[str], Any], Callable[[Any], str]] = {
    _host_port: _written_host_port, _optional_host_port: _written_host_port,
    _networks: _written_list(","), _addresses: _written_list(","),
    _alternatives: _written_list("|"), _bool: _written_bool, _non_negative_float: _written_number,
}
_QUERY_PASSWORD = re.compile(r"([?&](?:password|pass|passwd)=)[^&#]*", re.I)


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``: in the user info
    (``smtp://me:***@host``) and in a ``password=`` query parameter (libpq's form).

    The user info ends at the *last* ``@`` before any query, as urlsplit reads it
    (``imaps://a@b:c@host`` is user ``a@b``); a path holding an ``@`` is hidden too,
    which is the safe way to be wrong.
    """
    scheme, sep, rest = url.partition("://")
    if sep and not rest.startswith("/"):  # sqlite:////path has no user info
        userinfo, at, _ = re.split(r"[?#]", rest, maxsplit=1)[0].rpartition("@")
        user, colon, _password = userinfo.partition(":")
        if at and colon:
            rest = f"{user}:***{rest[len(userinfo):]}"
    return _QUERY_PASSWORD.sub(r"\1***", f"{scheme}{sep}{rest}")


@dataclass(frozen=True)
class Setting:
    name: str  # as a flag, without the dashes: "data-dir"
    default: str
    help: str
    parse: Callable[[str], Any] = _text
    metavar: str = "VALUE"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    def written(self, value: Any) -> str:
        """A parsed value as it would be written in a flag or mailbeacon.toml, with any
        password hidden."""
        return hide_password(_WRITTEN.get(self.parse, str)(value))


SETTINGS: tuple[Setting, ...] = (
    Setting("data-dir", "./mailbeacon-data",
            "Directory for the SQLite store, keys and config file.", _text, "DIR"),
    Setting("db", "", "Store URL (SQLAlchemy form): sqlite:///PATH or "
            "postgresql://user@host/db. Default: SQLite in the data dir.", _store_url, "URL"),
    Setting("public-url", "http://127.0.0.1:8080", "Base URL of the tracking server, written "
            "into tracked mail.", _url, "URL"),
    Setting("http", "127.0.0.1:8080", "Address the tracking server listens on.", _host_port,
            "HOST:PORT"),
    Setting("smtp", "smtp://127.0.0.1:25", "Relay for outgoing mail: smtp://host:port, "
            "smtp+starttls://user:pass@host:587 or smtps://user:pass@host:465.", _relay_url, "URL"),
    Setting("bounce-domain", "", "Domain for VERP return paths (bounces+TOKEN@DOMAIN). Empty: "
            "the From address is the return path.", _domain, "DOMAIN"),
    Setting("trusted-proxies", "", "Networks whose X-Forwarded-For is believed, comma-separated "
            "(e.g. 127.0.0.1/32,10.0.0.0/8). Empty: the peer address is the client.", _networks,
            "CIDRS"),
    Setting("track", "identified", "Default tracking level: identified, anonymous or off.",
            _level, "LEVEL"),
    Setting("send-attempts", "3", "Attempts for a recipient the relay answers 4xx before it is "
            "recorded as deferred.", _positive_int, "N"),
    Setting("send-backoff", "2", "Seconds before the first retry of a 4xx; doubles each time.",
            _non_negative_float, "SECONDS"),
    Setting("commit-batch", "512", "Most hits written in one transaction by the group commit.",
            _positive_int, "N"),
    Setting("workers", "1", "Tracking processes serve runs on the same address (SO_REUSEPORT, "
            "Linux), each with its own store connection; the judge and the inbound receiver "
            "run only in the first.", _positive_int, "N"),
    Setting("log-access", "false", "Log every HTTP request of the tracking server.", _bool,
            "BOOL"),
    Setting("own-networks", "", "The sender's own networks (comma-separated CIDRs): hits from "
            "them are the sender looking at the sent copy (verdict self).", _networks, "CIDRS"),
    Setting("own-user-agents", "", "Substrings of the sender's own user agents, separated by "
            "'|': hits from them get the verdict self.", _alternatives, "TEXT|TEXT"),
    Setting("ip-labels", "", "A CSV file of CIDR,label (apple-mpp, google-proxy, scanner, ...) "
            "from ranges their owners publish; see docs/verdicts.md.", _optional_file, "FILE"),
    Setting("country-db", "", "A CSV file of IP ranges to countries (DB-IP lite format) for "
            "offline country lookups; empty: the registries' data bundled by iptocc.",
            _optional_file, "FILE"),
    Setting("judge", "true", "Have serve run the judge (person-vs-machine verdicts) in a "
            "process of its own beside the tracking server. Set false on tracking-only servers "
            "and run `mailbeacon judge --follow` elsewhere.",
            _bool, "BOOL"),
    Setting("honeypot", "false", "Add an invisible link to HTML mail; a click on it is a "
            "machine for certain. Off by default: see docs/verdicts.md.", _bool, "BOOL"),
    # -- what comes back (docs/inbound.md) --
    Setting("inbound-smtp", "", "Address the inbound SMTP receiver for the bounce domain "
            "listens on (run by serve). Empty: off.", _optional_host_port, "HOST:PORT"),
    Setting("inbound-lmtp", "", "Address the inbound LMTP receiver listens on (for an MTA "
            "that hands mail over by LMTP). Empty: off.", _optional_host_port, "HOST:PORT"),
    Setting("receipt-addresses", "", "Addresses the receiver accepts besides VERP return "
            "paths (where read receipts and replies go), comma-separated.", _addresses,
            "ADDRESSES"),
    Setting("imap", "", "Mailbox to poll for bounces and receipts: imap://user:pass@host:143 "
            "(STARTTLS when offered; ?starttls=false for none) or imaps://user:pass@host:993. "
            "Empty: off.", _imap_url, "URL"),
    Setting("imap-folder", "INBOX", "IMAP folder to read.", _text, "FOLDER"),
    Setting("imap-done-folder", "mailbeacon-processed", "IMAP folder processed mail is moved "
            "to (created when missing).", _text, "FOLDER"),
    Setting("imap-delete", "false", "Delete processed mail instead of moving it.", _bool,
            "BOOL"),
    Setting("imap-poll", "60", "Seconds between polls when the server has no IDLE, and the "
            "longest IDLE before it is renewed.", _positive_int, "SECONDS"),
    Setting("soft-bounce-limit", "3", "Soft bounces within --soft-bounce-days after which an "
            "address is suppressed (one hard bounce or complaint is enough).", _positive_int,
            "N"),
    Setting("soft-bounce-days", "7", "Days over which soft bounces are counted.",
            _positive_int, "DAYS"),
    Setting("match-window", "30", "Days after sending in which a report that names only its "
            "recipient is matched to the copy sent to that address.", _positive_int, "DAYS"),
)

BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    """Validated settings, plus where each value came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, attr: str) -> Any:
        name = attr.replace("_", "-")
        if name in self.values:
            return self.values[name]
        raise AttributeError(attr)

    @property
    def data_path(self) -> Path:
        return Path(self.values["data-dir"])

    @property
    def db_url(self) -> str:
        url: str = self.values["db"]
        return url or f"sqlite:///{(self.data_path / 'mailbeacon.db').resolve()}"


def _from_file(data_dir: Path) -> dict[str, str]:
    path = data_dir / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(table) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(BY_NAME)}")
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in table.items()}


def load(flags: Mapping[str, str | None] | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Resolve every setting. ``flags`` maps setting names to values given on the command line."""
    given: dict[str, str] = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    raw: dict[str, str] = {s.name: s.default for s in SETTINGS}
    sources = {s.name: "default" for s in SETTINGS}
    data_dir = given.get("data-dir") or environ.get(BY_NAME["data-dir"].env) or raw["data-dir"]
    layers: list[tuple[str, Mapping[str, str]]] = [
        (f"{Path(data_dir) / CONFIG_FILE}", _from_file(Path(data_dir))),
        ("environment", {s.name: environ[s.env] for s in SETTINGS if s.env in environ}),
        ("command line", given),
    ]
    for origin, layer in layers:
        for name, value in layer.items():
            raw[name], sources[name] = value, origin
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        try:
            values[setting.name] = setting.parse(raw[setting.name])
        except ValueError as exc:
            where = sources[setting.name]
            if where == "environment":
                where = f"environment ({setting.env})"
            shown = hide_password(repr(raw[setting.name]))
            raise ConfigError(
                f"Setting '--{setting.name}' has value {shown} (from {where}): {exc}"
            ) from exc
    return Config(values, sources)
