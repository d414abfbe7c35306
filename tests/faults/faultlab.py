"""Faults against a real ``mailbeacon serve``, each counted the same way.

Every scenario sends pixel hits that each name their own recipient copy
(``message`` = a number used once), notes which were answered 200 (kept, by
the server's word) and which 503 (not kept), ends the fault, and reads the
store. The figures a scenario returns say whether the promise held: no
acknowledged hit missing, none counted twice, and the server recovered
without a restart. Used by the tests in this directory and by bench/faults.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.events import COLUMNS
from mailbeacon.core.tokens import Claims, Keyring, TokenKind
from mailbeacon.store.sql import open_store
from serverproc import ServerProcess, free_port
from tcpproxy import CuttableProxy


class Unavailable(Exception):
    """The scenario cannot run here (no tmpfs mount, no PostgreSQL): skip, with the reason."""


@dataclass
class Figures:
    fault: str
    sent: int = 0
    acked: int = 0  # answered 200: the server said the hit is kept
    refused: int = 0  # answered 503: the server said it is not
    stored: int = 0  # distinct hits in the store at the end
    missing: int = 0  # acknowledged, not stored
    doubled: int = 0  # rows beyond one per hit
    recovered: bool = False  # hits after the fault were kept, no restart in between
    seconds: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return self.missing == 0 and self.doubled == 0 and self.recovered

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return (f"{self.fault:<22} sent={self.sent:<6} acked={self.acked:<6} "
                f"503={self.refused:<5} stored={self.stored:<6} missing={self.missing} "
                f"doubled={self.doubled} recovered={'yes' if self.recovered else 'NO'} "
                f"{self.seconds:5.1f}s {extra}")


# -- hits -----------------------------------------------------------------------------------

class Hits:
    """Pixel hits, one recipient copy each, and what the server answered."""

    def __init__(self, url: str, keyring: Keyring, threads: int = 4):
        self.url, self.keyring, self.threads = url, keyring, threads
        self.status: dict[int, int] = {}
        self.slowest = 0.0
        self._lock = threading.Lock()

    def path(self, message: int) -> str:
        return f"/o/{tokens.encode(Claims(TokenKind.OPEN, 1, message), self.keyring)}.gif"

    def fire(self, messages: Iterable[int], stop: threading.Event | None = None) -> None:
        todo = list(messages)
        share = [todo[i::self.threads] for i in range(self.threads)]
        workers = [threading.Thread(target=self._fire, args=(s, stop)) for s in share]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def _fire(self, messages: list[int], stop: threading.Event | None) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for message in messages:
                if stop is not None and stop.is_set():
                    return
                started = time.monotonic()
                try:
                    status = client.get(self.path(message)).status_code
                except httpx.HTTPError:
                    if stop is not None:
                        return  # the server is gone (killed on purpose)
                    status = 0
                with self._lock:
                    self.status[message] = status
                    self.slowest = max(self.slowest, time.monotonic() - started)

    def acked(self) -> set[int]:
        return {m for m, s in self.status.items() if s == 200}

    def refused(self) -> set[int]:
        return {m for m, s in self.status.items() if s == 503}


def stored_counts(db_url: str) -> dict[int, int]:
    """Rows per recipient copy among the open events in the store."""
    store = open_store(db_url, create=False)
    try:
        with store.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT message, COUNT(*) FROM events WHERE kind = 'open' GROUP BY message")
            return {int(m): int(n) for m, n in rows}
    finally:
        store.close()


def count(fig: Figures, acked: set[int], db_url: str) -> Figures:
    stored = stored_counts(db_url)
    fig.acked = len(acked)
    fig.stored = len(stored)
    fig.missing = len(acked - set(stored))
    fig.doubled = sum(n - 1 for n in stored.values())
    return fig


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def spool_empty(data_dir: Path) -> bool:
    return not list((data_dir / "spool").rglob("hits-*.jsonl"))


def _keyed_row(message: int, key: str) -> list[object]:
    row: list[object] = ["open", 1.0, 1, message, 0, "", "GET", "192.0.2.1", "spooled", "",
                         key]
    assert len(row) == len(COLUMNS)
    return row


# -- the faults ----------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(where: Path, size: str = "5m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"cannot mount a tmpfs at {where}: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` to the last byte, then give back ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb") as out:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
                out.flush()
    size = filler.stat().st_size
    with open(filler, "r+b") as out:
        out.truncate(max(0, size - leave))
    return filler


def disk_full(base: Path, hits: int = 3000, leave: int = 600_000) -> Figures:
    """Store and spool on a 5 MB tmpfs that fills up under the hits, then has room again."""
    fig = Figures("disk full (tmpfs)")
    started = time.monotonic()
    with tmpfs(base / "disk") as disk:
        data, db_url = disk / "data", f"sqlite:///{disk / 'mailbeacon.db'}"
        with ServerProcess(data, db_url, "--judge", "false", log_dir=base) as server:
            shot = Hits(server.url, keys.read(data))
            filler = _fill(disk, leave)
            shot.fire(range(1, hits + 1))
            fig.refused = len(shot.refused())
            filler.unlink()  # room again: no restart
            after = range(hits + 1, hits + 201)
            shot.fire(after)
            wait_for(lambda: spool_empty(data), 20)
            fig.sent = len(shot.status)
            count(fig, shot.acked(), db_url)
            fig.recovered = set(after) <= shot.acked() and set(after) <= set(
                stored_counts(db_url)) and spool_empty(data)
            fig.notes["others"] = len(shot.status) - fig.acked - fig.refused
        fig.seconds = time.monotonic() - started
        return fig


def torn_spool(base: Path, db_url: str, workers: int = 2, rows: int = 200) -> Figures:
    """Spools left by a full disk (a torn line in the middle), in the first process's
    directory and a worker's: serve starts, the rows around the torn line land."""
    fig = Figures(f"torn spool line (x{workers})")
    started = time.monotonic()
    data = base / "data"
    open_store(db_url).close()
    keyring = keys.load_or_create(data)
    spooled: set[int] = set()
    for n, where in enumerate([data / "spool", data / "spool" / "worker-2"]):
        where.mkdir(parents=True, exist_ok=True)
        first = 1_000_000 * (n + 1)
        lines = [json.dumps(_keyed_row(first + i, f"torn-test-{first + i}"))
                 for i in range(rows)]
        torn = lines[rows // 2][:30]  # cut short, as ENOSPC leaves a line
        spooled |= {first + i for i in range(rows) if i != rows // 2}
        (where / "hits-4242.jsonl").write_text("\n".join(
            [*lines[:rows // 2], torn, *lines[rows // 2 + 1:]]) + "\n")
    with ServerProcess(data, db_url, "--judge", "false", "--workers", str(workers)) as server:
        shot = Hits(server.url, keyring)
        shot.fire(range(1, 401))
        wait_for(lambda: spool_empty(data), 15)
        fig.sent = len(shot.status) + len(spooled)
        count(fig, shot.acked() | spooled, db_url)
        fig.recovered = spool_empty(data) and shot.acked() == set(range(1, 401))
    fig.notes["torn_set_aside"] = sum(len(p.read_text().splitlines())
                                      for p in (data / "spool").rglob("torn-*.jsonl"))
    fig.seconds = time.monotonic() - started
    return fig


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}"))


def blackholed_postgres(base: Path, pg_url: str, silent: float = 8.0) -> Figures:
    """PostgreSQL accepts TCP and says nothing for ``silent`` seconds, under hits."""
    fig = Figures("blackholed PostgreSQL")
    started = time.monotonic()
    pg = urlsplit(pg_url)
    with CuttableProxy((pg.hostname or "127.0.0.1", pg.port or 5432)) as proxy:
        url = _through(pg_url, proxy.port)
        open_store(url).close()
        data = base / "data"
        with ServerProcess(data, url, "--judge", "false") as server:
            shot = Hits(server.url, keys.read(data))
            shot.fire(range(1, 201))
            proxy.blackhole()
            shot.slowest = 0.0
            during = threading.Thread(target=shot.fire, args=(range(201, 601),))
            during.start()
            time.sleep(silent)
            proxy.restore()
            during.join()
            fig.notes["slowest_hit_s"] = round(shot.slowest, 1)
            fig.notes["spooled"] = "yes" if list((data / "spool").glob("*.jsonl")) else "no"
            back = time.monotonic()
            wait_for(lambda: spool_empty(data), 30)
            fig.notes["replayed_in_s"] = round(time.monotonic() - back, 1)
            shot.fire(range(601, 701))
            fig.sent = len(shot.status)
            count(fig, shot.acked(), url)
            fig.recovered = spool_empty(data) and set(range(601, 701)) <= set(stored_counts(url))
    fig.seconds = time.monotonic() - started
    return fig


def sigkill_under_load(base: Path, db_url: str, workers: int = 2,
                       before_kill: int = 800) -> Figures:
    """SIGKILL the first process (its workers die with it) while hits pour in; restart."""
    fig = Figures(f"SIGKILL (--workers {workers})")
    started = time.monotonic()
    data = base / "data"
    server = ServerProcess(data, db_url, "--judge", "false", "--workers", str(workers),
                           env={"MAILBEACON_TEST_SLOW_DISK_MS": "20"}).start()
    try:
        wait_for(lambda: _listeners(server.port) >= workers, 20)
        shot = Hits(server.url, keys.read(data), threads=8)
        stop = threading.Event()
        load = threading.Thread(target=shot.fire, args=(range(1, 200_001), stop))
        load.start()
        wait_for(lambda: len(shot.acked()) >= before_kill, 30)
        server.kill()
        stop.set()
        load.join(30)
    finally:
        server.kill()
    with ServerProcess(data, db_url, "--judge", "false", "--workers", str(workers),
                       port=server.port) as again:
        after = Hits(again.url, keys.read(data))
        after.fire(range(300_001, 300_101))
        wait_for(lambda: spool_empty(data), 15)
        fig.sent = len(shot.status) + len(after.status)
        count(fig, shot.acked() | after.acked(), db_url)
        fig.recovered = after.acked() == set(range(300_001, 300_101))
    fig.notes["acked_before_kill"] = len(shot.acked())
    fig.seconds = time.monotonic() - started
    return fig


def _listeners(port: int) -> int:
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


BOUNCE_DOMAIN = "bounces.example.org"


def key_rotation(base: Path, db_url: str) -> Figures:
    """``mailbeacon keys rotate`` while serve runs: new mail's pixel, click and VERP
    bounce address all work, and the old key's mail still does, with no restart."""
    fig = Figures("key rotation (live)")
    started = time.monotonic()
    data, smtp_port = base / "data", free_port()
    with ServerProcess(data, db_url, "--judge", "false", "--inbound-smtp",
                       f"127.0.0.1:{smtp_port}", "--bounce-domain", BOUNCE_DOMAIN) as server:
        old = keys.read(data)
        subprocess.run([sys.executable, "-m", "mailbeacon", "keys", "rotate", "--data-dir",
                        str(data)], check=True, capture_output=True)
        new = keys.read(data)
        shot = Hits(server.url, new, threads=1)
        shot.fire(range(1, 51))
        shot.keyring = old
        shot.fire(range(51, 101))
        click = tokens.encode(Claims(TokenKind.CLICK, 1, 7, 1, "https://example.com/x"), new)
        answer = httpx.get(f"{server.url}/c/{click}")
        fig.notes["click"] = f"{answer.status_code} {answer.headers.get('location', '')}"
        verp = tokens.encode_verp(Claims(TokenKind.BOUNCE, 1, 7), new)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("")
            code, _ = smtp.rcpt(f"bounces+{verp}@{BOUNCE_DOMAIN}")
        fig.notes["verp_rcpt"] = code
        wait_for(lambda: len(stored_counts(db_url)) >= 100, 10)
        fig.sent = len(shot.status)
        count(fig, shot.acked(), db_url)
        fig.recovered = (fig.acked == 100 and answer.status_code == 302 and code == 250)
    fig.seconds = time.monotonic() - started
    return fig


def fresh(base: Path, name: str) -> Path:
    path = base / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
