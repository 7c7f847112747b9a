"""A compressed event day: 15 booths, a realistic provider and every fault we know, against real
photoslot processes, measured from what really happened.

    python bench/event_day.py                          # 20 minutes standing for an 8-hour day
    python bench/event_day.py --minutes 2 --json day.json --svg day.svg

What runs (each a real process, started as a studio starts them): `photoslot serve` (6 workers) on
its embedded PostgreSQL, one `photoslot work` (6 workers) on the same data dir, `photoslot
emulate` as Gemini (slots 1–12) and Turbotext (slots 13–15). Around them, from this process:

- 15 booths, each from its own loopback address (127.0.0.11 … 127.0.0.25), each shooting the
  fixture photo (a 1 MB camera JPEG) as DSLR Remote Pro does (bench/run.py's `post`), every 20–60 s
  of event time; now and then a group arrives and most booths shoot within the same second; booth
  15 is a PC with a stale second profile: a quarter of its shots carry the old ingest password;
- the provider: latency drawn from 5–25 s, NO_IMAGE 5 %, safety blocks 2 %, bursts of 429
  (the emulator's run-time control);
- an admin using the web pages (sign-in, the CSRF token, a slot saved, test shots, a job
  cancelled, the statistics), a password guesser and a client trickling its photo, both all day;
- `/healthz` probed once a second; `/metrics` read every few seconds; the media root checked
  against the database every few seconds for any file past its TTL;
- on a schedule: a provider outage, a PostgreSQL restart, a `kill -9` of `work` (its service
  manager starts it again), a `serve` restart, the media disk filled past the alert and freed,
  T_sync_response changed from 48 to 60 s, results kept only a quarter of the run so the
  sweeper deletes them while booths shoot; at the end SIGTERM to every process at once.

Time. The day's schedule is compressed by 480/M (20 minutes: 24×). Each shot and the product's own
timers run `--speed` (default 4) times faster than real: the response window is 48/4 = 12 s, the
provider answers in 1.25–6.25 s, a booth shoots every 5–15 s, leases, heartbeats, the provider's
cool-down, the sweeper interval, the orphan grace and the shutdown grace are divided by 4 too. The
ratios that decide the SLA (provider time against the window, arrivals against parallel calls)
are those of a real day; the run holds a sixth of a real day's shots.

What it measures (`--json FILE`, exactly these keys):

- `requests`: booth requests sent (both of booth 15's profiles);
- `answered_200_share_outside_outage`, `answered_504_share_outside_outage`: among the booths'
  shots with the right password whose time in flight does not touch an outage window — the
  provider outage (plus one cool-down and one provider call for the probe), the PostgreSQL
  restart (plus 2 s for the pool's next connection), the `serve` restart (SIGTERM to listening
  again) — the share answered 200 / 504. A refused connection or a shot without an answer counts
  against it; the admin's own cancel and the provider's content refusals (502 provider_refused:
  the provider judged the photo) are counted apart (`--details`), as is the share with them;
- `availability`: the share of once-a-second `/healthz` probes answered 200 within 1 s, outside the
  planned `serve` restart (from its SIGTERM until it listens again; reported on its own);
- `lost_jobs`: booth requests that were sent and got no answer (connection dropped, no answer
  within the window + 15 s), plus job rows not final after the run;
- `files_after_ttl`: files seen in the media root, during the run or after it, past their TTL by
  more than two sweeper intervals (an upload of a finished job, a result past its retention, a
  public link's file past its link, a file no row points to past the orphan grace);
- `rss_growth_mb`, `fd_growth`: the largest growth of a `serve` or `work` process's resident
  memory / open files between the end of its warm-up (a quarter of its life, at most 3 minutes)
  and its last sample before the stop;
- `db_connections_leaked`: connections a process's pool still counted as handed out when it
  closed the pool at a stop (the `db_pool_closed` line), summed over every clean stop;
- `stop_seconds`: the slowest of serve, work and emulate from the final SIGTERM to its exit;
- `errors_unexplained`: ERROR lines (and tracebacks) in the processes' logs that no injected
  fault explains (each fault explains named events within its window).

`--svg FILE` draws answers by status per bin, p95 against the window, resident memory over time
and the faults; `--details FILE` writes everything else (the timeline, each process's stop, the
embedded PostgreSQL's stop, every violation and unexplained line).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import html
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import psutil
import psycopg2
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import KEY, _tracing, free_port, machine, pct, post, wait_http  # noqa: E402  (the load bench's booth)

from photoslot import embedded_pg  # noqa: E402
from photoslot.alerts import disk_usage  # noqa: E402

PHOTO = ROOT / "tests" / "fixtures" / "dslr_landscape.jpg"
TEST_SHOT = ROOT / "tests" / "fixtures" / "small_photo.png"
PASSWORD = "event-day-password-2"
OLD_PASSWORD = "event-day-password-1"  # booth 15's stale second profile
BOOTHS = 15
TURBOTEXT_SLOTS = {13, 14, 15}
DAY_SECONDS = 8 * 3600
KEYS = ("requests", "answered_200_share_outside_outage", "answered_504_share_outside_outage", "availability",
        "lost_jobs", "files_after_ttl", "rss_growth_mb", "fd_growth", "db_connections_leaked", "stop_seconds",
        "errors_unexplained")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


# ---------------------------------------------------------------- the day's clock and scales

@dataclass
class Scale:
    minutes: float
    speed: float

    @property
    def run_seconds(self) -> float:
        return self.minutes * 60

    @property
    def schedule(self) -> float:
        """Event seconds per real second of the day's schedule."""
        return DAY_SECONDS / self.run_seconds

    def shot(self, event_seconds: float) -> float:
        """A shot-level duration (window, latency, cadence, the product's timers) in real seconds."""
        return event_seconds / self.speed


@dataclass
class Shot:
    booth: int
    profile: str           # "booth" or "stale"
    sent: float            # seconds since the day began
    done: float = 0.0
    status: int | None = None
    outcome: str = ""      # 200 → "succeeded"; an error's failure_reason; or what went wrong on the wire
    job_id: str | None = None
    seconds: float | None = None
    window: float = 0.0    # the response window in force when it was sent (as the bench set it)


@dataclass
class Window:
    label: str
    start: float
    end: float | None = None
    tail: float = 0.0      # how long after `end` shots may still feel it


