"""A stop that always stops: `serve`, `work` and `emulate` as real processes get SIGTERM (or SIGINT)
while clients do what real clients do, and each must exit within `server.shutdown_grace_seconds`
+ 10 s, its clients answered, its connections closed, its embedded PostgreSQL stopped.

Each test is one condition that held a stop up before (docs/RELIABILITY.md, "Stopping"):
a body trickling in, a shot hanging at the provider with a cancelled job beside it, a kept-alive
browser connection, all of them at once, a PostgreSQL restarted during the session, `serve`
killed with SIGKILL, a database that stops answering during the stop.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.acceptance.procs import cli, db_rows, post_photo, start, start_serve, wait_for_row
from tests.conftest import FIXTURES, INGEST_PASSWORD, emulator_control, free_port, write_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

GRACE = 2
BOUND = GRACE + 10  # the promise: every process exits within shutdown_grace_seconds + 10 s


async def stop_within_bound(proc, sig=signal.SIGTERM) -> tuple[int, float]:
    """Signal the process; (exit code, seconds it took). Fails if it is still running at the bound."""
    started = time.monotonic()
    proc.signal(sig)
    try:
        code = await proc.wait(BOUND + 1)
    except asyncio.TimeoutError:
        pytest.fail(f"{proc.name} still running {BOUND + 1} s after {sig.name}; last lines:\n"
                    + "\n".join(proc.lines[-15:]))
    took = time.monotonic() - started
    print(f"[measured] {os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0]}: {proc.name} exited {code} "
          f"{took:.2f} s after {sig.name}")
    return code, took


async def trickle(port: int, stop: asyncio.Event) -> bytes:
    """A booth whose photo arrives 1 KB every 0.3 s (a dying Wi-Fi link): what it was answered."""
    photo = (FIXTURES / "dslr_landscape.jpg").read_bytes()
    boundary = "trickle"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{INGEST_PASSWORD}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"fileToUpload\"; filename=\"a.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /ingest/slot-001 HTTP/1.1\r\nHost: booth\r\nContent-Length: {len(head) + len(photo) + 20}\r\n"
                 f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + head)
    answer = asyncio.ensure_future(reader.read())
    try:
        for at in range(0, len(photo), 1024):
            if answer.done() or stop.is_set():
                break
            try:
                writer.write(photo[at:at + 1024])
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait({answer}, timeout=0.3)
        return await asyncio.wait_for(answer, BOUND + 5)
    finally:
        writer.close()


async def keep_alive_browser(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A browser that loaded the sign-in page and keeps its connection open for the next click."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /admin/login HTTP/1.1\r\nHost: studio\r\nConnection: keep-alive\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    await reader.readexactly(length)
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 5) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except (ConnectionError, asyncio.TimeoutError):
        return False


def postgres_of(pgdata: Path) -> list[psutil.Process]:
    """The PostgreSQL processes serving this data directory (the postmaster names it with -D)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and str(pgdata) in " ".join(cmdline):
            found.append(proc)
    return found


def postgres_tree(pgdata: Path) -> list[psutil.Process]:
    """The postmaster of this data directory and every backend it started."""
    tree = []
    for postmaster in postgres_of(pgdata):
        tree += [postmaster, *postmaster.children(recursive=True)]
    return tree


