"""The signing keyring, kept in the data directory (``keys.json``, mode 0600).

Generated on first use, never a default constant. ``rotate`` adds a key and
makes it the one that signs; older keys keep verifying mail already sent.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from mailbeacon.core.tokens import Keyring
from mailbeacon.errors import ConfigError, TokenError

KEYS_FILE = "keys.json"


def _path(data_dir: Path) -> Path:
    return data_dir / KEYS_FILE


def _write(path: Path, keyring: Keyring) -> None:
    doc = {
        "active": keyring.active,
        "keys": {str(k): base64.b64encode(v).decode() for k, v in sorted(keyring.keys.items())},
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def read(data_dir: Path) -> Keyring:
    path = _path(data_dir)
    try:
        doc = json.loads(path.read_text())
        keys = {int(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
        return Keyring(keys, int(doc["active"]))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read the signing keys {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError, AttributeError, TokenError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}); restore it from a backup: "
                          "without it no token in mail already sent can be verified") from exc


def load_or_create(data_dir: Path) -> Keyring:
    """The keyring, generating the first key when there is none yet."""
    try:
        return read(data_dir)
    except FileNotFoundError:
        keyring = Keyring({1: secrets.token_bytes(32)}, 1)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            _write(_path(data_dir), keyring)
        except OSError as exc:
            raise ConfigError(f"cannot keep the signing keys in {data_dir}: {exc.strerror}") \
                from exc
        return keyring


def rotate(data_dir: Path) -> Keyring:
    """Add a new key and make it active; returns the new keyring."""
    current = load_or_create(data_dir)
    new_id = max(current.keys) + 1
    if new_id > 255:
        raise ConfigError("the keyring holds 255 keys; retire old ones before rotating again")
    keyring = Keyring({**current.keys, new_id: secrets.token_bytes(32)}, new_id)
    _write(_path(data_dir), keyring)
    return keyring
