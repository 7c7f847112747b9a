"""photoslot benchmark: a DSLR Remote Pro-like load against a real `photoslot serve`.

One command starts everything it needs (embedded PostgreSQL, `photoslot emulate`, `photoslot
serve` as real processes), runs the scenarios, stops everything and prints a table:

    python bench/run.py                       # the default scenarios (below), default settings
    python bench/run.py --scenarios steady --clients 1,10,50 --latency 2

Scenarios
- steady:   N concurrent clients, each posting ~2 MB JPEGs back to back; the emulator answers
            after --latency seconds. overhead = answer time − provider time, where provider time
            is what the worker measured around the provider call (jobs.provider_ms), so upload,
            queueing, wake-ups, image checks, result writing and the answer are all "overhead".
- deadline: a provider slower than the window; every ingest must get 504 just before T.
- upload:   one 20 MB upload into a fresh `serve` (no in-process workers, so only the ingest
            path is measured); peak RSS growth of that process. uploads20: 20 at once.
- poll:     the steady scenario again with workers.notify=false (every wake-up by the 1 s poll).
- held:     500 clients waiting at once on a 20 s provider: answers, peak RSS, fds, DB connections.
- queue:    jobs per second through 1, 2, 4 `photoslot work` processes with an instant provider.
- split:    the steady scenario with `serve --workers 0` + `--split` `photoslot work` processes.
- claims:   the queue alone (bench/claim_loop.py): claim+finalize per second across 1, 2, 4 processes.
- shot:     a shot's own cost against an emulator echoing a 1 MB JPEG after exactly --latency s:
            idle CPU, CPU per shot (serve + PostgreSQL), booth-side overhead for 1 booth and for
            --bursts booths firing together, 504 timing when their windows end together, and the
            PNG → JPEG step at Gemini's real ~1 MP sizes (docs/PERFORMANCE.md "A shot's own cost").

            python bench/run.py --scenarios shot [--flame docs/images/flame.svg]

Default scenarios: steady,deadline,upload. All: steady,poll,split,deadline,upload,uploads20,held,queue,claims.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psycopg2
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from photoslot import db as dbmod  # noqa: E402  (after the path: the bench runs from a checkout)
from photoslot import jobs  # noqa: E402
from photoslot.clock import SystemClock  # noqa: E402
from photoslot.db import start_embedded  # noqa: E402
from tests.dbstate import reset_database  # noqa: E402
FIXTURE = ROOT / "tests" / "fixtures" / "dslr_landscape.jpg"
PASSWORD = "bench-password"
KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def make_jpeg(target_bytes: int) -> bytes:
    """A real photo resized and re-encoded to about `target_bytes` (a DSLR-like JPEG)."""
    from PIL import Image

    with Image.open(FIXTURE) as im:
        im = im.convert("RGB")
        scale = 1.0
        for _ in range(12):
            frame = im if scale == 1.0 else im.resize((max(8, int(im.width * scale)), max(8, int(im.height * scale))))
            buf = io.BytesIO()
            frame.save(buf, "JPEG", quality=98, subsampling=0)
            size = buf.tell()
            if 0.8 * target_bytes <= size <= 1.25 * target_bytes:
                break
            scale *= (target_bytes / size) ** 0.5
        return buf.getvalue()


def make_big_noise_jpeg(target_bytes: int) -> bytes:
    """A valid JPEG just under target_bytes (noise does not compress, so few pixels are needed)."""
    from PIL import Image

    side = 2000
    for _ in range(12):
        bands = [Image.effect_noise((side, side), 120).convert("L") for _ in range(3)]
        buf = io.BytesIO()
        Image.merge("RGB", bands).save(buf, "JPEG", quality=100, subsampling=0)
        if 0.95 * target_bytes <= buf.tell() <= target_bytes:
            break
        side = int(side * (0.975 * target_bytes / buf.tell()) ** 0.5)
    return buf.getvalue()


class RssSampler:
    """Peak resident memory of a process, sampled (portable) and from VmHWM where Linux has it."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task | None = None

    def rss(self) -> int:
        return self.proc.memory_info().rss

    def hwm(self) -> int | None:
        status = Path(f"/proc/{self.proc.pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.rss())
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self.peak = self.rss()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        if self._task:
            self._task.cancel()
        return max(self.peak, self.hwm() or 0)


class Rig:
    """Embedded PostgreSQL + emulator + serve, as real processes."""

    def __init__(self, workdir: Path, args) -> None:
        self.dir = workdir
        self.args = args
        self.procs: list[subprocess.Popen] = []
        self.dsn = args.dsn
        self.pg = None

    def start_database(self) -> None:
        if self.dsn:
            reset_database(self.dsn)  # the test suite's reset: comparable runs, quotas included
            return
        self.dsn = start_embedded(self.dir / "pg-root")

    def write_config(self, name: str, **extra) -> Path:
        cfg = {
            "data_dir": str(self.dir / "data"),
            "database": {"dsn": self.dsn, "pool_size": 20},
            # every simulated booth comes from 127.0.0.1: no per-client cap for the load generator
            "server": {"host": "127.0.0.1", "port": extra.pop("port"), "shutdown_grace_seconds": 2,
                       "max_connections_per_client": 100000},
            "workers": {"in_process": extra.pop("workers", 64), "notify": extra.pop("notify", True)},
            "ingest": {"sync_response_seconds": extra.pop("sync", 30), "sync_response_bounds": [1, 60],
                       "max_pending_jobs": 5000, "max_upload_mb": 25},
            # a provider slower than the window (deadline scenarios) is not taken down as failing
            "providers": {"gemini": {"api_key": KEY, "base_url": self.emulator_url, "max_parallel": 1000,
                                     "requests_per_minute": 1000000, "requests_per_day": 10000000,
                                     "down_after_failures": 1000000}},
            "logging": {"level": "INFO"},
        }
        path = self.dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def prepare(self, config: Path, sync: float) -> None:
        """slot-001 on Gemini, the ingest password and T_sync_response — as an operator would, by CLI."""
        self.photoslot("slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit",
                       "--prompt", "sepia", config=config)
        self.photoslot("settings", "set", "--ingest-password", PASSWORD, "--sync-timeout", str(sync), config=config)

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def photoslot(self, *args: str, config: Path) -> None:
        r = subprocess.run([sys.executable, "-m", "photoslot", "--config", str(config), *args], env=self.env(),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"photoslot {' '.join(args)} failed: {r.stderr}")

    def start_emulator(self) -> None:
        port = free_port()
        self.emulator_url = f"http://127.0.0.1:{port}"
        log = open(self.dir / "emulator.log", "w")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "photoslot", "emulate", "--port", str(port), "--latency", str(self.args.latency),
             "--gemini-key", KEY], env=self.env(), stdout=log, stderr=subprocess.STDOUT))
        wait_http(f"{self.emulator_url}/emulator/stats")

    async def control(self, **body) -> None:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.emulator_url}/emulator/control", json=body) as r:
                assert r.status == 200, await r.text()

    def start_serve(self, config: Path, port: int, name: str) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "photoslot", "--config", str(config), "serve"],
                                env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                self.stop(p)
        if not self.args.dsn:  # stop the embedded PostgreSQL before its directory is removed
            import pgserver

            pgserver.get_server(self.dir / "pg-root" / "pg").cleanup()

    def provider_ms(self, job_ids: list[str]) -> dict[str, int]:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id::text, provider_ms FROM jobs WHERE id::text = ANY(%s)", (job_ids,))
                return dict(cur.fetchall())
        finally:
            conn.close()


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _tracing() -> aiohttp.TraceConfig:
    """Time each request from the moment its headers left this client, as the server sees it.

    With many clients in one load-generator process, a request can wait in this process before
    its first byte is sent; timing from `session.post()` would charge that wait to the server.
    """
    trace = aiohttp.TraceConfig()

    async def headers_sent(session, ctx, params):
        ctx.trace_request_ctx["sent"] = time.perf_counter()

    trace.on_request_headers_sent.append(headers_sent)
    return trace