async def until(predicate, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        await asyncio.sleep(step)


# ---------------------------------------------------------------- serve on the session's PostgreSQL

async def test_serve_stops_on_time_while_a_booth_trickles_its_photo(studio_config, pg_dsn, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=40, server__shutdown_grace_seconds=GRACE)
    serve = await start_serve(config, pg_dsn, port)
    done = asyncio.Event()
    booth = asyncio.create_task(trickle(port, done))
    await asyncio.sleep(1.5)  # the upload is well under way
    code, took = await stop_within_bound(serve)
    done.set()
    answer = await booth
    assert took <= BOUND and code == 0, (took, code, serve.output[-2000:])
    # the booth was told, in the ingest's JSON, to send the photo again — not left hanging
    assert answer.startswith(b"HTTP/1.1 500"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["failure_reason"] == "internal_error"
    assert "shutdown_complete" in serve.output
    assert list((tmp_path / "data" / "media" / "uploads").iterdir()) == []


async def test_serve_stops_on_time_with_a_shot_hanging_at_the_provider_and_a_cancelled_job(
        studio_config, pg_dsn, emulator, photo_bytes):
    config, port = studio_config(ingest__sync_response_seconds=40, server__shutdown_grace_seconds=GRACE)
    await emulator_control(emulator, hang=True)
    serve = await start_serve(config, pg_dsn, port)
    try:
        shots = [asyncio.create_task(post_photo(port, photo_bytes, timeout=60)) for _ in range(2)]
        assert await until(lambda: len(db_rows(pg_dsn, "SELECT id FROM jobs WHERE status = 'processing'")) == 2, 15)
        cancelled = str(db_rows(pg_dsn, "SELECT id FROM jobs ORDER BY created_at LIMIT 1")[0][0])
        r = cli(config, pg_dsn, "jobs", "cancel", cancelled)
        assert r.returncode == 0, r.stderr
        assert await until(lambda: any(s.done() for s in shots), 5)  # the cancelled shot's booth is answered at once
        code, took = await stop_within_bound(serve)
        answers = await asyncio.gather(*shots)
    finally:
        await emulator_control(emulator, hang=False)
    assert took <= BOUND and code == 0, (took, code)
    statuses = sorted(a[0] for a in answers)
    assert statuses == [500, 503], answers  # the cancelled one 503 admin_cancelled, the hanging one "shutting down"
    assert db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE NOT is_finalized") == [(0,)]


async def test_serve_stops_on_time_while_a_client_trickles_a_sign_in_form(studio_config, pg_dsn):
    """A form body read without a deadline (the sign-in page reads its whole form first): a client
    sending it a byte a second must not hold the stop."""
    config, port = studio_config(server__shutdown_grace_seconds=GRACE)
    serve = await start_serve(config, pg_dsn, port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"username=serg&password=" + b"x" * 200
    writer.write(b"POST /admin/login HTTP/1.1\r\nHost: studio\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    await writer.drain()

    async def drip() -> None:
        for byte in body[10:]:
            await asyncio.sleep(1.0)
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                return

    dripping = asyncio.create_task(drip())
    await asyncio.sleep(1.5)
    try:
        code, took = await stop_within_bound(serve)
    finally:
        dripping.cancel()
        writer.close()
    assert took <= BOUND and code == 0, (took, code, serve.output[-2000:])
    assert await closed_by_server(reader, timeout=2)


async def test_serve_stops_on_time_with_a_kept_alive_browser_connection(studio_config, pg_dsn):
    config, port = studio_config(server__shutdown_grace_seconds=GRACE)
    serve = await start_serve(config, pg_dsn, port)
    reader, writer = await keep_alive_browser(port)
    try:
        code, took = await stop_within_bound(serve)
        assert await closed_by_server(reader)
    finally:
        writer.close()
    assert took <= BOUND and code == 0, (took, code)


async def test_serve_stops_on_time_with_everything_at_once(studio_config, pg_dsn, emulator, photo_bytes, tmp_path):
    """The issue's observation: a shot hanging at the provider, a cancelled job, a kept-alive browser
    and a trickling body — still running 40 s after SIGTERM before."""
    config, port = studio_config(ingest__sync_response_seconds=45, server__shutdown_grace_seconds=GRACE)
    await emulator_control(emulator, hang=True)
    serve = await start_serve(config, pg_dsn, port)
    done = asyncio.Event()
    try:
        shots = [asyncio.create_task(post_photo(port, photo_bytes, timeout=60)) for _ in range(2)]
        assert await until(lambda: len(db_rows(pg_dsn, "SELECT id FROM jobs WHERE status = 'processing'")) == 2, 15)
        job = str(db_rows(pg_dsn, "SELECT id FROM jobs ORDER BY created_at LIMIT 1")[0][0])
        assert cli(config, pg_dsn, "jobs", "cancel", job).returncode == 0
        reader, writer = await keep_alive_browser(port)
        booth = asyncio.create_task(trickle(port, done))
        await asyncio.sleep(1.0)
        code, took = await stop_within_bound(serve)
        done.set()
        answers = await asyncio.gather(*shots)
        trickled = await booth
        assert await closed_by_server(reader)
        writer.close()
    finally:
        await emulator_control(emulator, hang=False)
    assert took <= BOUND and code == 0, (took, code, serve.output[-3000:])
    assert sorted(a[0] for a in answers) == [500, 503]
    assert trickled.startswith(b"HTTP/1.1 500")
    assert db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE NOT is_finalized") == [(0,)]
    assert list((tmp_path / "data" / "media" / "uploads").iterdir()) == []


async def test_a_second_signal_cuts_the_grace_short(studio_config, pg_dsn, emulator, photo_bytes):
    """SIGTERM, then Ctrl-C while the grace runs: the grace ends at once, the booth is answered."""
    config, port = studio_config(ingest__sync_response_seconds=40, server__shutdown_grace_seconds=30)
    await emulator_control(emulator, hang=True)
    serve = await start_serve(config, pg_dsn, port)
    try:
        shot = asyncio.create_task(post_photo(port, photo_bytes, timeout=60))
        await wait_for_row(pg_dsn, "SELECT id FROM jobs WHERE status = 'processing'")
        serve.signal(signal.SIGTERM)
        await serve.wait_for_line("shutdown_started")
        started = time.monotonic()
        serve.signal(signal.SIGINT)
        code = await serve.wait(15)
        took = time.monotonic() - started
        status, _, _ = await shot
    finally:
        await emulator_control(emulator, hang=False)
    assert took < 10 and code == 0, (took, code)
    assert status == 500


async def test_work_stops_on_time_with_a_call_hanging_at_the_provider(studio_config, pg_dsn, emulator, photo_bytes):
    config, port = studio_config(ingest__sync_response_seconds=40, server__shutdown_grace_seconds=GRACE)
    await emulator_control(emulator, hang=True)
    serve = await start_serve(config, pg_dsn, port, "--workers", "0")
    work = await start(config, pg_dsn, "work", "--concurrency", "2", name="work")
    await work.wait_for_line("photoslot work:")
    try:
        shot = asyncio.create_task(post_photo(port, photo_bytes, timeout=60))
        await wait_for_row(pg_dsn, "SELECT id FROM jobs WHERE status = 'processing'")
        code, took = await stop_within_bound(work)
        assert took <= BOUND and code == 0, (took, code, work.output[-2000:])
        # the job went back to the queue for another worker, not left "processing" on a dead one
        assert db_rows(pg_dsn, "SELECT status FROM jobs") == [("pending",)]
        code, took = await stop_within_bound(serve)
        assert took <= BOUND and code == 0
        assert (await shot)[0] == 500
    finally:
        await emulator_control(emulator, hang=False)


async def test_emulate_stops_on_time_with_calls_hanging_and_sleeping(tmp_path):
    port = free_port()
    emu = await start(tmp_path / "none.yaml", "", "emulate", "--port", str(port), name="emulate")
    await emu.wait_for_line("listening on")
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:  # the first call hangs, the others sleep ten minutes
        await s.post(f"{base}/emulator/control", json={"provider": "gemini", "script": ["hang"], "latency_seconds": 600})
    image = base64.b64encode((FIXTURES / "small_photo.png").read_bytes()).decode()
    body = {"contents": [{"parts": [{"text": "x"}, {"inlineData": {"mimeType": "image/png", "data": image}}]}]}
    calls = [asyncio.create_task(_call(f"{base}/v1beta/models/gemini-2.5-flash-image:generateContent?key=emulator-key", body))
             for _ in range(3)]
    await asyncio.sleep(1.5)
    assert not any(c.done() for c in calls)
    code, took = await stop_within_bound(emu)
    await asyncio.gather(*calls, return_exceptions=True)
    assert took <= BOUND and code == 0, (took, code)


async def _call(url: str, body: dict):
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body, timeout=aiohttp.ClientTimeout(total=60)) as r:
            return r.status


# ---------------------------------------------------------------- serve on its embedded PostgreSQL

def embedded_studio(folder: Path, emulator_url: str, **overrides) -> tuple[Path, int]:
    port = free_port()
    config = write_config(folder / "photoslot.yaml", data_dir=folder / "data", dsn=None, emulator_url=emulator_url,
                          port=port, server__shutdown_grace_seconds=GRACE, **overrides)
    for args in (("slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit", "--prompt", "sepia"),
                 ("settings", "set", "--ingest-password", INGEST_PASSWORD)):
        r = cli(config, "", *args)
        assert r.returncode == 0, r.stderr
    return config, port


def restart_embedded_postgres(pgdata: Path) -> None:
    """What an operator's `pg_ctl restart` (or a crash and a service manager) does: another postmaster."""
    from photoslot import pgbin

    pgserver = pgbin.import_pgserver()  # quietly: no platformdirs warning
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pgserver._commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)
    pgserver._commands.pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(pgdata / "log"), "start"],
                              pgdata=pgdata, user=user, timeout=30)