class Day:
    def __init__(self, args) -> None:
        self.args = args
        self.scale = Scale(args.minutes, args.speed)
        self.dir = Path(tempfile.mkdtemp(prefix="photoslot-event-day-"))
        self.data = self.dir / "data"
        self.pgdata = self.data / "pg"
        self.config = self.dir / "photoslot.yaml"
        self.port = free_port()
        self.emu_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.emu = f"http://127.0.0.1:{self.emu_port}"
        self.t0 = 0.0
        self.procs: dict[str, subprocess.Popen] = {}
        self.instances: list[dict] = []  # every serve, work and emulate process started: name, pid, samples
        self.shots: list[Shot] = []
        self.probes: list[tuple[float, bool]] = []
        self.outages: list[Window] = []
        self.timeline: list[dict] = []
        self.window = self.scale.shot(48)
        self.window_changes: list[tuple[float, float]] = [(0.0, self.window)]
        self.ttl_violations: dict[str, dict] = {}
        self.pool_samples: list[tuple[float, float]] = []
        self.quota_max: dict[str, int] = {}
        self.admin_actions: list[dict] = []
        self.guesses: dict[int, int] = {}
        self.trickles: list[dict] = []
        self.stops: dict[str, dict] = {}
        self.ending = asyncio.Event()
        self.background: list[asyncio.Task] = []
        self.photo = PHOTO.read_bytes()
        self.dsn: str | None = None
        self.disk: dict = {}
        self.rng = random.Random(args.seed)
        self.wall0 = utcnow()
        self.details: dict = {}

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, what: str, **detail) -> None:
        entry = {"t": round(self.now(), 2), "event_time": self.event_clock(), "what": what, **detail}
        self.timeline.append(entry)
        print(f"  [{entry['t']:7.1f} s | {entry['event_time']}] {what} {json.dumps(detail) if detail else ''}",
              flush=True)

    def event_clock(self, t: float | None = None) -> str:
        seconds = (self.now() if t is None else t) * self.scale.schedule
        return f"{int(seconds // 3600):d}:{int(seconds % 3600 // 60):02d}"

    # ------------------------------------------------------------ set-up

    def write_config(self) -> None:
        sc = self.scale
        self.disk = self.disk_plan()
        cfg = {
            "data_dir": str(self.data),
            "server": {"host": "127.0.0.1", "port": self.port, "shutdown_grace_seconds": sc.shot(10)},
            "workers": {"in_process": 6, "lease_seconds": sc.shot(10), "heartbeat_seconds": sc.shot(3),
                        "poll_interval_seconds": max(0.25, sc.shot(1))},
            "ingest": {"sync_response_seconds": sc.shot(48), "sync_response_bounds": [sc.shot(45), sc.shot(60)]},
            # results live a quarter of the run: the sweeper deletes them while the booths shoot
            "results": {"retention_hours": sc.run_seconds / 4 / 3600},
            "providers": {
                # a studio's paid plan: 8 calls at once (15 booths × one shot per 40 s × 15 s each
                # need 5.6), a day's quota for a whole event day of shots and their retries
                "gemini": {"api_key": KEY, "base_url": self.emu, "max_parallel": 8, "requests_per_minute": 500,
                           "requests_per_day": 20000, "down_cooldown_seconds": sc.shot(15)},
                "turbotext": {"api_key": KEY, "base_url": self.emu, "max_parallel": 2,
                              "poll_interval_seconds": sc.shot(2), "down_cooldown_seconds": sc.shot(15)},
            },
            "sweeper": {"interval_seconds": sc.shot(15), "orphan_grace_seconds": sc.shot(120)},
            "alerts": {"window_minutes": sc.shot(5 * 60) / 60,
                       "media_disk_used_percent": self.disk["threshold_percent"]},
            "logging": {"level": "INFO"},
        }
        self.config.write_text(yaml.safe_dump(cfg))

    def disk_plan(self) -> dict:
        """The media disk's alert, lowered to just above today's use, so that a file of a few GB
        allocated beside the media root (really allocated: the blocks are taken) fills the disk past
        it; freeing the file clears it. No size-limited folder is needed."""
        self.data.mkdir(parents=True, exist_ok=True)
        total, used, free = disk_usage(self.data)
        margin = max(0.25, min(1.0, 100 * 0.2 * free / total))  # the fill takes ≤ 30 % of the free space
        return {"total": total, "used_at_start": used, "threshold_percent": round(100 * used / total + margin, 3),
                "margin_percent": margin}

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        for name in ("PHOTOSLOT_DSN", "PHOTOSLOT_CONFIG"):
            env.pop(name, None)
        return env

    def photoslot(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "photoslot", "--config", str(self.config), *args], env=self.env(),
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"photoslot {' '.join(args)}: {r.stderr.strip()}")
        return r

    async def prepare(self) -> None:
        """15 slots over the admin API (as a studio's set-up script would), the password by the CLI."""
        password = first_start_password(self.data, "serg")
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.base}/api/login", json={"username": "serg", "password": password}) as r:
                auth = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
            for n in range(1, BOOTHS + 1):
                body = {"name": f"Booth {n}", "provider_id": "turbotext" if n in TURBOTEXT_SLOTS else "gemini",
                        "operation_id": "image_edit", "enabled": True,
                        "settings_json": {"prompt": f"studio portrait, warm light, look {n}"}}
                async with s.put(f"{self.base}/api/slots/slot-{n:03d}", json=body, headers=auth) as r:
                    if r.status != 200:
                        raise RuntimeError(f"slot-{n:03d}: {r.status} {await r.text()}")
        await asyncio.to_thread(self.photoslot, "settings", "set", "--ingest-password", PASSWORD)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "a", encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", "photoslot", "--config", str(self.config), *args],
                                env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        self.instances.append({"name": f"{name}#{sum(1 for i in self.instances if i['name'].startswith(name)) + 1}",
                               "role": name, "pid": proc.pid, "started": self.now(), "samples": []})
        return proc

    def start_emulator(self) -> None:
        self.start("emulate", "emulate", "--port", str(self.emu_port), "--gemini-key", KEY, "--turbotext-key", KEY)
        wait_http(f"{self.emu}/emulator/stats")

    async def start_serve(self) -> None:
        self.start("serve", "serve")
        await asyncio.to_thread(wait_http, f"{self.base}/readyz", 90)

    async def start_work(self) -> None:
        self.start("work", "work", "--concurrency", "6")
        await self.wait_log("work", "photoslot work:", 90)

    async def wait_log(self, name: str, needle: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        path = self.dir / f"{name}.log"
        while time.monotonic() < end:
            if path.exists() and needle in path.read_text(encoding="utf-8", errors="replace"):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{name} did not log {needle!r}")

    async def control(self, **body) -> None:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.emu}/emulator/control", json=body) as r:
                if r.status != 200:
                    raise RuntimeError(await r.text())

    def realistic_provider(self) -> dict:
        sc = self.scale
        return {"latency_seconds": sc.shot(5), "latency_max_seconds": sc.shot(25), "no_image_rate": 0.05,
                "safety_rate": 0.02, "fail_rate": 0.0, "output_mime": "image/jpeg"}

    def connect(self):
        return psycopg2.connect(self.dsn, connect_timeout=3)

    # ------------------------------------------------------------ clients

    async def booth(self, n: int, waves: asyncio.Queue) -> None:
        sc = self.scale
        url = f"{self.base}/ingest/slot-{n:03d}"
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{10 + n}", 0), force_close=True),
            timeout=aiohttp.ClientTimeout(total=sc.shot(60) + 15), trace_configs=[_tracing()])
        in_flight: set[asyncio.Task] = set()
        try:
            await asyncio.sleep(self.rng.uniform(0, sc.shot(40)))
            ending = asyncio.ensure_future(self.ending.wait())
            while not self.ending.is_set():
                task = asyncio.create_task(self.shoot(session, url, n))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                deadline = time.monotonic() + self.rng.uniform(sc.shot(20), sc.shot(60))
                while not self.ending.is_set():  # the pause, unless a group arrives
                    wave = asyncio.ensure_future(waves.get())
                    done, _ = await asyncio.wait({wave, ending}, timeout=max(0.0, deadline - time.monotonic()),
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if wave not in done:
                        wave.cancel()
                        break
                    if time.monotonic() - wave.result() < 2.0:  # a group now, not one long gone
                        await asyncio.sleep(self.rng.uniform(0, 1.0))  # booths within the same second
                        break
                # a booth shoots again only when its previous shot came back (DSLR Remote Pro waits)
                if in_flight:
                    await asyncio.wait(set(in_flight))
            ending.cancel()
            if in_flight:
                await asyncio.wait(set(in_flight))
        finally:
            await session.close()

    async def shoot(self, session, url: str, n: int) -> None:
        stale = n == BOOTHS and self.rng.random() < 0.25
        shot = Shot(booth=n, profile="stale" if stale else "booth", sent=self.now(), window=self.window)
        self.shots.append(shot)
        try:
            status, job_id, seconds, _size, body = await post(session, url, self.photo,
                                                              password=OLD_PASSWORD if stale else PASSWORD)
            shot.status, shot.job_id, shot.seconds = status, job_id, seconds
            if status == 200:
                shot.outcome = "succeeded"
            else:
                try:
                    answer = json.loads(body)
                    shot.outcome = answer.get("failure_reason") or "?"
                    shot.job_id = shot.job_id or answer.get("job_id")
                except (TypeError, ValueError):
                    shot.outcome = f"http_{status}"
        except aiohttp.ClientConnectorError:
            shot.outcome = "refused"  # nothing listening: the request never left
        except asyncio.TimeoutError:
            shot.outcome = "no_answer"
        except (aiohttp.ClientError, OSError) as exc:
            shot.outcome = f"dropped:{exc.__class__.__name__}"
        shot.done = self.now()

    async def prober(self) -> None:
        """/healthz once a second, each answered within 1 s or counted as not available."""
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=("127.0.0.42", 0), force_close=True)) as s:
            while not self.ending.is_set():
                started = time.monotonic()
                at = self.now()
                ok = False
                try:
                    async with s.get(f"{self.base}/healthz", timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                        await r.read()
                        ok = r.status == 200 and time.monotonic() - started <= 1.0
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    ok = False
                self.probes.append((at, ok))
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    async def guesser(self) -> None:
        """Someone on the studio network guessing the ingest password, once a second."""
        form_photo = TEST_SHOT.read_bytes()
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=("127.0.0.40", 0), force_close=True)) as s:
            n = 0
            while not self.ending.is_set():
                n += 1
                form = aiohttp.FormData()
                form.add_field("password", f"guess-{n:06d}")
                form.add_field("fileToUpload", form_photo, filename="x.png", content_type="image/png")
                try:
                    async with s.post(f"{self.base}/ingest/slot-001", data=form,
                                      timeout=aiohttp.ClientTimeout(total=10)) as r:
                        await r.read()
                        self.guesses[r.status] = self.guesses.get(r.status, 0) + 1
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    self.guesses[0] = self.guesses.get(0, 0) + 1
                await asyncio.sleep(1.0)

    async def trickler(self) -> None:
        """A client on a dying link: the right password, then its photo at 2 KB/s, again and again."""
        boundary = "trickle"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{PASSWORD}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"fileToUpload\"; filename=\"IMG.JPG\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode()
        while not self.ending.is_set():
            started = self.now()
            status = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=("127.0.0.41", 0))
            except OSError:
                await asyncio.sleep(1.0)
                continue
            try:
                writer.write(f"POST /ingest/slot-002 HTTP/1.1\r\nHost: studio\r\nContent-Length: "
                             f"{len(head) + len(self.photo) + 20}\r\nContent-Type: multipart/form-data; "
                             f"boundary={boundary}\r\n\r\n".encode() + head)
                answer = asyncio.ensure_future(reader.readline())
                for at in range(0, len(self.photo), 1024):
                    if answer.done():
                        break
                    writer.write(self.photo[at:at + 1024])
                    await writer.drain()
                    await asyncio.wait({answer}, timeout=0.5)
                line = await asyncio.wait_for(answer, self.scale.shot(60) + 10)
                parts = line.split()
                status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                status = None
            finally:
                writer.close()
            self.trickles.append({"start": round(started, 2), "seconds": round(self.now() - started, 2),
                                  "status": status})
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------ watchers

    async def sampler(self) -> None:
        """Every 2 s: resident memory and open files of each photoslot process."""
        while True:
            at = self.now()
            for inst in self.instances:
                if inst.get("ended") is not None:
                    continue
                try:
                    p = psutil.Process(inst["pid"])
                    inst["samples"].append((round(at, 1), p.memory_info().rss,
                                            p.num_fds() if hasattr(p, "num_fds") else p.num_handles()))
                except psutil.Error:
                    pass
            await asyncio.sleep(2.0)

    async def metrics_reader(self) -> None:
        async with aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(f"{self.base}/metrics", timeout=aiohttp.ClientTimeout(total=3)) as r:
                        text = await r.text()
                    m = re.search(r"^photoslot_db_pool_in_use (\S+)$", text, re.M)
                    if m:
                        self.pool_samples.append((round(self.now(), 1), float(m.group(1))))
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    pass
                await asyncio.sleep(5.0)

    def allowance(self) -> float:
        """How long past its TTL a file may still be seen: two sweeper intervals (one the promise,
        one for the pass's own time and the check's)."""
        return 2 * self.scale.shot(15)

    def ttl_check(self, now: dt.datetime, label: str) -> int:
        """Files under the media root past their TTL at `now` (listing first, rows second: a file
        seen here existed then). Returns how many new violations were found."""
        media = self.data / "media"
        listing: dict[str, list[tuple[Path, float]]] = {}
        for kind in ("uploads", "results", "public", "templates"):
            folder = media / kind
            try:
                listing[kind] = [(p, p.stat().st_mtime) for p in folder.iterdir() if p.is_file()]
            except (FileNotFoundError, OSError):
                listing[kind] = []
        ids = sorted({p.name.split(".")[0] for kind in ("uploads", "results") for p, _ in listing[kind]})
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id::text, status, is_finalized, finalized_at, expires_at, result_expires_at "
                            "FROM jobs WHERE id::text = ANY(%s)", (ids,))
                jobs = {r[0]: r[1:] for r in cur.fetchall()}
                cur.execute("SELECT m.file_path, m.expires_at, m.expired_at, j.finalized_at FROM media_objects m "
                            "LEFT JOIN jobs j ON j.id = m.job_id")
                links = {r[0]: r[1:] for r in cur.fetchall()}
                cur.execute("SELECT file_path FROM template_media")
                templates = {r[0] for r in cur.fetchall()}
                cur.execute("SELECT provider_id, requests FROM provider_request_counts WHERE window_kind = 'minute'")
                for provider, n in cur.fetchall():
                    self.quota_max[provider] = max(self.quota_max.get(provider, 0), int(n))
        finally:
            conn.close()
        allowance = dt.timedelta(seconds=self.allowance())
        orphan_grace = dt.timedelta(seconds=self.scale.shot(120))
        found = 0

        def overdue(end: dt.datetime, grace: dt.timedelta = dt.timedelta(0)) -> bool:
            """Past `end` + grace by more than the allowance, not counting time serve (the sweeper's
            process) was down for a restart in between: its first pass at start-up comes then."""
            return now - end > grace + allowance + self.serve_down_between(end + grace, now)

        def violation(path: Path, why: str) -> None:
            nonlocal found
            key = f"{path.parent.name}/{path.name}"
            if key not in self.ttl_violations:
                self.ttl_violations[key] = {"file": key, "why": why, "seen_at": round(self.now(), 1), "check": label}
                found += 1

        def mtime(ts: float) -> dt.datetime:
            return dt.datetime.fromtimestamp(ts, dt.timezone.utc)

        for path, mt in listing["uploads"]:
            row = jobs.get(path.name.split(".")[0])
            if row is None:
                if overdue(mtime(mt), orphan_grace):
                    violation(path, "an upload no job points to, past the orphan grace")
            elif row[1] and overdue(row[2]):
                violation(path, f"the upload of a job finalized at {row[2].isoformat()}")
            elif not row[1] and overdue(row[3], dt.timedelta(seconds=2)):
                violation(path, f"the upload of an open job past its deadline {row[3].isoformat()}")
        for path, mt in listing["results"]:
            row = jobs.get(path.name.split(".")[0])
            if row is None or row[0] != "succeeded":
                if overdue(mtime(mt), orphan_grace):
                    violation(path, "a result without its succeeded job, past the orphan grace")
            elif row[4] is not None and overdue(row[4]):
                violation(path, f"a result past its retention ({row[4].isoformat()})")
        for path, mt in listing["public"]:
            row = links.get(str(path))
            if row is None:
                if overdue(mtime(mt), orphan_grace):
                    violation(path, "a public file no link owns, past the orphan grace")
                continue
            ends = [x for x in row if x is not None]
            if ends and overdue(min(ends)):
                violation(path, f"a public link's file past its end ({min(ends).isoformat()})")
        for path, mt in listing["templates"]:
            if str(path) not in templates and not path.name.endswith(".thumb.jpg") and overdue(mtime(mt), orphan_grace):
                violation(path, "a template file no row points to, past the orphan grace")
        return found

    def serve_down_between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        down = dt.timedelta(0)
        for w in self.outages:
            if w.label != "serve restart":
                continue
            start = self.wall0 + dt.timedelta(seconds=w.start)
            end = self.wall0 + dt.timedelta(seconds=w.end if w.end is not None else self.now())
            overlap = min(b, end) - max(a, start)
            if overlap > dt.timedelta(0):
                down += overlap
        return down

    async def ttl_watch(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            try:
                await asyncio.to_thread(self.ttl_check, utcnow(), "during")
            except psycopg2.Error:
                pass  # the database is being restarted: the next look

    # ------------------------------------------------------------ the faults

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        inst = next(i for i in reversed(self.instances) if i["pid"] == proc.pid)
        proc.kill() if sys.platform == "win32" else os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        inst["ended"] = self.now()
        inst["killed"] = True

    async def stop_process(self, name: str, bound: float) -> dict:
        """SIGTERM; seconds to exit and the exit code (the process is killed if it outlives `bound` + 5)."""
        proc = self.procs[name]
        inst = next(i for i in reversed(self.instances) if i["pid"] == proc.pid)
        started = time.monotonic()
        inst["stopping"] = self.now()  # its growth is measured up to here
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, bound + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = await asyncio.to_thread(proc.wait)
            code = f"killed after {bound + 5} s ({code})"
        inst["ended"] = self.now()
        return {"seconds": round(time.monotonic() - started, 2), "exit_code": code}

    async def fault_work_killed(self) -> None:
        self.note("kill -9 of work")
        self.kill9("work")
        await asyncio.sleep(3.0)  # its service manager's restart delay
        await self.start_work()
        self.note("work started again")

    async def fault_provider_outage(self, seconds: float) -> None:
        # after the provider is back, one cool-down and one call (the probe) until shots go through again
        w = Window("provider outage", self.now(), tail=self.scale.shot(15) + self.scale.shot(25))
        self.outages.append(w)
        self.note("provider outage begins: every call answered 503", seconds=round(seconds, 1))
        await self.control(fail_rate=1.0, fail_status=503)
        await asyncio.sleep(seconds)
        await self.control(fail_rate=0.0)
        w.end = self.now()
        self.note("provider outage ends")

    async def fault_postgres_restart(self, seconds: float) -> None:
        from photoslot import pgbin

        pgserver = pgbin.import_pgserver()
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        user = "pgserver" if sys.platform != "win32" and os.geteuid() == 0 else None
        w = Window("PostgreSQL restart", self.now(), tail=2.0)  # the pool's next connection
        self.outages.append(w)
        self.note("PostgreSQL stopped (fast)", down_seconds=round(seconds, 1))
        await asyncio.to_thread(pgserver._commands.pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=self.pgdata,
                                user=user, timeout=60)
        await asyncio.sleep(seconds)
        args = ["-w", "-l", str(self.pgdata / "log")]
        if info is not None and info.socket_dir is not None:
            args += ["-o", '-h ""', "-o", f"-k {info.socket_dir}"]
        elif info is not None and info.port:
            args += ["-o", f'-h "{info.hostname}"', "-o", f"-p {info.port}"]
        await asyncio.to_thread(pgserver._commands.pg_ctl, [*args, "start"], pgdata=self.pgdata, user=user,
                                timeout=60)
        w.end = self.now()
        self.note("PostgreSQL started again")

    async def fault_serve_restart(self) -> None:
        w = Window("serve restart", self.now())
        self.outages.append(w)
        self.note("serve restart: SIGTERM")
        self.stops["serve (mid-event restart)"] = await self.stop_process("serve", self.scale.shot(10) + 10)
        self.note("serve stopped", **self.stops["serve (mid-event restart)"])
        await self.start_serve()
        w.end = self.now()
        self.note("serve listening again", downtime_s=round(w.end - w.start, 2))

    async def fault_disk(self, hold: float) -> None:
        fill = self.data / "disk-fill.bin"
        total, used, free = disk_usage(self.data)
        target = self.disk["threshold_percent"] + self.disk["margin_percent"] / 2
        size = int(total * target / 100 - used)
        if size <= 0 or size > free / 2:
            self.disk["skipped"] = f"cannot fill {size} bytes with {free} free"
            self.note("media disk fill skipped", reason=self.disk["skipped"])
            return
        started = time.monotonic()
        await asyncio.to_thread(allocate, fill, size)
        self.disk.update(fill_bytes=size, fill_seconds=round(time.monotonic() - started, 2),
                         used_percent_filled=round(100 * disk_usage(self.data)[1] / total, 3), filled_at=self.now())
        self.note("media disk filled past the alert", bytes=size, used_percent=self.disk["used_percent_filled"],
                  threshold=self.disk["threshold_percent"])
        await asyncio.sleep(hold)
        fill.unlink()
        self.disk["freed_at"] = self.now()
        self.note("media disk freed")

    async def change_window(self) -> None:
        new = self.scale.shot(60)
        await asyncio.to_thread(self.photoslot, "settings", "set", "--sync-timeout", f"{new:g}")
        self.window = new
        self.window_changes.append((self.now(), new))
        self.note("T_sync_response changed", seconds=new, event_seconds=60)

    async def burst_429(self) -> None:
        """The provider's rate limit for a moment: a third of Gemini's calls refused 429 for 8 event
        seconds (a burst in time — a script of N refusals would wait for the next N calls, however
        late they come, and keep a provider that is being probed down)."""
        seconds = self.scale.shot(8)
        await self.control(provider="gemini", fail_rate=1 / 3, fail_status=429)
        self.note("a burst of 429 begins", seconds=seconds)
        await asyncio.sleep(seconds)
        await self.control(provider="gemini", fail_rate=0.0, fail_status=503)

    async def wave(self, waves: asyncio.Queue) -> None:
        k = self.rng.randint(8, BOOTHS)
        for _ in range(k):
            waves.put_nowait(time.monotonic())
        self.note("a group arrives", booths=k)

    # ------------------------------------------------------------ the day

    async def run(self) -> dict:
        sc = self.scale
        load_before = uptime()
        print(f"event day: {sc.minutes:g} minutes for 8 hours ({sc.schedule:g}× the schedule, shots and timers "
              f"{sc.speed:g}× faster); {self.dir}", flush=True)
        self.write_config()
        self.t0 = time.monotonic()
        self.start_emulator()
        await self.control(**self.realistic_provider())
        await self.start_serve()
        await self.prepare()
        await self.start_work()
        self.dsn = embedded_dsn(self.pgdata)
        admin = Admin(self, first_start_password(self.data, "serg"))
        waves: asyncio.Queue = asyncio.Queue()
        self.t0 = time.monotonic()  # the day begins now
        self.wall0 = utcnow()
        self.note("the day begins", booths=BOOTHS, window_s=self.window)
        watchers = [asyncio.create_task(c) for c in (self.sampler(), self.metrics_reader(), self.ttl_watch())]
        clients = [asyncio.create_task(self.booth(n, waves)) for n in range(1, BOOTHS + 1)]
        clients += [asyncio.create_task(c) for c in (self.prober(), self.guesser(), self.trickler(), admin.spend_the_day())]
        run = sc.run_seconds
        schedule = [
            (0.06, self.burst_429()),
            (0.12, self.fault_work_killed()),
            # PostgreSQL before the provider: a restart while a provider is being probed keeps it
            # down until the probe's lease runs out (docs/RELIABILITY.md, "The event day"); each
            # fault is measured on its own here
            (0.20, self.fault_postgres_restart(max(3.0, 3 * 60 / sc.schedule))),
            (0.30, self.fault_provider_outage(max(2 * sc.shot(15), 20 * 60 / sc.schedule))),
            (0.46, self.burst_429()),
            (0.50, self.fault_disk(max(3 * sc.shot(15), 0.08 * run))),
            (0.55, self.change_window()),
            (0.66, self.burst_429()),
            (0.72, self.fault_serve_restart()),
            (0.90, self.burst_429()),
        ]
        schedule += [((k + 0.5) / 8, self.wave(waves)) for k in range(8)]
        faults = [asyncio.create_task(self.at(frac * run, coro)) for frac, coro in schedule]
        await asyncio.sleep(max(0.0, run - self.now()))
        self.note("the day ends: no new shots")
        self.ending.set()
        await asyncio.gather(*faults, return_exceptions=True)
        results = await asyncio.gather(*clients, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                print(f"  a client failed: {r!r}", flush=True)
        # at rest: one sweeper interval for the last finalizations, then the pool and the media root
        await asyncio.sleep(sc.shot(15) + 1)
        rest = []
        for _ in range(3):
            rest.append(await read_pool_in_use(self.base))
            await asyncio.sleep(1.0)
        self.ttl_check(utcnow(), "at rest")
        for w in watchers:
            w.cancel()
        stop = await self.final_stop()
        load_after = uptime()
        post_run = await asyncio.to_thread(self.after_the_stop, stop["sigterm_at"])
        return self.figures(rest, stop, post_run, load_before, load_after)

    async def at(self, t: float, coro) -> None:
        await asyncio.sleep(max(0.0, t - self.now()))
        if self.ending.is_set():
            coro.close()
            return
        try:
            await coro
        except Exception as exc:
            self.note("a scheduled fault failed", error=f"{exc.__class__.__name__}: {exc}")

    async def final_stop(self) -> dict:
        """SIGTERM to every process at once; each one's time to exit, and the embedded PostgreSQL's."""
        bound = self.scale.shot(10) + 10
        self.note("SIGTERM to serve, work and emulate")
        sigterm_at = utcnow()
        started = time.monotonic()
        results = await asyncio.gather(*(self.stop_process(name, bound) for name in ("serve", "work", "emulate")))
        for name, r in zip(("serve", "work", "emulate"), results):
            self.stops[name] = r
        pg_gone = None
        while time.monotonic() - started < bound + 15:
            if not postmasters(self.pgdata):
                pg_gone = round(time.monotonic() - started, 2)
                break
            await asyncio.sleep(0.1)
        self.note("every process stopped", **{k: v["seconds"] for k, v in self.stops.items() if "(" not in k},
                  postgresql_gone_s=pg_gone)
        return {"sigterm_at": sigterm_at, "postgresql_gone_s": pg_gone, "bound_s": bound}

    def after_the_stop(self, sigterm_at: dt.datetime) -> dict:
        """The database opened again (by this process) to read what the stop left: jobs not final,
        files past their TTL at the moment of the stop."""
        dsn = embedded_pg_join(self.data)
        self.dsn = dsn
        try:
            conn = self.connect()
            with conn.cursor() as cur:
                cur.execute("SELECT id::text, status FROM jobs WHERE NOT is_finalized")
                open_jobs = cur.fetchall()
                cur.execute("SELECT status, coalesce(failure_reason, ''), count(*) FROM jobs GROUP BY 1, 2 ORDER BY 3 DESC")
                by_state = [list(r) for r in cur.fetchall()]
                cur.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND result_removed_at IS NOT NULL")
                results_removed = cur.fetchone()[0]
                cur.execute("SELECT count(*), count(*) FILTER (WHERE attempts > 1) FROM jobs")
                jobs_total, reclaimed = cur.fetchone()
                cur.execute("SELECT round(extract(epoch FROM expires_at - created_at)::numeric, 2), count(*) "
                            "FROM jobs GROUP BY 1 ORDER BY 1")
                windows = [[float(a), b] for a, b in cur.fetchall()]
            conn.close()
            self.ttl_check(sigterm_at, "after the stop")
        finally:
            embedded_pg.release(self.pgdata.resolve(), os.getpid())
        return {"open_jobs": open_jobs, "jobs_by_state": by_state, "jobs": jobs_total, "jobs_reclaimed": reclaimed,
                "results_removed_by_the_sweeper": results_removed, "job_windows_s": windows}

    # ------------------------------------------------------------ the figures

    def outage_windows(self) -> list[tuple[float, float]]:
        return [(w.start, (w.end if w.end is not None else self.now()) + w.tail) for w in self.outages]

    def figures(self, rest, stop, post_run, load_before, load_after) -> dict:
        sc = self.scale
        outages = self.outage_windows()
        booth_shots = [s for s in self.shots if s.profile == "booth"]

        restart = next((w for w in self.outages if w.label == "serve restart"), None)

        def touches(s: Shot) -> bool:
            return any(s.sent <= b and (s.done or s.sent) >= a for a, b in outages)

        # Counted apart, not in the SLA's population: the admin's own cancel (an action, not a
        # failure) and the provider's content refusals (the provider judged the photo; photoslot
        # answered it at once, 502 provider_refused, as documented).
        apart = {"admin_cancelled", "provider_refused"}
        cancelled = [s for s in booth_shots if s.outcome == "admin_cancelled"]
        measured = [s for s in booth_shots if not touches(s)]
        outside = [s for s in measured if s.outcome not in apart]
        ok = sum(1 for s in outside if s.status == 200)
        late = sum(1 for s in outside if s.status == 504)
        probes = [(t, good) for t, good in self.probes
                  if restart is None or not (restart.start <= t <= (restart.end or restart.start))]
        def at_a_stop(s: Shot) -> bool:
            """Sent as serve stopped listening: the connection sat in the kernel's queue and was
            reset with the socket (no job, nothing accepted) — a refused connection, not a lost shot."""
            return s.job_id is None and restart is not None and \
                restart.start - 0.5 <= s.sent <= (restart.end or restart.start)

        lost_answers = [asdict(s) for s in self.shots
                        if (s.outcome == "no_answer" or s.outcome.startswith("dropped")) and not at_a_stop(s)]
        growth = [self.growth(inst) for inst in self.instances if inst["role"] in ("serve", "work")]
        growth = [g for g in growth if g is not None]
        logs = analyse_logs(self.dir, self.fault_explanations())
        figures = {
            "requests": len(self.shots),
            "answered_200_share_outside_outage": round(ok / len(outside), 4) if outside else None,
            "answered_504_share_outside_outage": round(late / len(outside), 4) if outside else None,
            "availability": round(sum(1 for _, good in probes if good) / len(probes), 4) if probes else None,
            "lost_jobs": len(lost_answers) + len(post_run["open_jobs"]),
            "files_after_ttl": len(self.ttl_violations),
            "rss_growth_mb": round(max((g["rss_growth_mb"] for g in growth), default=0.0), 1),
            "fd_growth": max((g["fd_growth"] for g in growth), default=0),
            "db_connections_leaked": sum(logs["pool_closed_in_use"]),
            "stop_seconds": max(v["seconds"] for k, v in self.stops.items() if "(" not in k),
            "errors_unexplained": len(logs["unexplained"]),
        }
        assert tuple(figures) == KEYS
        statuses: dict[str, int] = {}
        for s in booth_shots:
            key = str(s.status) if s.status is not None else s.outcome
            statuses[key] = statuses.get(key, 0) + 1
        reasons: dict[str, int] = {}
        for s in outside:
            if s.status != 200:
                reasons[s.outcome] = reasons.get(s.outcome, 0) + 1
        answered = [s.seconds for s in booth_shots if s.seconds is not None and s.status == 200]
        details = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": machine(), "load_before": load_before, "load_after": load_after,
            "scale": {"minutes": sc.minutes, "schedule_x": round(sc.schedule, 2), "speed_x": sc.speed,
                      "window_s": [self.window_changes[0][1], self.window], "provider_latency_s": [sc.shot(5), sc.shot(25)],
                      "booth_pause_s": [sc.shot(20), sc.shot(60)], "sweeper_interval_s": sc.shot(15),
                      "result_retention_s": sc.run_seconds / 4, "ttl_allowance_s": self.allowance()},
            "figures": figures,
            "booth_shots": len(booth_shots), "stale_profile_shots": len(self.shots) - len(booth_shots),
            "stale_profile_answers": _count(s.status for s in self.shots if s.profile == "stale"),
            "shots_outside_outage": len(outside), "non_200_outside_outage": reasons,
            "non_200_outside_outage_shots": [asdict(s) for s in outside if s.status != 200],
            "admin_cancelled_shots": len(cancelled),
            "provider_refused_outside_outage": sum(1 for s in measured if s.outcome == "provider_refused"),
            "answered_200_share_outside_outage_refusals_counted": round(
                sum(1 for s in measured if s.status == 200) / max(1, len(measured) - len(cancelled)), 4),
            "statuses_all_booth_shots": statuses,
            "answer_s_200": {"p50": round(pct(answered, 50), 2), "p95": round(pct(answered, 95), 2),
                             "max": round(max(answered), 2)} if answered else None,
            "outages": [{"label": w.label, "start": round(w.start, 3), "end": round(w.end or 0, 3),
                         "tail_s": round(w.tail, 3)} for w in self.outages],
            "availability_all_probes": round(sum(1 for _, g in self.probes if g) / len(self.probes), 4)
            if self.probes else None,
            "probes": len(self.probes), "probes_outside_restart": len(probes),
            "lost_answers": lost_answers, "open_jobs_after": post_run["open_jobs"],
            "reset_as_serve_stopped_listening": sum(1 for s in self.shots if s.outcome.startswith("dropped")
                                                    and at_a_stop(s)),
            "jobs": post_run, "ttl_violations": list(self.ttl_violations.values()),
            "processes": [{k: v for k, v in inst.items() if k != "samples"} | (self.growth(inst) or {})
                          for inst in self.instances],
            "samples": {inst["name"]: [[t, round(rss / 2**20, 1), fds] for t, rss, fds in inst["samples"]]
                        for inst in self.instances},
            "window_changes": self.window_changes,
            "shots": [[s.booth, s.profile, round(s.sent, 4), round(s.done, 4), s.status, s.outcome,
                       None if s.seconds is None else round(s.seconds, 3), s.window] for s in self.shots],
            "db_pool_in_use_at_rest": rest, "db_pool_in_use_max_during": max((v for _, v in self.pool_samples),
                                                                              default=None),
            "db_pool_closed_in_use": logs["pool_closed_in_use"],
            "stops": self.stops, "postgresql_gone_after_sigterm_s": stop["postgresql_gone_s"],
            "stop_bound_s": stop["bound_s"], "postgres_left_running": [p.pid for p in postmasters(self.pgdata)],
            "shutdown_overdue_lines": logs["overdue"],
            "errors_explained": logs["explained"], "errors_unexplained": logs["unexplained"],
            "alerts": logs["alerts"], "disk": self.disk, "quota_max_requests_per_minute": self.quota_max,
            "guesser_answers": self.guesses, "trickles": _count(t["status"] for t in self.trickles),
            "admin": self.admin_actions, "timeline": self.timeline,
        }
        self.details = details
        return figures

    def growth(self, inst: dict) -> dict | None:
        """Warm-up: a quarter of the process's life (at most 3 minutes); then its first and its last
        sample before its stop began (or before it was killed)."""
        end = inst.get("stopping", inst.get("ended"))
        samples = [s for s in inst["samples"] if end is None or s[0] < end]
        if len(samples) < 4:
            return None
        life = samples[-1][0] - samples[0][0]
        warm = samples[0][0] + min(180.0, life / 4)
        after = [s for s in samples if s[0] >= warm]
        first, last = after[0], samples[-1]
        return {"rss_start_mb": round(first[1] / 2**20, 1), "rss_end_mb": round(last[1] / 2**20, 1),
                "rss_peak_mb": round(max(s[1] for s in samples) / 2**20, 1),
                "rss_growth_mb": round((last[1] - first[1]) / 2**20, 1), "fds_start": first[2], "fds_end": last[2],
                "fd_growth": last[2] - first[2], "measured_from_s": first[0], "measured_to_s": last[0]}

    def fault_explanations(self) -> list[dict]:
        """Which ERROR events each injected fault may cause, and when (wall-clock windows)."""
        def wall(t: float) -> dt.datetime:
            return self.wall0 + dt.timedelta(seconds=t)

        alert_window = self.scale.shot(5 * 60) + self.scale.shot(15) * 2
        out = []
        for w in self.outages:
            end = (w.end or w.start) + w.tail
            if w.label == "provider outage":
                events = {"provider_down", "provider_probe_failed", "alert:provider_down", "alert:provider_failing",
                          "alert:timeout_ratio"}
                end += alert_window
            elif w.label == "PostgreSQL restart":
                events = {"job_db_unavailable", "admin_db_unavailable", "sweep_failed", "alert:timeout_ratio",
                          "listener", "upload_write_failed"}
                end += alert_window
            else:
                events = {"alert:timeout_ratio"}
                end += alert_window
            out.append({"fault": w.label, "from": wall(w.start - 1), "to": wall(end), "events": events})
        if "filled_at" in self.disk:
            out.append({"fault": "media disk filled", "from": wall(self.disk["filled_at"] - 1),
                        "to": wall(self.disk.get("freed_at", self.now()) + self.allowance()),
                        "events": {"alert:media_disk"}})
        kill = next((e for e in self.timeline if e["what"] == "kill -9 of work"), None)
        if kill is not None:
            out.append({"fault": "kill -9 of work", "from": wall(kill["t"] - 1),
                        "to": wall(kill["t"] + alert_window + self.scale.shot(60)), "events": {"alert:timeout_ratio"}})
        return out


def _count(values) -> dict:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def allocate(path: Path, size: int) -> None:
    """Really take `size` bytes of the disk: fallocate where the OS has it (instant, the blocks are
    reserved), else written out."""
    with open(path, "wb") as fh:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fh.fileno(), 0, size)
                return
            except OSError:
                pass
        chunk = b"\0" * (8 * 2**20)
        left = size
        while left > 0:
            fh.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)


