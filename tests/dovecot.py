"""A real Dovecot IMAP server for tests: own config in a tmp dir, 127.0.0.1, a free port.

    with Dovecot(tmp_path) as imap:               # or the `dovecot` fixture
        imap.append(b"raw message")               # into INBOX of the test user
        imap.url                                  # imap://tester:secret@127.0.0.1:PORT

Runs `dovecot -F -c CONF` as a child process; no SSL, plaintext login allowed.
As root the mail belongs to the `dovecot` user (Dovecot refuses UID 0 for mail).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

USER, PASSWORD = "tester", "secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


class Dovecot:
    def __init__(self, directory: Path, *, idle: bool = True) -> None:
        self.own_dir = os.getuid() == 0  # pytest's tmp dirs are 0700: closed to `dovecot`
        self.dir = (
            Path(tempfile.mkdtemp(prefix="mailbeacon-dovecot-")) if self.own_dir else directory
        )
        self.port = free_port()
        self.idle = idle
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def _config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        if os.getuid() == 0:
            owner = pwd.getpwnam("dovecot")
            internal, login = "dovecot", "dovenull"
        else:
            owner = pwd.getpwuid(os.getuid())
            internal = login = owner.pw_name
        for sub in ("run", "state", "mail", "home"):
            (self.dir / sub).mkdir(exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.dir / sub, owner.pw_uid, owner.pw_gid)
        (self.dir / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        no_idle = "" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS MOVE\n"
        conf = self.dir / "dovecot.conf"
        conf.write_text(f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.dir}/mail/%u
first_valid_uid = {owner.pw_uid}
last_valid_uid = 0
first_valid_gid = 0
default_internal_user = {internal}
default_login_user = {login}
{no_idle}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={self.dir}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
        return conf

    def start(self, timeout: float = 15.0) -> Dovecot:
        exe = binary()
        if exe is None:
            raise RuntimeError("dovecot is not installed")
        conf = self._config()
        self.proc = subprocess.Popen(
            [exe, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.proc.returncode}: {self.output()}")
            try:
                with self.client():
                    return self
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not answer in {timeout}s: {self.output()}")

    def output(self) -> str:
        out = b""
        if self.proc is not None and self.proc.poll() is not None and self.proc.stdout:
            out = self.proc.stdout.read()
        log = self.dir / "dovecot.log"
        return out.decode(errors="replace") + (
            log.read_text(errors="replace") if log.exists() else ""
        )

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(USER, PASSWORD)
        return c

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.client() as c:
            c.append(folder, raw)

    def count(self, folder: str) -> int:
        with self.client() as c:
            if not c.folder_exists(folder):
                return 0
            return int(c.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])

    def restart(self) -> None:
        """Stop and start again on the same port with the same mail: a server going away."""
        self._end()
        self.start()

    def stop(self) -> None:
        self._end()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _end(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
