"""Settings: defaults < mailbeacon.toml < environment < flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon import config
from mailbeacon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults(tmp_path: Path) -> None:
    cfg = config.load({"data-dir": str(tmp_path)}, environ={})
    assert cfg.http == ("127.0.0.1", 8080)
    assert cfg.db_url == f"sqlite:///{(tmp_path / 'mailbeacon.db').resolve()}"
    assert cfg.sources["smtp"] == "default"


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "mailbeacon.toml").write_text(
        'public-url = "https://file.example"\nsmtp = "smtp://file:25"\n'
        'bounce-domain = "b.example"\n')
    env = {"MAILBEACON_SMTP": "smtp://env:25", "MAILBEACON_DATA_DIR": str(tmp_path),
           "MAILBEACON_BOUNCE_DOMAIN": "env.example"}
    cfg = config.load({"bounce-domain": "flag.example"}, environ=env)
    assert cfg.public_url == "https://file.example"
    assert cfg.smtp == "smtp://env:25"
    assert cfg.bounce_domain == "flag.example"
    assert cfg.sources["public-url"].endswith("mailbeacon.toml")
    assert cfg.sources["smtp"] == "environment"
    assert cfg.sources["bounce-domain"] == "command line"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("http", "nowhere", "HOST:PORT"),
    ("public-url", "ftp://x", "http"),
    ("trusted-proxies", "10.0.0.0/33", "networks"),
    ("send-attempts", "0", "above 0"),
    ("log-access", "maybe", "bool"),
    ("track", "full", "identified"),
    ("bounce-domain", "a@b.c", "domain"),
])
def test_bad_values_name_the_setting(tmp_path: Path, name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load({name: value, "data-dir": str(tmp_path)}, environ={})
    assert f"--{name}" in str(err.value) and words in str(err.value)
    assert "command line" in str(err.value)


def test_bad_value_from_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILBEACON_HTTP"):
        config.load({"data-dir": str(tmp_path)}, environ={"MAILBEACON_HTTP": "x"})


def test_config_file_errors(tmp_path: Path) -> None:
    (tmp_path / "mailbeacon.toml").write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        config.load({"data-dir": str(tmp_path)}, environ={})
    (tmp_path / "mailbeacon.toml").write_text("smtp = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load({"data-dir": str(tmp_path)}, environ={})


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [s.name for s in config.SETTINGS if f"`--{s.name}`" not in doc]
    assert not missing, f"docs/configuration.md lacks {missing}"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("smtp", "foo://x", "unknown scheme 'foo'"),
    ("smtp", "smtp://relay.example:99999", "smtp://host[:port]"),
    ("smtp", "smtp://", "smtp://host[:port]"),
    ("db", "mysql://u@h/x", "sqlite:///PATH or postgresql://"),
    ("imap", "imaps://u:p@h:notaport", "Port"),
    ("public-url", "https://t.example.com:99999", "Port"),
    ("send-backoff", "nan", "0 or more"),
    ("send-backoff", "soon", "0 or more"),
])
def test_every_url_and_number_is_checked(tmp_path: Path, name: str, value: str,
                                          words: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load({name: value, "data-dir": str(tmp_path)}, environ={})
    assert f"--{name}" in str(err.value) and words in str(err.value)


def test_a_refused_url_never_echoes_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config.load({"smtp": "smtp://me:hunter2@relay:99999", "data-dir": str(tmp_path)},
                    environ={})
    assert "hunter2" not in str(err.value) and "smtp://me:***@relay:99999" in str(err.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("smtp+starttls://me:secret@relay.example:587", "smtp+starttls://me:***@relay.example:587"),
    ("postgresql://u:p%40ss@db/x?sslmode=require&password=zz",
     "postgresql://u:***@db/x?sslmode=require&password=***"),
    ("imaps://ann@example.org:pw@imap.example:993", "imaps://ann@example.org:***@imap.example:993"),
    ("smtp://relay.example:25", "smtp://relay.example:25"),
    ("sqlite:////srv/a:b@c/x.db", "sqlite:////srv/a:b@c/x.db"),
    ("", ""),
])
def test_hide_password(url: str, shown: str) -> None:
    assert config.hide_password(url) == shown


def test_values_are_written_as_a_person_writes_them(tmp_path: Path) -> None:
    cfg = config.load({"data-dir": str(tmp_path), "http": "[::1]:8080",
                       "trusted-proxies": "10.0.0.0/8, 127.0.0.1", "own-user-agents": "A|B",
                       "send-backoff": "0.5"}, environ={})
    written = {s.name: s.written(cfg.values[s.name]) for s in config.SETTINGS}
    assert written["http"] == "[::1]:8080"
    assert written["trusted-proxies"] == "10.0.0.0/8,127.0.0.1/32"
    assert written["own-user-agents"] == "A|B"
    assert (written["send-backoff"], written["judge"], written["inbound-smtp"]) == ("0.5", "true",
                                                                                    "")
    for s in config.SETTINGS:  # what settings prints is a value the setting accepts back
        assert s.written(s.parse(written[s.name])) == written[s.name], s.name