def postmasters(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = proc.info.get("cmdline") or []
            if proc.info.get("name") in ("postgres", "postgres.exe") and str(pgdata) in " ".join(cmdline) \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def embedded_dsn(pgdata: Path) -> str:
    from photoslot import pgbin

    pgbin.import_pgserver()
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info.get_uri(database="photoslot")


def embedded_pg_join(data_dir: Path) -> str:
    from photoslot.db import start_embedded

    return start_embedded(data_dir)


def first_start_password(data: Path, user: str) -> str:
    text = (data / "secrets" / "first-start-passwords.txt").read_text(encoding="utf-8")
    return re.search(rf"^admin {user} password .*: (\S+)$", text, re.M).group(1)


async def read_pool_in_use(base: str) -> float | None:
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/metrics", timeout=aiohttp.ClientTimeout(total=3)) as r:
                m = re.search(r"^photoslot_db_pool_in_use (\S+)$", await r.text(), re.M)
                return float(m.group(1)) if m else None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None


# ---------------------------------------------------------------- the admin at the web pages

class Admin:
    """An admin at the web admin over HTTP, as a browser does it: the sign-in form, the session
    cookie, the CSRF token from each page; a slot saved, test shots, a job cancelled, the
    statistics, the job list — spread over the day. (The forms are read from the pages, so a
    change of layout shows here as a failed action, not a wrong figure.)"""

    def __init__(self, day: Day, password: str) -> None:
        self.day = day
        self.password = password
        self.csrf = ""

    async def spend_the_day(self) -> None:
        d = self.day
        run = d.scale.run_seconds
        jar = aiohttp.CookieJar(unsafe=True)  # a cookie for 127.0.0.1
        async with aiohttp.ClientSession(
                cookie_jar=jar, connector=aiohttp.TCPConnector(local_addr=("127.0.0.43", 0)),
                timeout=aiohttp.ClientTimeout(total=d.scale.shot(60) + 20)) as s:
            plan = [(0.03, self.sign_in), (0.05, self.statistics), (0.08, self.save_slot), (0.16, self.test_shot),
                    (0.11, self.cancel_a_job), (0.45, self.jobs), (0.60, self.test_shot), (0.80, self.statistics),
                    (0.85, self.sign_in), (0.86, self.jobs)]
            for frac, action in plan:
                await asyncio.sleep(max(0.0, frac * run - d.now()))
                if d.ending.is_set():
                    return
                started = time.monotonic()
                try:
                    outcome = await action(s)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError, AttributeError, ValueError) as exc:
                    outcome = {"status": None, "error": exc.__class__.__name__}
                d.admin_actions.append({"t": round(d.now(), 1), "action": action.__name__,
                                        "seconds": round(time.monotonic() - started, 2), **outcome})

    def _csrf_of(self, text: str) -> None:
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', text)
        if m:
            self.csrf = m.group(1)

    async def sign_in(self, s) -> dict:
        base = self.day.base
        async with s.get(f"{base}/admin/login") as r:
            await r.read()
        async with s.post(f"{base}/admin/login", data={"username": "serg", "password": self.password},
                          allow_redirects=True) as r:
            text = await r.text()
            self._csrf_of(text)
            return {"status": r.status, "signed_in": "/admin/login" not in str(r.url) and bool(self.csrf)}

    async def statistics(self, s) -> dict:
        async with s.get(f"{self.day.base}/admin/stats") as r:
            self._csrf_of(await r.text())
            return {"status": r.status}

    async def jobs(self, s) -> dict:
        async with s.get(f"{self.day.base}/admin/jobs") as r:
            self._csrf_of(await r.text())
            return {"status": r.status}

    async def save_slot(self, s) -> dict:
        """Rename booth 3 through its page's form (its other fields as the page shows them)."""
        url = f"{self.day.base}/admin/slots/slot-003"
        async with s.get(url) as r:
            page = await r.text()
        self._csrf_of(page)
        version = re.search(r'name="version" value="(\d+)"', page).group(1)
        prompt = html.unescape(re.search(r'<textarea id="prompt" name="prompt"[^>]*>(.*?)</textarea>', page, re.S).group(1))
        form = {"csrf": self.csrf, "version": version, "name": "Booth 3 (entrance)", "provider_id": "gemini",
                "operation_id": "image_edit", "prompt": prompt, "enabled": "on",
                "output_format": _selected(page, "output_format") or ""}
        async with s.post(url, data=form, allow_redirects=True) as r:
            await r.read()
            return {"status": r.status, "saved": "done=saved" in str(r.url)}

    async def test_shot(self, s) -> dict:
        url = f"{self.day.base}/admin/slots/slot-004"
        async with s.get(url) as r:
            self._csrf_of(await r.text())
        form = aiohttp.FormData()
        form.add_field("csrf", self.csrf)  # first, in the body: never in a URL
        form.add_field("photo", self.day.photo, filename="test.jpg", content_type="image/jpeg")
        async with s.post(f"{url}/test-shot", data=form, allow_redirects=True) as r:  # 303 to the slot page
            text = await r.text()
            if 'alt="Result"' in text:
                return {"status": r.status, "shot_status": 200}
            shot = re.search(r"HTTP (\d{3}) .*?<code[^>]*>(\w+)</code>", text, re.S)
            return {"status": r.status, "shot_status": int(shot.group(1)) if shot else None,
                    "reason": shot.group(2) if shot else None}

    async def cancel_a_job(self, s) -> dict:
        """Cancel the newest job still running, from its page (looking for one for a while)."""
        row = None
        for _ in range(40):
            conn = await asyncio.to_thread(self.day.connect)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT id::text FROM jobs WHERE status = 'processing' ORDER BY created_at DESC LIMIT 1")
                    row = cur.fetchone()
            finally:
                conn.close()
            if row is not None:
                break
            await asyncio.sleep(0.5)
        if row is None:
            return {"status": None, "error": "no job running to cancel"}
        url = f"{self.day.base}/admin/jobs/{row[0]}"
        async with s.get(url) as r:
            self._csrf_of(await r.text())
        async with s.get(f"{url}/cancel") as r:  # cancelling asks first: its confirmation page
            self._csrf_of(await r.text())
        async with s.post(f"{url}/cancel", data={"csrf": self.csrf, "confirm": "yes"}, allow_redirects=True) as r:
            await r.read()
            return {"status": r.status, "job": row[0], "cancelled": "done=cancelled" in str(r.url)}