async def test_serve_on_its_embedded_postgresql_stops_it_also_after_a_postgresql_restart(
        pg_safe_tmp, emulator, photo_bytes):
    config, port = embedded_studio(pg_safe_tmp, emulator.base_url)
    pgdata = pg_safe_tmp / "data" / "pg"
    serve = await start_serve(config, "", port)
    first = postgres_of(pgdata)
    assert first, "serve runs its embedded PostgreSQL"
    await asyncio.to_thread(restart_embedded_postgres, pgdata)
    assert await until(lambda: bool(postgres_of(pgdata)), 10)
    status, _, _ = await post_photo(port, photo_bytes)  # the pool reconnected to the new postmaster
    assert status == 200
    code, took = await stop_within_bound(serve)
    assert took <= BOUND and code == 0
    left = await until(lambda: not postgres_of(pgdata), timeout=BOUND - took + 1)
    assert left, f"PostgreSQL still running after serve stopped: {postgres_of(pgdata)}"


async def test_a_killed_serve_does_not_leave_its_embedded_postgresql_running(pg_safe_tmp, emulator):
    config, port = embedded_studio(pg_safe_tmp, emulator.base_url)
    pgdata = pg_safe_tmp / "data" / "pg"
    serve = await start_serve(config, "", port)
    assert postgres_of(pgdata)
    serve.kill9()
    await serve.wait()
    killed_at = time.monotonic()
    stopped = await until(lambda: not postgres_of(pgdata), timeout=BOUND)
    print(f"[measured] PostgreSQL gone {time.monotonic() - killed_at:.2f} s after serve was killed")
    assert stopped, f"PostgreSQL still running {BOUND} s after serve was killed: {postgres_of(pgdata)}"
    # and the next start takes the data dir over as if nothing happened
    serve = await start_serve(config, "", port)
    code, _ = await stop_within_bound(serve)
    assert code == 0
    assert await until(lambda: not postgres_of(pgdata), timeout=BOUND)


