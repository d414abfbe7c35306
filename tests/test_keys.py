"""The signing keyring file: made once, rotated, and clear errors when it is damaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon import keys
from mailbeacon.errors import ConfigError


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