def portable_flame_title(svg: Path, title: str) -> None:
    """Replace py-spy's title (its absolute path, the pid, the output path) with one that says what
    was sampled: the graph is kept in docs/, and the project names no folder of the machine it ran on."""
    text = svg.read_text(encoding="utf-8")
    svg.write_text(re.sub(r'(<text id="title"[^>]*>)[^<]*', lambda m: m.group(1) + title, text, count=1),
                   encoding="utf-8")

async def post(session: aiohttp.ClientSession, url: str, data: bytes, *, password: str = PASSWORD):
    """One shot as DSLR Remote Pro sends it: (status, job id, seconds from the headers leaving to the
    last byte, body size, the body itself when it is an error's JSON, else None)."""
    form = aiohttp.FormData()
    form.add_field("password", password)
    form.add_field("time", dt.datetime.now().strftime("%H:%M:%S"))
    form.add_field("fileToUpload", data, filename="IMG_0001.JPG", content_type="image/jpeg")
    marks: dict = {}
    async with session.post(url, data=form, trace_request_ctx=marks) as r:
        body = await r.read()
        return (r.status, r.headers.get("X-Job-Id"), time.perf_counter() - marks["sent"], len(body),
                body if r.status != 200 else None)


async def load(url: str, data: bytes, clients: int, per_client: int, stagger: float = 0.0):
    """`clients` booths posting `per_client` photos back to back; `stagger` spreads their first
    shot over that many seconds (booths do not fire in the same millisecond)."""
    import random

    results = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 10), timeout=timeout,
                                     trace_configs=[_tracing()]) as s:
        async def client():
            await asyncio.sleep(random.uniform(0, stagger))
            for _ in range(per_client):
                results.append(await post(s, url, data))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return results, wall


