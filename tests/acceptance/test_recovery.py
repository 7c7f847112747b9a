"""Recovery drills with real processes: `serve` killed with kill -9 mid-load, PostgreSQL restarted
under load (a PostgreSQL of its own, really stopped and started)."""
from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import pytest

from tests.acceptance.procs import cli, db_rows, post_photo, start_serve, wait_for_row
from tests.conftest import INGEST_PASSWORD, emulator_control, free_port, write_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

WINDOW = 4
INTERVAL = 1  # sweeper.interval_seconds in the test config


def media_files(tmp_path, kind: str) -> set[str]:
    folder = tmp_path / "data" / "media" / kind
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


async def until(predicate, timeout: float, step: float = 0.1):
    end = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value or asyncio.get_running_loop().time() > end:
            return value
        await asyncio.sleep(step)


async def test_serve_killed_mid_load_leaves_every_job_finalized_within_one_sweeper_interval_and_no_files(
        studio_config, pg_dsn, emulator, photo_bytes, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=WINDOW, sweeper__orphan_grace_seconds=2)
    await emulator_control(emulator, latency_seconds=1.5)
    serve = await start_serve(config, pg_dsn, port)
    load = [asyncio.create_task(post_photo(port, photo_bytes)) for _ in range(8)]
    await wait_for_row(pg_dsn, "SELECT 1 FROM jobs HAVING count(*) FILTER (WHERE status = 'processing') >= 2")
    serve.kill9()
    await serve.wait()
    killed_at = time.monotonic()
    outcomes = await asyncio.gather(*load, return_exceptions=True)
    assert all(isinstance(o, aiohttp.ClientError) or o[0] == 200 for o in outcomes)
    open_jobs = db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE NOT is_finalized")[0][0]
    assert open_jobs > 0 and media_files(tmp_path, "uploads")  # the crash left work and files behind

    serve = await start_serve(config, pg_dsn, port)
    try:
        # every deadline was at most WINDOW after the kill; the sweeper finalizes what nobody answers
        # (2 s grace for an ingest to do it itself) within one interval after that
        limit = WINDOW + 2 + INTERVAL + 1
        remaining = await until(
            lambda: db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE NOT is_finalized")[0][0] == 0,
            timeout=max(0.5, limit - (time.monotonic() - killed_at)) + 2)
        assert remaining, db_rows(pg_dsn, "SELECT id, status, expires_at FROM jobs WHERE NOT is_finalized")
        rows = db_rows(pg_dsn, "SELECT id, status, failure_reason FROM jobs")
        assert {r[1] for r in rows} <= {"succeeded", "timeout", "cancelled"}
        assert all(r[2] is not None for r in rows if r[1] != "succeeded")  # finalized with a reason
        succeeded = {f"{r[0]}.jpg" for r in rows if r[1] == "succeeded"}
        # uploads go at once; a result written by the killed process for a job it never finalized
        # is an orphan, removed after the (test-short) orphan grace
        assert await until(lambda: media_files(tmp_path, "uploads") == set(), timeout=5)
        assert await until(lambda: media_files(tmp_path, "results") == succeeded, timeout=10), \
            (media_files(tmp_path, "results"), succeeded)

        # the new server works normally
        await emulator_control(emulator, latency_seconds=0)
        status, _, _ = await post_photo(port, photo_bytes)
        assert status == 200
    finally:
        await serve.stop()

    # `photoslot sweep --json` after downtime: one pass, counts on stdout, nothing left to do
    r = cli(config, pg_dsn, "sweep", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for key in ("jobs_timed_out", "uploads_removed", "public_links_expired", "results_expired", "purges_done",
                "orphan_files_removed", "job_rows_pruned", "alerts_changed", "ms", "errors"):
        assert key in report
    assert report["jobs_timed_out"] == 0 and report["errors"] == []


async def test_postgres_restart_under_load_answers_503_within_a_second_and_serve_recovers_without_restart(
        own_pg, emulator, photo_bytes, tmp_path, clean_state):
    port = free_port()
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=own_pg.dsn,
                          emulator_url=emulator.base_url, port=port, ingest__sync_response_seconds=WINDOW)
    for args in (("slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit",
                  "--prompt", "turn the photo sepia"), ("settings", "set", "--ingest-password", INGEST_PASSWORD)):
        r = cli(config, own_pg.dsn, *args)
        assert r.returncode == 0, r.stderr
    await emulator_control(emulator, latency_seconds=0.2)
    serve = await start_serve(config, own_pg.dsn, port)
    answers: list[tuple[float, float, int, str]] = []  # (sent, elapsed, status, reason)
    stop_load = asyncio.Event()

    async def client(once: bool = False) -> None:
        while not stop_load.is_set():
            sent = time.monotonic()
            try:
                status, _, body = await post_photo(port, photo_bytes, timeout=WINDOW + 5)
            except aiohttp.ClientError as exc:  # the server must never drop a request
                answers.append((sent, time.monotonic() - sent, 0, exc.__class__.__name__))
                if once:
                    return
                continue
            reason = "" if status == 200 else json.loads(body)["failure_reason"]
            answers.append((sent, time.monotonic() - sent, status, reason))
            if once:
                return
            await asyncio.sleep(0.05)

    clients = [asyncio.create_task(client()) for _ in range(3)]
    try:
        assert await until(lambda: sum(a[2] == 200 for a in answers) >= 3, timeout=20)
        own_pg.stop()
        stopped_at = time.monotonic()
        # the load's requests in flight wait out their window; fresh shots arrive meanwhile
        probes = [asyncio.create_task(client(once=True)) for _ in range(3)]
        await asyncio.sleep(1.5)
        probes += [asyncio.create_task(client(once=True)) for _ in range(3)]
        await asyncio.gather(*probes)
        own_pg.start_again()
        restarted_at = time.monotonic()
        assert await until(lambda: any(a[2] == 200 and a[0] > restarted_at for a in answers), timeout=15)
    finally:
        stop_load.set()
        await asyncio.gather(*clients)

    assert not [a for a in answers if a[2] == 0], "a request was dropped"
    # requests sent while the database was down were refused fast with the documented answer
    during = [a for a in answers if stopped_at + 0.2 < a[0] and a[0] + a[1] < restarted_at]
    assert during and all((a[2], a[3]) == (503, "database_unavailable") for a in during), during
    assert all(a[1] < 1.0 for a in during), max(a[1] for a in during)
    # whatever was in flight at the stop was answered inside its window (never a hang)
    assert all(a[1] < WINDOW + 0.5 for a in answers)

    # no restart: the same process serves again; leftovers are finalized by its sweeper
    assert serve.proc.returncode is None
    assert await until(lambda: db_rows(own_pg.dsn, "SELECT count(*) FROM jobs WHERE NOT is_finalized")[0][0] == 0,
                       timeout=WINDOW + 2 + INTERVAL + 3)
    assert await until(lambda: media_files(tmp_path, "uploads") == set(), timeout=5)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
            assert r.status == 200
    await serve.stop()
    assert "Traceback" not in serve.output