async def test_a_stop_the_database_does_not_answer_is_ended_at_the_bound_with_a_line_naming_what_waited(
        own_pg, emulator, photo_bytes, tmp_path, clean_state):
    """PostgreSQL frozen (SIGSTOP) while serve stops: nothing it waits for can finish. It still exits
    by the bound, non-zero, and says what it was waiting for."""
    port = free_port()
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=own_pg.dsn,
                          emulator_url=emulator.base_url, port=port, server__shutdown_grace_seconds=GRACE,
                          ingest__sync_response_seconds=40)
    for args in (("slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit", "--prompt", "x"),
                 ("settings", "set", "--ingest-password", INGEST_PASSWORD)):
        assert cli(config, own_pg.dsn, *args).returncode == 0
    await emulator_control(emulator, hang=True)
    serve = await start_serve(config, own_pg.dsn, port)
    frozen = []
    try:
        shot = asyncio.create_task(post_photo(port, photo_bytes, timeout=60))
        await wait_for_row(own_pg.dsn, "SELECT id FROM jobs WHERE status = 'processing'")
        frozen = postgres_tree(own_pg.root / "pg")
        for proc in frozen:
            proc.suspend()
        code, took = await stop_within_bound(serve)
        assert took <= BOUND, took
        assert code != 0, serve.output[-4000:]
        line = next((x for x in serve.lines if "shutdown_overdue" in x), None)
        assert line is not None, serve.output[-3000:]
        assert "waiting_for=" in line
        print("\n".join(x for x in serve.lines if "photoslot.runtime" in x or "photoslot.db" in x))
        await asyncio.gather(shot, return_exceptions=True)
    finally:
        for proc in frozen:
            proc.resume()
        await emulator_control(emulator, hang=False)
