"""Real `photoslot` processes for acceptance tests, started the way a studio starts them."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import psycopg2
import yaml

from tests.conftest import INGEST_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def env_for(dsn: str) -> dict:
    env = dict(os.environ)
    env["PHOTOSLOT_DSN"] = dsn
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PHOTOSLOT_CONFIG", None)
    # the "which studio did the last command use" record (the CLI's note line) stays out of the
    # tester's home: tests switch studios all the time
    env["XDG_STATE_HOME"] = str(Path(tempfile.gettempdir()) / f"photoslot-test-state-{os.getpid()}")  # one per run
    return env


def cli(config: Path, dsn: str, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "photoslot", "--config", str(config), *args], env=env_for(dsn),
                          capture_output=True, text=True, input=input, timeout=timeout)


# Every process a test started and has not stopped yet: the acceptance conftest stops them after
# each test, so a failed assertion never leaves a `serve` running (and eating CPU) behind it.
RUNNING: set["Proc"] = set()


class Proc:
    """A long-running photoslot process whose output is collected for the test to read."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())
        RUNNING.add(self)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, needle: str, timeout: float = 30) -> str:
        end = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < end:
            for line in self.lines:
                if needle in line:
                    return line
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name}: no line containing {needle!r}; output:\n{self.output[-3000:]}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.proc.kill() if sys.platform == "win32" else os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self, timeout: float = 30) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._reader, 5)
        return code

    async def stop(self) -> None:
        RUNNING.discard(self)
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await self.wait(15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start(config: Path, dsn: str, *args: str, name: str = "photoslot") -> Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "photoslot", "--config", str(config), *args, env=env_for(dsn),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    return Proc(proc, name)


async def start_serve(config: Path, dsn: str, port: int, *args: str) -> Proc:
    p = await start(config, dsn, "serve", "--port", str(port), *args, name="serve")
    await p.wait_for_line("photoslot serving on", timeout=60)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
            assert r.status == 200, await r.text()
    return p


def first_start_passwords(config: Path) -> dict[str, str]:
    """The admin passwords `serve` without a terminal wrote to <data_dir>/secrets/first-start-passwords.txt
    (checked to be the owner's only), registered with the log scanner as secrets."""
    from tests import logscan

    path = Path(yaml.safe_load(config.read_text())["data_dir"]) / "secrets" / "first-start-passwords.txt"
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    found = dict(re.findall(r"^admin (\w+) password .*: (\S+)$", path.read_text(encoding="utf-8"), flags=re.M))
    for password in found.values():
        logscan.secret(password)
    return found


async def post_photo(port: int, data: bytes, timeout: float = 30, *, slot: str = "slot-001",
                     password: str = INGEST_PASSWORD):
    """One shot as DSLR Remote Pro sends it: (status, headers, body)."""
    form = aiohttp.FormData()
    form.add_field("password", password)
    form.add_field("fileToUpload", data, filename="shot.jpg", content_type="image/jpeg")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/ingest/{slot}", data=form,
                          timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            return r.status, dict(r.headers), await r.read()


def db_rows(dsn: str, sql: str, *args):
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


async def wait_for_row(dsn: str, sql: str, timeout: float = 10):
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        rows = db_rows(dsn, sql)
        if rows:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"no row for: {sql}")


def assert_clean(dsn: str, media) -> None:
    """No job open, no upload left, no result file (nor thumbnail, `<job>.thumb.jpg`) without its
    succeeded job."""
    assert db_rows(dsn, "SELECT count(*) FROM jobs WHERE NOT is_finalized") == [(0,)]
    uploads = media / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    results = {p.name.split(".")[0] for p in (media / "results").iterdir()} if (media / "results").exists() else set()
    succeeded = {str(r[0]) for r in db_rows(dsn, "SELECT id FROM jobs WHERE status = 'succeeded'")}
    assert results <= succeeded


async def wait_all_finalized(dsn: str, timeout: float = 10) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        if db_rows(dsn, "SELECT count(*) FROM jobs WHERE NOT is_finalized") == [(0,)]:
            return
        await asyncio.sleep(0.1)
