"""Load on the tracking hot path, next to nginx serving the same pixel from a file.

    .venv/bin/python bench/tracking_load.py [--duration 10] [--connections 64]
        [--db postgresql://postgres@127.0.0.1/mailbeacon_bench] [--json results.json]

In one run, with wrk (``-t2 -cN --latency``, a warm-up before each measured run):

1. nginx, 1 worker process, then ``worker_processes auto``: the 43-byte GIF
   file at ``/o/{token}.gif`` with no-cache headers, access log off;
2. ``mailbeacon serve`` on a fresh data dir: the pixel (``GET /o/{token}.gif``)
   and the click redirect (``GET /c/{token}``, wrk does not follow it).

Every target gets the same requests: N distinct valid tokens (one per
recipient), taken round-robin by each wrk thread from a different start, so no
token is hot. For mailbeacon the hits stored (counted in the store before and
after each measured run, once a probe pixel shows the server has drained) are
set against the responses received: an answered hit that is not in the store
is a lost hit. The verdict is the goal: the pixel at >= 0.5x nginx's
throughput (both nginx configurations), no hit lost. Exit status 1 when the
goal is missed.

Everything it starts (nginx, the server, wrk) is stopped on exit, Ctrl-C and
errors; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from mailbeacon.core.urls import click_url, pixel_url
from mailbeacon.services import api_keys
from mailbeacon.store.schema import events
from mailbeacon.store.sql import SqlStore, open_store
from mailbeacon.web.tracking import PIXEL

HOST = "127.0.0.1"
GOAL_RATIO = 0.5
WRK_THREADS = 2
# A mail client's User-Agent, so the stored row is the size a real one is.
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
RESULT_MARK = "TRACKING_LOAD_RESULT "
CAMPAIGN = 7  # the campaign of the measured hits
PROBE_CAMPAIGN = 8

# wrk runs this; %(...)s are filled in by wrk_script().
WRK_LUA = """\
-- Written by bench/tracking_load.py: requests round-robin over a list of paths.
local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end

