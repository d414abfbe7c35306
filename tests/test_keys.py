"""The signing keyring file: made once, rotated, and clear errors when it is damaged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, Keyring, TokenKind
from mailbeacon.errors import ConfigError, TokenError


def test_made_once_then_kept(tmp_path: Path) -> None:
    first = keys.load_or_create(tmp_path / "d")
    assert keys.load_or_create(tmp_path / "d") == first
    assert (tmp_path / "d" / "keys.json").stat().st_mode & 0o777 == 0o600


def test_rotation_keeps_old_keys(tmp_path: Path) -> None:
    first = keys.load_or_create(tmp_path)
    rotated = keys.rotate(tmp_path)
    assert rotated.active == 2 and rotated.keys[1] == first.keys[1]


@pytest.mark.parametrize("text", ["", "{", '{"keys": 5}', '{"keys": {"1": "!!"}, "active": 1}',
                                  '{"keys": {"1": "YQ=="}, "active": 1}'])
def test_a_damaged_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "keys.json").write_text(text)
    with pytest.raises(ConfigError, match=r"keys\.json"):
        keys.load_or_create(tmp_path)


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"signing keys"):
        keys.load_or_create(tmp_path / "file" / "d")


def test_a_stale_tmp_file_lends_keys_json_no_mode(tmp_path: Path) -> None:
    stale = tmp_path / "keys.tmp"
    stale.write_text("left by a crash")
    stale.chmod(0o644)
    keys.load_or_create(tmp_path)
    keys.rotate(tmp_path)
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.glob("keys.*.tmp")]


def _token(keyring: Keyring, message: int) -> str:
    return tokens.encode(Claims(TokenKind.OPEN, 1, message), keyring)


def test_a_live_keyring_verifies_a_key_rotated_after_it_was_loaded(tmp_path: Path) -> None:
    live = keys.LiveKeyring(tmp_path)
    assert live.active == 1
    rotated = keys.rotate(tmp_path)
    # Signed by the new key a moment after rotating: verified without waiting a second.
    assert tokens.decode(_token(rotated, 7), live).message == 7
    assert live.active == 2 and set(live.keys) == {1, 2}
    assert tokens.decode_verp(tokens.encode_verp(Claims(TokenKind.BOUNCE, 1, 8), rotated),
                              live).message == 8


def test_a_live_keyring_keeps_its_keys_when_the_file_is_damaged(tmp_path: Path) -> None:
    live = keys.LiveKeyring(tmp_path)
    first = keys.read(tmp_path)
    (tmp_path / "keys.json").write_text("{")
    with pytest.raises(TokenError):
        tokens.decode(_token(Keyring({9: b"k" * 32}, 9), 1), live)  # unknown id: looks again
    assert tokens.decode(_token(first, 3), live).message == 3


def test_a_live_keyring_looks_at_the_file_at_most_once_a_second(tmp_path: Path,
                                                                monkeypatch: Any) -> None:
    live = keys.LiveKeyring(tmp_path)
    looks: list[Path] = []
    real_stat = os.stat

    def counted_stat(path: Path, *args: Any, **kw: Any) -> os.stat_result:
        looks.append(path)
        return real_stat(path, *args, **kw)

    monkeypatch.setattr(os, "stat", counted_stat)
    for _ in range(1000):
        assert live.active == 1
    assert len(looks) <= 1