def _selected(page: str, select_id: str) -> str | None:
    m = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    if not m:
        return None
    chosen = re.search(r'<option value="([^"]*)"[^>]*selected', m.group(1))
    return chosen.group(1) if chosen else None


# ---------------------------------------------------------------- the logs

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) (\S+) (.*)$")


def analyse_logs(folder: Path, explanations: list[dict]) -> dict:
    """ERROR lines and tracebacks of every process's log, each explained by a fault or not; the
    pools' `db_pool_closed` counts; `shutdown_overdue` lines; alert transitions."""
    out = {"explained": [], "unexplained": [], "pool_closed_in_use": [], "overdue": [], "alerts": []}
    for log in sorted(folder.glob("*.log")):
        previous: str | None = None  # where the last ERROR line went ("explained", "unexplained") or None
        for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
            m = LINE.match(raw)
            if not m:
                if raw.startswith("Traceback"):  # goes with the line it follows
                    entry = {"log": log.name, "line": raw[:300], "after": out[previous][-1]["line"][:120]
                             if previous else None}
                    out[previous or "unexplained"].append(entry)
                continue
            previous = None
            stamp, ms, level, logger, text = m.groups()
            at = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(
                microsecond=int(ms) * 1000).astimezone(dt.timezone.utc)
            ev = re.search(r"event=(\S+)", text)
            name = ev.group(1) if ev else ("listener" if "listener" in text else text[:40])
            if name == "db_pool_closed":
                out["pool_closed_in_use"].append(int(re.search(r"in_use=(\d+)", text).group(1)))
            if name == "shutdown_overdue":
                out["overdue"].append({"log": log.name, "line": text[:400]})
            if name == "alert":
                alert = re.search(r"alert=(\S+)", text).group(1)
                state = re.search(r"state=(\S+)", text).group(1)
                out["alerts"].append({"log": log.name, "at": at.isoformat(), "alert": alert, "state": state})
                name = "alert:" + alert.split(":")[0]
            if level not in ("ERROR", "CRITICAL"):
                continue
            entry = {"log": log.name, "at": at.isoformat(), "line": text[:300]}
            cause = next((e["fault"] for e in explanations
                          if name in e["events"] and e["from"] <= at <= e["to"]), None)
            previous = "explained" if cause is not None else "unexplained"
            out[previous].append({**entry, "fault": cause} if cause else entry)
    return out


