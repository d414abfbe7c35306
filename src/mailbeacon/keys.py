"""The signing keyring, kept in the data directory (``keys.json``, mode 0600).

Generated on first use, never a default constant. ``rotate`` adds a key and
makes it the one that signs; older keys keep verifying mail already sent.
A running server holds a ``LiveKeyring``, which reads the file again when it
changes: a rotation needs no restart.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from mailbeacon.core.tokens import Keyring
from mailbeacon.errors import ConfigError, TokenError

KEYS_FILE = "keys.json"
RELOAD_EVERY = 1.0  # seconds between looks at keys.json's mtime
log = logging.getLogger("mailbeacon.keys")


def _path(data_dir: Path) -> Path:
    return data_dir / KEYS_FILE


def _write(path: Path, keyring: Keyring) -> None:
    doc = {
        "active": keyring.active,
        "keys": {str(k): base64.b64encode(v).decode() for k, v in sorted(keyring.keys.items())},
    }
    # A new file of our own (O_EXCL, 0600): a stale or planted keys.tmp lends it no mode.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="keys.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One writer of keys.json at a time: two rotations at once must not lose a key."""
    fd = os.open(data_dir / "keys.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
        pass
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with _locked(data_dir):
            if _path(data_dir).exists():  # another process made it meanwhile
                return read(data_dir)
            keyring = Keyring({1: secrets.token_bytes(32)}, 1)
            _write(_path(data_dir), keyring)
    except OSError as exc:
        raise ConfigError(f"cannot keep the signing keys in {data_dir}: {exc.strerror}") \
            from exc
    return keyring


def rotate(data_dir: Path) -> Keyring:
    """Add a new key and make it active; returns the new keyring."""
    load_or_create(data_dir)
    with _locked(data_dir):
        current = read(data_dir)
        new_id = max(current.keys) + 1
        if new_id > 255:
            raise ConfigError("the keyring holds 255 keys; retire old ones before rotating again")
        keyring = Keyring({**current.keys, new_id: secrets.token_bytes(32)}, new_id)
        _write(_path(data_dir), keyring)
    return keyring


class _Keys(dict[int, bytes]):
    """The keys by id; asked for one it does not hold, it first reads keys.json again
    (when the file changed): mail signed by a key rotated in a moment ago verifies."""

    def __init__(self, keys: dict[int, bytes], source: _KeyFile):
        super().__init__(keys)
        self.source = source

    def get(self, kid: int, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        found = super().get(kid)
        if found is None and self.source.reload():
            return self.source.keys.get(kid, default)
        return default if found is None else found


class _KeyFile:
    """keys.json and what was last read from it; reloaded when its stamp changes."""

    def __init__(self, data_dir: Path):
        self.path = _path(data_dir)
        self.data_dir = data_dir
        self.lock = threading.Lock()
        self.looked = time.monotonic()
        first = load_or_create(data_dir)
        self.stamp = self._stamp()
        self.keys = _Keys(first.keys, self)
        self.active = first.active

    def current(self) -> _KeyFile:
        if time.monotonic() - self.looked >= RELOAD_EVERY:
            self.reload()
        return self

    def reload(self) -> bool:
        """Read keys.json again if it changed; True when the keys did."""
        with self.lock:
            self.looked = time.monotonic()
            stamp = self._stamp()
            if stamp == self.stamp:
                return False
            self.stamp = stamp
            try:
                fresh = read(self.data_dir)
            except (ConfigError, OSError) as exc:
                log.error("keys.json changed but cannot be used (%s); keeping the keys held",
                          exc)
                return False
            changed = fresh.keys != dict(self.keys) or fresh.active != self.active
            self.keys, self.active = _Keys(fresh.keys, self), fresh.active
        if changed:
            log.warning("signing keys reloaded: key %d signs, %d keys verify", fresh.active,
                        len(fresh.keys))
        return changed

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)  # os.replace: a new inode too


class LiveKeyring(Keyring):
    """The keyring of a running server: keys.json read again when it changes.

    Looked at no more than once a second, and at once for a token signed by a key
    id it does not know. A damaged file is logged and the keys held stay in use.
    One object shared by the tracking app and the inbound pipeline: ``keys rotate``
    needs no restart. ``tokens.decode`` takes it as any Keyring.
    """

    def __init__(self, data_dir: Path):  # no dataclass fields: both are read from the file
        object.__setattr__(self, "source", _KeyFile(data_dir))

    source: _KeyFile

    @property
    def keys(self) -> dict[int, bytes]:
        return self.source.current().keys

    @property
    def active(self) -> int:
        return self.source.current().active