function init(args)
  local headers = {["User-Agent"] = "%(agent)s"}
  reqs = {}
  for line in io.lines("%(paths)s") do
    reqs[#reqs + 1] = wrk.format("GET", line, headers)
  end
  n = #reqs
  -- Each thread starts at its own share of the list: no two send the same token together.
  i = math.floor((id - 1) * n / %(threads)d)
  s1, s2, s3, s4, s5 = 0, 0, 0, 0, 0
end

function request()
  i = i %% n + 1
  return reqs[i]
end

function response(status, headers, body)
  if status < 200 then s1 = s1 + 1
  elseif status < 300 then s2 = s2 + 1
  elseif status < 400 then s3 = s3 + 1
  elseif status < 500 then s4 = s4 + 1
  else s5 = s5 + 1 end
end

function done(summary, latency, requests)
  local s = {0, 0, 0, 0, 0}
  for _, t in ipairs(threads) do
    for k, name in ipairs({"s1", "s2", "s3", "s4", "s5"}) do
      s[k] = s[k] + (t:get(name) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"duration_us": %%d, "requests": %%d, "bytes": %%d, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "status_errors": %%d, "timeout": %%d, ' ..
    '"s1xx": %%d, "s2xx": %%d, "s3xx": %%d, "s4xx": %%d, "s5xx": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%.1f}\\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    s[1], s[2], s[3], s[4], s[5],
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes %(workers)s;
%(user)s
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=64;
    client_body_temp_path %(dir)s/tmp/body;
    proxy_temp_path %(dir)s/tmp/proxy;
    fastcgi_temp_path %(dir)s/tmp/fastcgi;
    uwsgi_temp_path %(dir)s/tmp/uwsgi;
    scgi_temp_path %(dir)s/tmp/scgi;
    types { image/gif gif; }
    server {
        listen %(host)s:%(port)d backlog=2048;
        root %(dir)s/www;
        location /o/ {
            etag off;
            expires -1;
            add_header Pragma "no-cache";
            try_files /pixel.gif =404;
        }
    }
}
"""


@dataclass
class Run:
    """One measured wrk run (wrk's numbers) and, for mailbeacon, what the store gained."""

    target: str
    wrk: dict[str, Any]  # what the Lua done() printed; latencies in microseconds
    server_cpu_s: float  # user + system CPU the server used during the run
    expected_status: str = "2xx"
    stored: int | None = None  # rows of the hit's kind the store gained
    spooling: bool = False

    @property
    def rps(self) -> float:
        return float(self.wrk["requests"]) / (self.wrk["duration_us"] / 1e6)

    def ms(self, percentile: int) -> float:
        return float(self.wrk[f"p{percentile}_us"]) / 1000

    @property
    def responses(self) -> int:
        return int(self.wrk["requests"])

    @property
    def bad_status(self) -> int:
        """1xx, 4xx and 5xx: none of them is a right answer here."""
        return int(self.wrk["s1xx"] + self.wrk["s4xx"] + self.wrk["s5xx"])

    @property
    def socket_errors(self) -> int:
        return sum(int(self.wrk[k]) for k in ("connect", "read", "write", "timeout"))

    @property
    def answered(self) -> int:
        return int(self.wrk["s2xx"] if self.expected_status == "2xx" else self.wrk["s3xx"])

    @property
    def lost(self) -> int | None:
        """Hits answered but not in the store (must be 0)."""
        return None if self.stored is None else max(self.answered - self.stored, 0)

    @property
    def unanswered(self) -> int | None:
        """Hits stored whose answer wrk never read: in flight when it stopped."""
        return None if self.stored is None else max(self.stored - self.answered, 0)

    @property
    def label(self) -> str:
        """What tells this nginx apart: "1 worker" or "auto = 2 workers"."""
        return self.target.partition("(")[2].rstrip(")") or self.target

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "rps": round(self.rps, 1),
            "lost": self.lost,
            "in_flight": self.unanswered,
        }


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{_program(proc)} exited {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout}s:\n{tail(log)}")


def _program(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    first = args[0] if isinstance(args, list | tuple) else args
    return os.fsdecode(first)  # type: ignore[arg-type]


def tail(log: Path, lines: int = 30) -> str:
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM ``proc``; kill its process group (it leads one) after ``grace`` s or a 2nd Ctrl-C."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        print(f"{_program(proc)} still running {grace:g}s after SIGTERM: killed", file=sys.stderr)
        kill(proc)
    except KeyboardInterrupt:
        kill(proc)
        raise


def kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@contextlib.contextmanager
def running(
    args: Sequence[str],
    log: Path,
    port: int,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` in a session of its own (Ctrl-C reaches only us; we stop it in order)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_for_port(port, proc, log, timeout)
        yield proc
    finally:
        stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its direct children (nginx workers), in seconds."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# -- wrk ------------------------------------------------------------------------------------


def wrk_script(workdir: Path, name: str, paths: Sequence[str]) -> Path:
    path_file = workdir / f"{name}.paths"
    path_file.write_text("".join(p + "\n" for p in paths))
    script = workdir / f"{name}.lua"
    fill = {"paths": path_file, "threads": WRK_THREADS, "agent": USER_AGENT, "mark": RESULT_MARK}
    script.write_text(WRK_LUA % fill)
    return script


def run_wrk(opts: argparse.Namespace, port: int, script: Path, seconds: float) -> dict[str, Any]:
    flags = f"-t{WRK_THREADS} -c{opts.connections} -d{seconds:g}s --latency --timeout 5s"
    cmd = [opts.wrk, *flags.split(), "-s", str(script), f"http://{HOST}:{port}/"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            result["text"] = done.stdout.replace(line, "").strip()
            return result
    raise RuntimeError(
        f"wrk printed no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )


def warm_up(opts: argparse.Namespace, port: int, script: Path) -> None:
    if opts.warmup > 0:
        run_wrk(opts, port, script, opts.warmup)


def measure(
    opts: argparse.Namespace,
    target: str,
    port: int,
    script: Path,
    pid: int,
    expected_status: str = "2xx",
) -> Run:
    cpu = cpu_seconds(pid)
    result = run_wrk(opts, port, script, opts.duration)
    return Run(target, result, cpu_seconds(pid) - cpu, expected_status)


# -- nginx ----------------------------------------------------------------------------------


def bench_nginx(opts: argparse.Namespace, workdir: Path, workers: str, script: Path) -> Run:
    home = workdir / f"nginx-{workers}"
    for sub in ("www", "tmp"):
        (home / sub).mkdir(parents=True)
    (home / "www" / "pixel.gif").write_bytes(PIXEL)
    port = free_port()
    conf = home / "nginx.conf"
    # As root nginx would drop its workers to "nobody", who cannot read a 0700 temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF % {"workers": workers, "user": user, "dir": home, "host": HOST, "port": port}
    )
    log = home / "stderr.log"
    cmd = [opts.nginx, "-p", str(home), "-c", str(conf), "-e", str(home / "error.log")]
    with running(cmd, log, port) as proc:
        check_pixel(port)
        warm_up(opts, port, script)
        label = "1 worker" if workers == "1" else f"{workers} = {os.cpu_count()} workers"
        return measure(opts, f"nginx GIF ({label})", port, script, proc.pid)


def check_pixel(port: int) -> None:
    with urllib.request.urlopen(f"http://{HOST}:{port}/o/check.gif", timeout=5) as answer:
        body = answer.read()
    if body != PIXEL:
        raise RuntimeError(f"port {port} served {len(body)} bytes, not the {len(PIXEL)}-byte GIF")


# -- mailbeacon -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Request paths with tokens signed by the server's keyring."""

    opens: list[str]  # one pixel per recipient of CAMPAIGN
    clicks: list[str]  # one click per recipient of CAMPAIGN
    probe: str  # a pixel of PROBE_CAMPAIGN: sent by settled_count(), never counted


def token_paths(data_dir: Path, public_url: str, recipients: int) -> Paths:
    keyring = keys.load_or_create(data_dir)
    base = len(public_url)

    def pixel(claims: Claims) -> str:
        return pixel_url(public_url, tokens.encode(claims, keyring))[base:]

    def click(message: int) -> str:
        url = f"https://shop.example.com/offer?id={message}"
        claims = Claims(TokenKind.CLICK, CAMPAIGN, message, 1, url)
        return click_url(public_url, tokens.encode(claims, keyring))[base:]

    return Paths(
        opens=[pixel(Claims(TokenKind.OPEN, CAMPAIGN, m)) for m in range(1, recipients + 1)],
        clicks=[click(m) for m in range(1, recipients + 1)],
        probe=pixel(Claims(TokenKind.OPEN, PROBE_CAMPAIGN, 1)),
    )


def stats(port: int, api_key: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://{HOST}:{port}/api/stats",
                                     headers={"Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        result: dict[str, Any] = json.load(answer)
        return result


def count_hits(store: SqlStore, kind: str) -> int:
    query = sa.select(sa.func.count()).select_from(events)
    with store.connect() as conn:
        found = conn.scalar(query.where(events.c.kind == kind, events.c.campaign == CAMPAIGN))
    return int(found or 0)


def settled_count(port: int, probe: str, store: SqlStore, kind: str, timeout: float = 120.0) -> int:
    """The hits of ``kind`` stored, once the hits still in the server have landed.

    When wrk stops, up to one request per connection is still in the server.
    A probe pixel is answered only after its hit is committed, and with it
    every hit queued before it; two probes with the same count between them
    mean nothing was still arriving.
    """
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{HOST}:{port}{probe}", timeout=timeout) as answer:
            answer.read()
        count = count_hits(store, kind)
        if count == last:
            return count
        last = count
        time.sleep(0.5)
    raise RuntimeError(f"hits were still arriving in the store {timeout:g}s after wrk stopped")


@contextlib.contextmanager
def fresh_store(db: str, data_dir: Path) -> Iterator[str]:
    """An empty store, as a real first run has: a new schema in PostgreSQL, dropped after."""
    if not db.startswith(("postgresql://", "postgres://")):
        yield db or f"sqlite:///{(data_dir / 'mailbeacon.db').resolve()}"
        return
    import psycopg

    schema = f"tracking_load_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{db}{'&' if '?' in db else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def serve_cmd(opts: argparse.Namespace, data_dir: Path, db_url: str, port: int) -> list[str]:
    url = f"http://{HOST}:{port}"
    flags = {
        "--data-dir": str(data_dir),
        "--http": f"{HOST}:{port}",
        "--public-url": url,
        "--db": db_url,
        "--commit-batch": str(opts.commit_batch or ""),
        "--judge": "false" if opts.no_judge else "",
        "--workers": str(opts.workers) if opts.workers > 1 else "",
    }
    cmd = [sys.executable, "-m", opts.server_module, "serve"]
    for flag, value in flags.items():
        cmd += [flag, value] if value else []
    return cmd


@dataclass
class Drain:
    """How the judge (its own process in serve) dealt with the flood once it was over."""

    backlog: int  # events not judged yet when the last measured run ended
    seconds: float  # until the judge's cursor passed the last of them

    @property
    def rate(self) -> float:
        return self.backlog / self.seconds if self.seconds > 0 else 0.0


def unjudged(store: SqlStore) -> int:
    """Events past the judge's cursor, in the stream's (tx, id) order."""
    with store.connect() as conn:
        cursor = conn.exec_driver_sql(
            "SELECT last_tx, last_event FROM judge_cursor WHERE name = 'main'").first()
        tx, last = (int(cursor[0]), int(cursor[1])) if cursor else (-1, 0)
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM events WHERE tx > ? OR (tx = ? AND id > ?)"
            if store.dialect == "sqlite" else
            "SELECT count(*) FROM events WHERE tx > %s OR (tx = %s AND id > %s)",
            (tx, tx, last)).scalar() or 0)


def judge_drain(store: SqlStore, timeout: float = 600.0) -> Drain:
    """Wait for serve's judge to catch up with everything stored; time it."""
    started = time.monotonic()
    backlog = left = unjudged(store)
    while left and time.monotonic() - started < timeout:
        time.sleep(0.2)
        left = unjudged(store)
    return Drain(backlog - left, time.monotonic() - started)


def bench_mailbeacon(
    opts: argparse.Namespace, workdir: Path, paths: Paths, scripts: tuple[Path, Path]
) -> list[Run]:
    data_dir = workdir / "mailbeacon-data"
    with fresh_store(opts.db, data_dir) as db_url:
        cmd = serve_cmd(opts, data_dir, db_url, opts.mailbeacon_port)
        return bench_server(opts, cmd, workdir, db_url, paths.probe, scripts)


def bench_server(
    opts: argparse.Namespace,
    cmd: list[str],
    workdir: Path,
    db_url: str,
    probe: str,
    scripts: tuple[Path, Path],
) -> list[Run]:
    port = opts.mailbeacon_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBEACON_")}
    runs = []
    with running(cmd, workdir / "serve.log", port, env) as proc:
        check_pixel(port)
        store = open_store(db_url, create=False)
        _, api_key = api_keys.create(store, "tracking_load bench", time.time())
        try:
            for target, script, kind, status in (
                ("mailbeacon pixel", scripts[0], "open", "2xx"),
                ("mailbeacon click", scripts[1], "click", "3xx"),
            ):
                warm_up(opts, port, script)
                before = settled_count(port, probe, store, kind)
                run = measure(opts, target, port, script, proc.pid, status)
                run.stored = settled_count(port, probe, store, kind) - before
                run.spooling = bool(stats(port, api_key)["spooling"])
                runs.append(run)
            if not opts.no_judge:
                opts.drain = judge_drain(store)
        finally:
            store.close()
    return runs


# -- report ---------------------------------------------------------------------------------

COLUMNS = [
    "target",
    "req/s",
    "p50 ms",
    "p99 ms",
    "responses",
    "2xx",
    "3xx",
    "bad status",
    "sock err",
    "srv CPU s",
    "stored",
    "lost",
    "in flight",
]


def opt(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def row(r: Run, nginx: Sequence[Run]) -> list[str]:
    w = r.wrk
    numbers = [r.responses, w["s2xx"], w["s3xx"], r.bad_status, r.socket_errors]
    return [
        r.target,
        f"{r.rps:,.0f}",
        f"{r.ms(50):.2f}",
        f"{r.ms(99):.2f}",
        *(f"{n:,}" for n in numbers),
        f"{r.server_cpu_s:.1f}",
        opt(r.stored),
        opt(r.lost),
        opt(r.unanswered),
        *(f"{r.rps / n.rps:.2f}" for n in nginx),
    ]


def table(runs: Sequence[Run], nginx: Sequence[Run]) -> str:
    head = [*COLUMNS, *(f"vs {n.label}" for n in nginx)]
    rows = [head, *(row(r, nginx) for r in runs)]
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        for cells in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(
        "stored: rows the store gained during the run; lost: answered but not stored "
        "(must be 0);\nin flight: stored, but wrk stopped before reading the answer "
        "(at most one per connection)."
    )
    return "\n".join(lines)


def verdict(pixel: Run, click: Run, nginx: Sequence[Run], connections: int) -> str:
    ratios = ", ".join(f"{pixel.rps / n.rps:.2f}x nginx {n.label}" for n in nginx)
    answered = pixel.answered + click.answered
    lost = (pixel.lost or 0) + (click.lost or 0)
    failures = [
        f"{pixel.rps / n.rps:.2f}x nginx {n.label} is below {GOAL_RATIO}x"
        for n in nginx
        if pixel.rps / n.rps < GOAL_RATIO
    ]
    if lost:
        failures.append(f"{lost:,} answered hits are not in the store")
    for r in (pixel, click):
        if (r.unanswered or 0) > connections:
            failures.append(
                f"{r.target}: {r.unanswered:,} hits stored but not answered, more "
                f"than {connections} connections can have in flight"
            )
    errors = sum(r.bad_status + r.socket_errors for r in (pixel, click))
    if errors:
        failures.append(f"{errors:,} wrong statuses, socket errors or timeouts")
    if any(r.spooling for r in (pixel, click)):
        failures.append("the store refused hits (the server is spooling)")
    summary = f"pixel at {ratios}; {lost:,} of {answered:,} answered hits lost"
    goal = f"(goal: pixel >= {GOAL_RATIO}x nginx, 0 hits lost)"
    if failures:
        return f"VERDICT: FAIL {goal}: {'; '.join(failures)}. [{summary}]"
    return f"VERDICT: PASS {goal}: {summary}."


def revision() -> str:
    """The commit the measured code is at (uncommitted edits in the checkout are not shown)."""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each run")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (-c)")
    p.add_argument(
        "--recipients",
        type=int,
        default=20_000,
        help="distinct tokens per endpoint, one per recipient",
    )
    p.add_argument(
        "--db",
        default="",
        help="store URL for mailbeacon (default: SQLite in the temp data dir); for "
        "PostgreSQL, e.g. postgresql://postgres@127.0.0.1/mailbeacon_bench, each run "
        "works in a new schema it drops afterwards",
    )
    p.add_argument(
        "--commit-batch",
        type=int,
        default=0,
        help="pass --commit-batch N to mailbeacon serve (default: its own)",
    )
    p.add_argument(
        "--no-judge",
        action="store_true",
        help="run serve with --judge false (verdicts judged elsewhere): the hot path alone",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="pass --workers N to mailbeacon serve (tracking processes; default 1)",
    )
    p.add_argument(
        "--server-module",
        default="mailbeacon",
        help="run `python -m MODULE serve` instead (a patched server, src/ untouched)",
    )
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx", help="binary")
    p.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="binary")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    opts = p.parse_args(argv)
    opts.drain = None
    if opts.duration <= 0 or opts.connections < WRK_THREADS or opts.recipients < 1:
        p.error("--duration must be > 0, --connections >= 2 and --recipients >= 1")
    if opts.workers < 1:
        p.error("--workers must be >= 1")
    if opts.duration > 600:
        p.error("--duration is at most 600 s: this bench is meant to stay short")
    return opts


def interrupted(signum: int, _frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks stop nginx and the server."""
    raise KeyboardInterrupt


def run_all(opts: argparse.Namespace, workdir: Path) -> tuple[list[Run], Run, Run]:
    port = opts.mailbeacon_port = free_port()
    paths = token_paths(workdir / "mailbeacon-data", f"http://{HOST}:{port}", opts.recipients)
    scripts = (
        wrk_script(workdir, "opens", paths.opens),
        wrk_script(workdir, "clicks", paths.clicks),
    )
    print(
        f"{opts.recipients:,} recipients, wrk -t{WRK_THREADS} -c{opts.connections} "
        f"-d{opts.duration:g}s (+{opts.warmup:g}s warm-up each), {os.cpu_count()} CPUs, "
        f"load average {loadavg()}",
        flush=True,
    )
    # nginx is given the same paths: it answers every /o/*.gif with the file.
    nginx = [bench_nginx(opts, workdir, workers, scripts[0]) for workers in ("1", "auto")]
    pixel, click = bench_mailbeacon(opts, workdir, paths, scripts)
    return nginx, pixel, click


def report(opts: argparse.Namespace, nginx: list[Run], pixel: Run, click: Run) -> bool:
    """Print the table and the verdict (and write --json); True when the goal is met."""
    store = "PostgreSQL" if opts.db.startswith("postgres") else "SQLite"
    batch = f", --commit-batch {opts.commit_batch}" if opts.commit_batch else ""
    batch += ", --judge false" if opts.no_judge else ""
    batch += f", --workers {opts.workers}" if opts.workers > 1 else ""
    module = f", python -m {opts.server_module}" if opts.server_module != "mailbeacon" else ""
    print(
        f"\nmailbeacon at {revision()}, store {store}{batch}{module}; "
        f"load average after {loadavg()}\n"
    )
    runs = [*nginx, pixel, click]
    print(table(runs, nginx))
    drain: Drain | None = getattr(opts, "drain", None)
    if drain is not None:
        print(f"\njudge (own process): {drain.backlog:,} events not yet judged when the "
              f"flood ended, judged in {drain.seconds:.1f} s = {drain.rate:,.0f} events/s")
    said = verdict(pixel, click, nginx, opts.connections)
    print("\n" + said)
    if opts.json:
        doc = {
            "options": {k: str(v) for k, v in vars(opts).items()},
            "cpus": os.cpu_count(),
            "revision": revision(),
            "load_after": loadavg(),
            "verdict": said,
            "runs": [r.as_json() for r in runs],
            "judge_drain": asdict(drain) | {"rate": drain.rate} if drain else None,
        }
        opts.json.write_text(json.dumps(doc, indent=2) + "\n")
    return said.startswith("VERDICT: PASS")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="tracking-load-"))
    try:
        nginx, pixel, click = run_all(opts, workdir)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if opts.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report(opts, nginx, pixel, click) else 1


if __name__ == "__main__":
    sys.exit(main())