async def scenario_steady(rig: Rig, args, out: dict, *, notify: bool = True, label: str = "steady",
                         split: int = 0) -> None:
    """split > 0: `serve --workers 0` answers the booths and `split` `photoslot work` processes call
    the provider (the provider SDK's CPU work leaves the event loop that answers booths)."""
    port = free_port()
    config = rig.write_config(f"{label}", port=port, notify=notify, workers=0 if split else 64)
    rig.prepare(config, 30)
    await rig.control(reset=True, latency_seconds=args.latency, output_mime="image/jpeg")
    serve = rig.start_serve(config, port, label)
    for _ in range(split):
        rig.procs.append(subprocess.Popen(
            [sys.executable, "-m", "photoslot", "--config", str(config), "work", "--concurrency", str(64 // split)],
            env=rig.env(), stdout=open(rig.dir / f"{label}-work.log", "a"), stderr=subprocess.STDOUT))
    sampler = RssSampler(serve.pid)
    sampler.start()
    photo = make_jpeg(2_000_000)
    url = f"http://127.0.0.1:{port}/ingest/slot-001"
    await load(url, photo, 2, 1)  # warm-up: imports, connections, SDK client
    rows = []
    import psutil

    cpu_of = {"serve": psutil.Process(serve.pid), "emulator": psutil.Process(rig.procs[0].pid),
              "load generator": psutil.Process(os.getpid())}

    def cpu_seconds() -> dict:
        return {k: sum(p.cpu_times()[:2]) for k, p in cpu_of.items()}

    for clients in args.clients:
        per_client = max(2, args.requests // clients)
        cpu_before = cpu_seconds()
        results, wall = await load(url, photo, clients, per_client)
        cpu_after = cpu_seconds()
        ok = [r for r in results if r[0] == 200]
        provider = rig.provider_ms([r[1] for r in ok])
        overhead = [r[2] * 1000 - provider[r[1]] for r in ok if provider.get(r[1]) is not None]
        rows.append({
            "clients": clients, "requests": len(results), "errors": len(results) - len(ok),
            "photo_bytes": len(photo),
            "overhead_ms_p50": round(pct(overhead, 50), 1), "overhead_ms_p95": round(pct(overhead, 95), 1),
            "overhead_ms_p99": round(pct(overhead, 99), 1),
            "provider_ms_p50": round(pct(list(provider.values()), 50), 1),
            "answer_s_p50": round(pct([r[2] for r in ok], 50), 3),
            "throughput_rps": round(len(ok) / wall, 2),
            # CPU spent per request by each process: on 2 cores this, not waiting, bounds the load
            "cpu_ms_per_request": {k: round((cpu_after[k] - cpu_before[k]) * 1000 / max(len(results), 1), 1)
                                   for k in cpu_of},
        })
        print(f"  [{label}] {clients:>3} clients: overhead p50 {rows[-1]['overhead_ms_p50']} ms, "
              f"p95 {rows[-1]['overhead_ms_p95']} ms, p99 {rows[-1]['overhead_ms_p99']} ms, "
              f"errors {rows[-1]['errors']}", flush=True)
    out[label] = {"rows": rows, "serve_peak_rss_mb": round(await sampler.stop() / 2**20, 1)}
    rig.stop(serve)


async def scenario_deadline(rig: Rig, args, out: dict) -> None:
    port = free_port()
    window = args.window
    config = rig.write_config("deadline", port=port)
    rig.prepare(config, window)
    await rig.control(reset=True, latency_seconds=window + 5)
    serve = rig.start_serve(config, port, "deadline")
    photo = make_jpeg(2_000_000)
    results, _ = await load(f"http://127.0.0.1:{port}/ingest/slot-001", photo, args.deadline_clients,
                            max(1, args.deadline_requests // args.deadline_clients), stagger=window)
    errors_ms = [(r[2] - window) * 1000 for r in results if r[0] == 504]
    out["deadline"] = {
        "window_s": window, "requests": len(results), "answered_504": len(errors_ms),
        "other_statuses": sorted({r[0] for r in results if r[0] != 504}),
        "early_ms_min": round(-max(errors_ms), 1) if errors_ms else None,
        "early_ms_p50": round(-pct(errors_ms, 50), 1) if errors_ms else None,
        "early_ms_max": round(-min(errors_ms), 1) if errors_ms else None,
        "late": sum(1 for e in errors_ms if e > 0),
    }
    print(f"  [deadline] {out['deadline']}", flush=True)
    rig.stop(serve)


async def scenario_upload(rig: Rig, args, out: dict, *, concurrent: int = 1, label: str = "upload") -> None:
    """`concurrent` 20 MB uploads into a fresh `serve --workers 0`: only the ingest path runs in the
    measured process (a worker would hold the photo for the provider call, which is not upload cost)."""
    port = free_port()
    config = rig.write_config(label, port=port, workers=0, sync=3)
    rig.prepare(config, 3)
    serve = rig.start_serve(config, port, label)
    sampler = RssSampler(serve.pid)
    small = make_jpeg(500_000)
    url = f"http://127.0.0.1:{port}/ingest/slot-001"
    await load(url, small, 2, 2)  # warm-up: the same code path with a small photo
    before = sampler.hwm() or sampler.rss()
    sampler.start()
    big = make_big_noise_jpeg(20 * 2**20)
    results, _ = await load(url, big, concurrent, 1)
    peak = await sampler.stop()
    out[label] = {"uploads": concurrent, "upload_mb": round(len(big) / 2**20, 1),
                  "statuses": sorted({r[0] for r in results}),
                  "rss_before_mb": round(before / 2**20, 1), "rss_peak_mb": round(peak / 2**20, 1),
                  "rss_growth_mb": round((peak - before) / 2**20, 1)}
    print(f"  [{label}] {out[label]}", flush=True)
    rig.stop(serve)


async def scenario_held(rig: Rig, args, out: dict) -> None:
    """500 booths waiting at once on a 20 s provider: every one answered, and what holding them costs."""
    import psutil

    port = free_port()
    clients = args.held_clients
    config = rig.write_config("held", port=port, workers=clients, sync=40)
    rig.prepare(config, 40)
    await rig.control(reset=True, latency_seconds=args.held_latency, output_mime="image/jpeg")
    serve = rig.start_serve(config, port, "held")
    proc = psutil.Process(serve.pid)
    sampler = RssSampler(serve.pid)
    sampler.start()
    photo = make_jpeg(250_000)
    peaks = {"fds": 0, "db_connections": 0}

    async def watch():
        while True:
            peaks["fds"] = max(peaks["fds"], proc.num_fds() if hasattr(proc, "num_fds") else 0)
            conn = psycopg2.connect(rig.dsn)
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND application_name NOT LIKE 'bench%%' AND pid <> pg_backend_pid()")
                peaks["db_connections"] = max(peaks["db_connections"], cur.fetchone()[0])
            conn.close()
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    results, wall = await load(f"http://127.0.0.1:{port}/ingest/slot-001", photo, clients, 1, stagger=1.0)
    watcher.cancel()
    statuses: dict[int, int] = {}
    for r in results:
        statuses[r[0]] = statuses.get(r[0], 0) + 1
    out["held"] = {"clients": clients, "provider_s": args.held_latency, "photo_kb": len(photo) // 1024,
                   "statuses": statuses, "answer_s_max": round(max(r[2] for r in results), 2),
                   "serve_peak_rss_mb": round(await sampler.stop() / 2**20, 1), "peak_fds": peaks["fds"],
                   "peak_db_connections": peaks["db_connections"]}
    print(f"  [held] {out['held']}", flush=True)
    rig.stop(serve)


async def enqueue_jobs(dsn: str, n: int, uploads: Path | None = None, photo: bytes = b"") -> list[str]:
    """`n` jobs for slot-001, queued by jobs.enqueue as an ingest queues them (with an upload each
    when `uploads` is given; the claims scenario needs none)."""
    database = await dbmod.connect(dsn, pool_size=2, apply_schema=False)
    try:
        slot = await database.fetchone("ingest_context", slot_id="slot-001")
        now = SystemClock().now()
        ids = []
        for i in range(n):
            job_id = jobs.new_job_id()
            path = None
            if uploads is not None:
                path = uploads / f"{job_id}.jpg"
                path.write_bytes(photo)
            # a microsecond apart: the claim order (oldest first) is the insertion order
            created = now + dt.timedelta(microseconds=i)
            await jobs.enqueue(database, job_id=job_id, slot=slot, now=created,
                               expires_at=created + dt.timedelta(hours=1), upload_path=path and str(path),
                               upload_mime="image/jpeg" if path else None, upload_size=len(photo) if path else None,
                               metadata={})
            ids.append(str(job_id))
        return ids
    finally:
        await database.close()


async def scenario_queue(rig: Rig, args, out: dict) -> None:
    """Jobs claimed and finished per second by 1, 2, 4 `photoslot work` processes, provider instant."""
    port = free_port()
    config = rig.write_config("queue", port=port, workers=8)
    rig.prepare(config, 30)
    await rig.control(reset=True, latency_seconds=0, output_mime="image/jpeg")
    tiny = make_jpeg(20_000)
    uploads = rig.dir / "data" / "media" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    rows = []
    for procs in args.queue_procs:
        n = args.queue_jobs
        ids = await enqueue_jobs(rig.dsn, n, uploads, tiny)
        conn = psycopg2.connect(rig.dsn)
        conn.autocommit = True
        started = time.perf_counter()
        workers = [subprocess.Popen([sys.executable, "-m", "photoslot", "--config", str(config), "work",
                                     "--concurrency", "8"], env=rig.env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for _ in range(procs)]
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT count(*) FROM jobs WHERE id = ANY(%s::uuid[]) AND NOT is_finalized",
                            (ids,))
                if cur.fetchone()[0] == 0:
                    break
                time.sleep(0.05)
            cur.execute("SELECT min(started_at), max(finalized_at), count(*) FILTER (WHERE status = 'succeeded'),"
                        " sum(attempts) FROM jobs WHERE id = ANY(%s::uuid[])", (ids,))
            first, last, ok, attempts = cur.fetchone()
        conn.close()
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(20)
        span = (last - first).total_seconds()
        rows.append({"processes": procs, "jobs": n, "succeeded": ok, "claims": attempts,
                     "jobs_per_s": round(n / span, 1), "wall_s_incl_start": round(time.perf_counter() - started, 1)})
        print(f"  [queue] {rows[-1]}", flush=True)
    out["queue"] = rows


async def scenario_claims(rig: Rig, args, out: dict) -> None:
    """The queue mechanism alone (bench/claim_loop.py): claims per second across 1, 2, 4 processes."""
    port = free_port()
    config = rig.write_config("claims", port=port)
    rig.prepare(config, 30)
    rows = []
    for procs in args.queue_procs:
        n = args.claim_jobs
        conn = psycopg2.connect(rig.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DELETE FROM jobs")
        conn.close()
        await enqueue_jobs(rig.dsn, n)
        started = time.perf_counter()
        loops = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "claim_loop.py"), rig.dsn, "4", "1000",
                                   str(rig.dir / "data" / "media")], env=rig.env(), stdout=subprocess.PIPE, text=True)
                 for _ in range(procs)]
        reports = [json.loads(p.communicate()[0]) for p in loops]
        wall = time.perf_counter() - started
        claimed = sum(r["claimed"] for r in reports)
        rows.append({"processes": procs, "jobs": n, "claimed": claimed,
                     "claims_per_s": round(claimed / max(r["seconds"] for r in reports), 0),
                     "wall_s": round(wall, 1)})
        print(f"  [claims] {rows[-1]}", flush=True)
    out["claims"] = rows


class PgCpu:
    """CPU seconds of the whole PostgreSQL server (postmaster, its background processes and every
    backend, live or reaped). Read it only around stretches where the bench itself sends no SQL."""

    def __init__(self, dsn: str) -> None:
        import psutil

        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                # while the connection is open: its backend ends with it
                self.postmaster = psutil.Process(cur.fetchone()[0]).parent()
        finally:
            conn.close()

    def seconds(self) -> float:
        import psutil

        t = self.postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in self.postmaster.children():
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.NoSuchProcess:  # reaped meanwhile: its time is in children_* next read
                pass
        return total


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


async def burst(session: aiohttp.ClientSession, url: str, data: bytes, booths: int, rounds: int,
                pause: float = 1.0) -> list:
    """`booths` shots sent in the same instant, `rounds` times: windows that start (and end) together."""
    results = []
    for _ in range(rounds):
        results += await asyncio.gather(*(post(session, url, data) for _ in range(booths)))
        await asyncio.sleep(pause)
    return results


def png_to_jpeg_figures(repeat: int = 7) -> list[dict]:
    """CPU ms of serve's PNG → JPEG step (media.encode_output) for the emulator's sepia answer at
    Gemini's real output sizes, and at a 6 MP photo's full size (what the emulator used to send)."""
    from PIL import Image

    from photoslot import media
    from photoslot.emulator import transform

    rows = []
    for size in ((1024, 1024), (1248, 832), (1344, 768), (3000, 2000)):
        with Image.open(FIXTURE) as im:
            src = im.convert("RGB").resize(size)
        buf = io.BytesIO()
        src.save(buf, "JPEG", quality=95)
        png = transform.transform(buf.getvalue(), "image/png", "input")
        times = []
        for _ in range(repeat):
            started = time.process_time()
            out, mime = media.encode_output(png, "jpeg")
            times.append((time.process_time() - started) * 1000)
        rows.append({"size": f"{size[0]}x{size[1]}", "megapixels": round(size[0] * size[1] / 1e6, 2),
                     "png_kb": len(png) // 1024, "jpeg_kb": len(out) // 1024,
                     "cpu_ms_p50": round(pct(times, 50), 1), "cpu_ms_min": round(min(times), 1)})
    return rows


async def scenario_shot(rig: Rig, args, out: dict) -> None:
    """A shot's own cost, as the booth and the machine see it: the Gemini path against an emulator
    that echoes the 1 MB photo after exactly --latency seconds (no image work on its side).

    - idle: CPU of `serve` + its PostgreSQL over --idle seconds with no shots;
    - cpu: one booth, --shots shots one after another: CPU ms per shot of serve + PostgreSQL, and
      overhead = answer time at the booth − the fixed latency (not the worker's measurement);
    - burst: 15 and 50 booths firing in the same instant, rounds of them: overhead p50/p95;
    - late: windows that end together (provider slower than T): how late/early each 504 is;
    - png: serve's PNG → JPEG step at the model's ~1 MP sizes (in this process)."""
    import psutil

    latency = args.latency
    port = free_port()
    config = rig.write_config("shot", port=port)
    rig.prepare(config, 30)
    await rig.control(reset=True, latency_seconds=latency, output_size="echo")
    serve = rig.start_serve(config, port, "shot")
    serve_proc = psutil.Process(serve.pid)
    pg = PgCpu(rig.dsn)
    emulator = psutil.Process(rig.procs[0].pid)

    def cpu() -> dict:
        return {"serve": sum(serve_proc.cpu_times()[:2]), "postgres": pg.seconds(),
                "emulator": sum(emulator.cpu_times()[:2])}

    photo = make_jpeg(1_000_000)
    url = f"http://127.0.0.1:{port}/ingest/slot-001"
    result: dict = {"photo_bytes": len(photo), "latency_s": latency}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200), timeout=timeout,
                                     trace_configs=[_tracing()]) as s:
        for _ in range(3):  # warm-up: imports, pool connections, the SDK client
            await post(s, url, photo)
        await asyncio.sleep(5)  # let the warm-up's background writes and timers settle

        if args.idle:
            la = load_average()
            before = cpu()
            await asyncio.sleep(args.idle)
            after = cpu()
            result["idle"] = {"seconds": args.idle, "load_average": la,
                              **{f"{k}_percent_of_core": round((after[k] - before[k]) * 100 / args.idle, 2)
                                 for k in ("serve", "postgres")}}
            print(f"  [shot] idle: {result['idle']}", flush=True)

        la = load_average()
        before = cpu()
        shots = [await post(s, url, photo) for _ in range(args.shots)]
        after = cpu()
        ok = [r for r in shots if r[0] == 200]
        overhead = [r[2] * 1000 - latency * 1000 for r in ok]
        per = {k: round((after[k] - before[k]) * 1000 / len(shots), 1) for k in before}
        result["cpu"] = {"shots": len(shots), "errors": len(shots) - len(ok), "load_average": la,
                         "cpu_ms_per_shot": per, "photoslot_ms_per_shot": round(per["serve"] + per["postgres"], 1),
                         "overhead_ms_p50": round(pct(overhead, 50), 1),
                         "overhead_ms_p95": round(pct(overhead, 95), 1)}
        print(f"  [shot] 1 booth: {result['cpu']}", flush=True)

        if args.flame:  # a separate run of the same shots: the sampler's own cost stays out of the figures
            spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
            fmt = "raw" if args.flame.suffix == ".txt" else "flamegraph"  # raw: collapsed stacks, to count
            flame = subprocess.Popen([spy, "record", "-p", str(serve.pid), "-o", str(args.flame), "-r", "500",
                                      "-f", fmt, "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
            for _ in range(args.shots):
                await post(s, url, photo)
            flame.send_signal(signal.SIGINT)
            flame.wait(60)
            if fmt == "flamegraph":  # py-spy titles the graph with its own command line: machine paths
                portable_flame_title(args.flame, f"{args.shots} one-booth shots: serve sampled by py-spy at 500 Hz")

        rows = []
        for booths in args.bursts:
            rounds = max(1, args.burst_shots // booths)
            la = load_average()
            before = cpu()
            results = await burst(s, url, photo, booths, rounds)
            after = cpu()
            ok = [r for r in results if r[0] == 200]
            overhead = [r[2] * 1000 - latency * 1000 for r in ok]
            rows.append({"booths": booths, "shots": len(results), "errors": len(results) - len(ok),
                         "load_average": la, "overhead_ms_p50": round(pct(overhead, 50), 1),
                         "overhead_ms_p95": round(pct(overhead, 95), 1), "overhead_ms_max": round(max(overhead), 1),
                         "photoslot_cpu_ms_per_shot": round((after["serve"] - before["serve"] + after["postgres"]
                                                             - before["postgres"]) * 1000 / len(results), 1)})
            print(f"  [shot] {rows[-1]}", flush=True)
        result["bursts"] = rows

        window = args.window
        await rig.control(latency_seconds=window + 5)
        rig.photoslot("settings", "set", "--sync-timeout", str(window), config=config)
        await asyncio.sleep(1.5)  # the live setting reaches serve
        late_rows = []
        for booths in args.bursts:
            rounds = max(1, args.late_shots // booths)
            la = load_average()
            results = await burst(s, url, photo, booths, rounds, pause=0.5)
            ms = [(r[2] - window) * 1000 for r in results if r[0] == 504]
            late_rows.append({"booths": booths, "window_s": window, "shots": len(results), "answered_504": len(ms),
                              "load_average": la, "late": sum(1 for m in ms if m > 0),
                              "latest_ms": round(max(ms), 1) if ms else None,
                              "early_ms_p50": round(-pct(ms, 50), 1) if ms else None,
                              "earliest_ms": round(-min(ms), 1) if ms else None})
            print(f"  [shot] windows ending together: {late_rows[-1]}", flush=True)
        result["late"] = late_rows
    rig.stop(serve)
    la = load_average()
    result["png_to_jpeg"] = {"load_average": la, "rows": png_to_jpeg_figures()}
    print(f"  [shot] PNG → JPEG: {result['png_to_jpeg']}", flush=True)
    out["shot"] = result


def render_shot(r: dict) -> list[str]:
    lines = [f"shot: 1 MB JPEG ({r['photo_bytes']} bytes), Gemini path, emulator echo after {r['latency_s']} s"]
    if "idle" in r:
        i = r["idle"]
        lines.append(f"- idle {i['seconds']} s: serve {i['serve_percent_of_core']} % of a core, PostgreSQL "
                     f"{i['postgres_percent_of_core']} % (load average {i['load_average']})")
    c = r["cpu"]
    lines.append(f"- 1 booth, {c['shots']} shots: CPU ms per shot serve {c['cpu_ms_per_shot']['serve']} + PostgreSQL "
                 f"{c['cpu_ms_per_shot']['postgres']} = {c['photoslot_ms_per_shot']} (emulator "
                 f"{c['cpu_ms_per_shot']['emulator']}); overhead p50 {c['overhead_ms_p50']} / p95 {c['overhead_ms_p95']} ms; "
                 f"errors {c['errors']} (load average {c['load_average']})")
    lines.append("| booths at once | shots | errors | overhead p50 ms | p95 ms | max ms | photoslot CPU ms/shot | load average |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---|")
    for b in r["bursts"]:
        lines.append(f"| {b['booths']} | {b['shots']} | {b['errors']} | {b['overhead_ms_p50']} | {b['overhead_ms_p95']} | "
                     f"{b['overhead_ms_max']} | {b['photoslot_cpu_ms_per_shot']} | {b['load_average']} |")
    lines.append("| windows ending together | T s | 504s | late | latest ms | early p50 ms | earliest ms | load average |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---|")
    for d in r["late"]:
        lines.append(f"| {d['booths']} | {d['window_s']} | {d['answered_504']}/{d['shots']} | {d['late']} | "
                     f"{d['latest_ms']} | {d['early_ms_p50']} | {d['earliest_ms']} | {d['load_average']} |")
    lines.append(f"PNG → JPEG in serve (media.encode_output), load average {r['png_to_jpeg']['load_average']}:")
    for p in r["png_to_jpeg"]["rows"]:
        lines.append(f"- {p['size']} ({p['megapixels']} MP, PNG {p['png_kb']} KB → JPEG {p['jpeg_kb']} KB): "
                     f"{p['cpu_ms_p50']} ms CPU p50 (min {p['cpu_ms_min']})")
    return lines


def machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def render(out: dict) -> str:
    lines = [f"machine: {out['machine']}", ""]
    if "shot" in out:
        lines += render_shot(out["shot"]) + [""]
    for label in [k for k in out if k.startswith(("steady", "poll", "split"))]:
        lines.append(f"{label} (serve peak RSS {out[label]['serve_peak_rss_mb']} MB)")
        lines.append("| clients | requests | errors | overhead p50 ms | p95 ms | p99 ms | provider p50 ms | req/s "
                     "| CPU ms/request: serve / emulator / load generator |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in out[label]["rows"]:
            cpu = r.get("cpu_ms_per_request", {})
            lines.append(f"| {r['clients']} | {r['requests']} | {r['errors']} | {r['overhead_ms_p50']} | "
                         f"{r['overhead_ms_p95']} | {r['overhead_ms_p99']} | {r['provider_ms_p50']} | "
                         f"{r['throughput_rps']} | {' / '.join(str(v) for v in cpu.values())} |")
        lines.append("")
    if "deadline" in out:
        d = out["deadline"]
        lines.append(f"deadline: {d['answered_504']}/{d['requests']} answered 504 with T={d['window_s']} s; "
                     f"early by min {d['early_ms_min']} / p50 {d['early_ms_p50']} / max {d['early_ms_max']} ms; "
                     f"late: {d['late']}")
    for label in ("upload", "uploads20"):
        if label in out:
            u = out[label]
            lines.append(f"{label}: {u['uploads']} × {u['upload_mb']} MB at once (statuses {u['statuses']}): "
                         f"RSS {u['rss_before_mb']} → peak {u['rss_peak_mb']} MB (+{u['rss_growth_mb']} MB)")
    if "held" in out:
        h = out["held"]
        lines.append(f"held: {h['clients']} clients on a {h['provider_s']} s provider ({h['photo_kb']} KB photos): "
                     f"statuses {h['statuses']}, slowest answer {h['answer_s_max']} s, serve peak RSS "
                     f"{h['serve_peak_rss_mb']} MB, peak fds {h['peak_fds']}, peak DB connections {h['peak_db_connections']}")
    if "queue" in out:
        lines.append("| work processes | jobs | claims | jobs/s |")
        lines.append("|---:|---:|---:|---:|")
        for r in out["queue"]:
            lines.append(f"| {r['processes']} | {r['jobs']} | {r['claims']} | {r['jobs_per_s']} |")
    if "claims" in out:
        lines.append("| claim-loop processes (4 tasks each) | jobs | claims/s |")
        lines.append("|---:|---:|---:|")
        for r in out["claims"]:
            lines.append(f"| {r['processes']} | {r['claimed']} | {r['claims_per_s']} |")
    if "steady" in out and "poll-only" in out:
        a = {r["clients"]: r for r in out["steady"]["rows"]}
        b = {r["clients"]: r for r in out["poll-only"]["rows"]}
        for c in sorted(set(a) & set(b)):
            ratio = b[c]["overhead_ms_p50"] / max(a[c]["overhead_ms_p50"], 0.1)
            lines.append(f"wake-ups at {c} clients: NOTIFY p50 {a[c]['overhead_ms_p50']} ms vs poll-only "
                         f"{b[c]['overhead_ms_p50']} ms → {ratio:.0f}× better")
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="steady,deadline,upload")
    ap.add_argument("--clients", default="1,10,50", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--requests", type=int, default=100, help="requests per concurrency level (at least 2 per client)")
    ap.add_argument("--latency", type=float, default=2.0, help="emulated provider latency, seconds")
    ap.add_argument("--window", type=float, default=3.0, help="T_sync_response for the deadline scenario")
    ap.add_argument("--deadline-clients", type=int, default=50)
    ap.add_argument("--deadline-requests", type=int, default=200)
    ap.add_argument("--split", type=int, default=1, help="`photoslot work` processes in the split scenario")
    ap.add_argument("--held-clients", type=int, default=500)
    ap.add_argument("--held-latency", type=float, default=20.0)
    ap.add_argument("--queue-procs", default="1,2,4", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--queue-jobs", type=int, default=400)
    ap.add_argument("--claim-jobs", type=int, default=5000)
    ap.add_argument("--shots", type=int, default=40, help="shot scenario: one booth's shots for the CPU figure")
    ap.add_argument("--bursts", default="15,50", type=lambda s: [int(x) for x in s.split(",")],
                    help="shot scenario: booths firing in the same instant")
    ap.add_argument("--burst-shots", type=int, default=150, help="shot scenario: shots per burst size (in rounds)")
    ap.add_argument("--late-shots", type=int, default=150, help="shot scenario: 504s per burst size (in rounds)")
    ap.add_argument("--idle", type=float, default=60, help="shot scenario: seconds of idle serve measured (0: skip)")
    ap.add_argument("--flame", type=Path, default=None, help="shot scenario: py-spy flame graph of serve (1 booth)")
    ap.add_argument("--dsn", default=None, help="use this PostgreSQL (its photoslot tables are dropped!)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="photoslot-bench-"))
    rig = Rig(workdir, args)
    out: dict = {"machine": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv])}
    try:
        rig.start_database()
        rig.start_emulator()
        scenarios = args.scenarios.split(",")
        if "shot" in scenarios:
            await scenario_shot(rig, args, out)
        if "steady" in scenarios:
            await scenario_steady(rig, args, out)
        if "poll" in scenarios:
            await scenario_steady(rig, args, out, notify=False, label="poll-only")
        if "split" in scenarios:
            await scenario_steady(rig, args, out, label="split", split=args.split)
        if "deadline" in scenarios:
            await scenario_deadline(rig, args, out)
        if "upload" in scenarios:
            await scenario_upload(rig, args, out)
        if "uploads20" in scenarios:
            await scenario_upload(rig, args, out, concurrent=20, label="uploads20")
        if "held" in scenarios:
            await scenario_held(rig, args, out)
        if "queue" in scenarios:
            await scenario_queue(rig, args, out)
        if "claims" in scenarios:
            await scenario_claims(rig, args, out)
    finally:
        rig.close()
    print()
    print(render(out))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")


if __name__ == "__main__":
    if sys.platform == "win32":
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())
    asyncio.run(main())