# ---------------------------------------------------------------- the picture

def svg(day: Day, figures: dict) -> str:
    """Answers per bin by status, p95 against the window, resident memory — one SVG, no plotting library."""
    sc = day.scale
    run = sc.run_seconds
    bins = 20
    width, left, right = 960, 70, 20
    plot_w = width - left - right
    panels = [("answers per bin", 170), ("booth answer time, p95 per bin, against the window (s)", 150),
              ("resident memory (MB)", 150)]
    gap, top = 64, 84
    height = top + sum(h for _, h in panels) + gap * len(panels) + 30

    def x(t: float) -> float:
        return left + plot_w * max(0.0, min(t, run)) / run

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="22" font-size="16" font-weight="bold">A compressed event day: {sc.minutes:g} '
             f'minutes for 8 hours, 15 booths, every fault once</text>',
             f'<text x="{left}" y="42" fill="#444">200 outside outages {figures["answered_200_share_outside_outage"]:.1%}'
             f' · 504 {figures["answered_504_share_outside_outage"]:.1%} · availability {figures["availability"]:.1%}'
             f' · lost {figures["lost_jobs"]} · files after TTL {figures["files_after_ttl"]}'
             f' · stop {figures["stop_seconds"]} s · {figures["requests"]} requests</text>']
    y0 = top
    colours = {"200": "#2e7d32", "504": "#ef6c00", "5xx": "#c62828", "4xx": "#78909c", "none": "#212121"}
    span = run / bins
    counts = [{k: 0 for k in colours} for _ in range(bins)]
    times: list[list[float]] = [[] for _ in range(bins)]
    for s in day.shots:
        b = min(bins - 1, int(s.sent / span))
        if s.status == 200:
            counts[b]["200"] += 1
            times[b].append(s.seconds)
        elif s.status == 504:
            counts[b]["504"] += 1
        elif s.status is None:
            counts[b]["none"] += 1
        elif s.status >= 500:
            counts[b]["5xx"] += 1
        else:
            counts[b]["4xx"] += 1

    short = {"provider outage": "provider", "PostgreSQL restart": "PostgreSQL", "serve restart": "serve"}

    def frame(y: float, h: float, title: str) -> None:
        parts.append(f'<text x="{left}" y="{y - 8}" font-weight="bold">{html.escape(title)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{plot_w}" height="{h}" fill="none" stroke="#999"/>')
        for w in day.outages:
            a, b = x(w.start), x(w.end if w.end is not None else w.start)
            parts.append(f'<rect x="{a:.1f}" y="{y}" width="{max(2.0, b - a):.1f}" height="{h}" fill="#fbe9e7" '
                         f'opacity="0.9"/>')

        for e in day.timeline:
            if e["what"] in ("kill -9 of work", "media disk filled past the alert", "T_sync_response changed",
                             "a burst of 429 begins"):
                parts.append(f'<line x1="{x(e["t"]):.1f}" x2="{x(e["t"]):.1f}" y1="{y}" y2="{y + h}" '
                             f'stroke="#7e57c2" stroke-dasharray="3,3"/>')

    def y_axis(y: float, h: float, top_value: float, unit: str = "") -> None:
        for k in range(5):
            v = top_value * k / 4
            yy = y + h - h * k / 4
            parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#555">{v:g}{unit}</text>')
            parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')

    # 1. answers per bin, stacked
    title, h = panels[0]
    frame(y0, h, f"{title} ({span:g} s each) by status")
    peak = max((sum(c.values()) for c in counts), default=1) or 1
    top_value = _nice(peak)
    y_axis(y0, h, top_value)
    for b, c in enumerate(counts):
        base = y0 + h
        for k in ("200", "504", "5xx", "4xx", "none"):
            if not c[k]:
                continue
            bh = h * c[k] / top_value
            base -= bh
            parts.append(f'<rect x="{x(b * span) + 2:.1f}" y="{base:.1f}" width="{plot_w / bins - 4:.1f}" '
                         f'height="{bh:.1f}" fill="{colours[k]}"><title>{k}: {c[k]}</title></rect>')
    for w in day.outages:  # named over the bars
        a, b = x(w.start), x(w.end if w.end is not None else w.start)
        parts.append(f'<text x="{(a + b) / 2:.1f}" y="{y0 + 12}" text-anchor="middle" font-size="11" '
                     f'fill="#bf360c" stroke="white" stroke-width="3" paint-order="stroke">'
                     f'{short.get(w.label, w.label)}</text>')
    lx = left
    for k, label in (("200", "200"), ("504", "504"), ("5xx", "other 5xx"), ("4xx", "4xx"), ("none", "no answer / refused")):
        parts.append(f'<rect x="{lx}" y="{y0 + h + 8}" width="10" height="10" fill="{colours[k]}"/>'
                     f'<text x="{lx + 14}" y="{y0 + h + 17}">{label}</text>')
        lx += 30 + 8 * len(label)
    parts.append(f'<rect x="{left}" y="{y0 + h + 26}" width="10" height="10" fill="#fbe9e7" stroke="#ccc"/>'
                 f'<text x="{left + 14}" y="{y0 + h + 35}">outage: PostgreSQL restart, provider outage, serve '
                 f'restart</text>')
    parts.append(f'<line x1="{left + 330}" x2="{left + 346}" y1="{y0 + h + 31}" y2="{y0 + h + 31}" stroke="#7e57c2" '
                 f'stroke-dasharray="3,3"/><text x="{left + 350}" y="{y0 + h + 35}">kill -9 of work, media disk '
                 f'filled, T_sync_response changed, a burst of 429</text>')
    y0 += h + gap

    # 2. p95 against the window
    title, h = panels[1]
    frame(y0, h, title)
    top_value = _nice(max([day.window * 1.1] + [pct(t, 95) for t in times if t]))
    y_axis(y0, h, top_value, " s")

    def y2(v: float) -> float:
        return y0 + h - h * v / top_value

    steps = day.window_changes + [(run, day.window)]
    path = []
    for (t, w), (t_next, _) in zip(steps, steps[1:]):
        path += [f"{x(t):.1f},{y2(w):.1f}", f"{x(t_next):.1f},{y2(w):.1f}"]
    parts.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="#c62828" stroke-width="2"/>')
    points = [f"{x((b + 0.5) * span):.1f},{y2(pct(t, 95)):.1f}" for b, t in enumerate(times) if t]
    parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#1565c0" stroke-width="2"/>')
    for p in points:
        cx, cy = p.split(",")
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="#1565c0"/>')
    parts.append(f'<text x="{left + plot_w - 300}" y="{y0 + 16}" fill="#1565c0">p95 of the 200 answers</text>'
                 f'<text x="{left + plot_w - 140}" y="{y0 + 16}" fill="#c62828">T_sync_response</text>')
    y0 += h + gap

    # 3. resident memory
    title, h = panels[2]
    frame(y0, h, title)
    peak = max((s[1] for inst in day.instances for s in inst["samples"]), default=2**20) / 2**20
    top_value = _nice(peak * 1.05)
    y_axis(y0, h, top_value)
    palette = {"serve": "#1565c0", "work": "#2e7d32", "emulate": "#8d6e63"}
    for inst in day.instances:
        if not inst["samples"]:
            continue
        pts = " ".join(f"{x(t):.1f},{y0 + h - h * (rss / 2**20) / top_value:.1f}" for t, rss, _ in inst["samples"]
                       if t >= 0)
        dash = ' stroke-dasharray="5,3"' if inst["name"].endswith(("#2", "#3")) else ""
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{palette.get(inst["role"], "#555")}" '
                     f'stroke-width="1.5"{dash}><title>{inst["name"]}</title></polyline>')
    lx = left
    for role, colour in palette.items():
        parts.append(f'<line x1="{lx}" x2="{lx + 16}" y1="{y0 + h + 13}" y2="{y0 + h + 13}" stroke="{colour}" '
                     f'stroke-width="2"/><text x="{lx + 20}" y="{y0 + h + 17}">{role}</text>')
        lx += 90
    parts.append(f'<text x="{lx}" y="{y0 + h + 17}" fill="#555">(dashed: the process started again after a fault)</text>')
    # the time axis: minutes of the run, hours of the event
    for k in range(0, 9, 2):
        t = run * k / 8
        anchor = "start" if k == 0 else "end" if k == 8 else "middle"
        parts.append(f'<text x="{x(t):.1f}" y="{y0 + h + 38}" text-anchor="{anchor}" fill="#555">'
                     f'{t / 60:.3g} min · {k}:00</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{y0 + h + 54}" text-anchor="middle" fill="#555">'
                 f'minutes of the run · hours of the event day</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice(v: float) -> float:
    if v <= 0:
        return 1.0
    for step in (1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000):
        if v <= step * 4:
            return step * 4
    return v


# ---------------------------------------------------------------- main

def replot(details_file: Path, svg_file: Path) -> None:
    """The picture again from a --details file (no run): its shots, faults and samples."""
    d = json.loads(details_file.read_text())
    day = Day.__new__(Day)
    day.scale = Scale(d["scale"]["minutes"], d["scale"]["speed_x"])
    day.shots = [Shot(booth=b, profile=p, sent=sent, done=done, status=status, outcome=outcome, seconds=seconds,
                      window=window) for b, p, sent, done, status, outcome, seconds, window in d["shots"]]
    day.outages = [Window(o["label"], o["start"], o["end"], o["tail_s"]) for o in d["outages"]]
    day.timeline = d["timeline"]
    day.window_changes = [tuple(w) for w in d["window_changes"]]
    day.window = day.window_changes[-1][1]
    day.instances = [{"name": name, "role": name.split("#")[0], "samples": [(t, mb * 2**20, fds) for t, mb, fds in rows]}
                     for name, rows in d["samples"].items()]
    svg_file.write_text(svg(day, d["figures"]), encoding="utf-8")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20, help="real minutes standing for the 8-hour day (20)")
    ap.add_argument("--speed", type=float, default=4,
                    help="how much faster than real each shot and the product's timers run (4: a 12 s window)")
    ap.add_argument("--seed", type=int, default=None, help="the booths' random cadence (the provider's is its own)")
    ap.add_argument("--json", type=Path, default=None, help="the figures, exactly: " + ", ".join(KEYS))
    ap.add_argument("--svg", type=Path, default=None, help="the picture")
    ap.add_argument("--details", type=Path, default=None, help="everything else measured")
    ap.add_argument("--keep", action="store_true", help="keep the working folder (logs, data dir)")
    ap.add_argument("--replot", type=Path, default=None, metavar="DETAILS",
                    help="no run: draw --svg again from a --details file")
    args = ap.parse_args()
    if args.replot:
        replot(args.replot, args.svg or Path("event-day.svg"))
        return 0
    day = Day(args)
    try:
        figures = await day.run()
    finally:
        for proc in day.procs.values():  # a run that failed half-way leaves nothing running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if postmasters(day.pgdata):
            embedded_pg.stop_postmaster(day.pgdata.resolve())
        fill = day.data / "disk-fill.bin"
        if fill.exists():
            fill.unlink()
    print()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(svg(day, figures), encoding="utf-8")
    if args.details:
        args.details.parent.mkdir(parents=True, exist_ok=True)
        args.details.write_text(json.dumps(day.details, indent=2, default=str) + "\n")
    if args.keep:
        print(f"kept {day.dir}")
    else:
        shutil.rmtree(day.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if sys.platform == "win32":
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())
    sys.exit(asyncio.run(main()))
