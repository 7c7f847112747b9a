"""Process-level guarantees with real `photoslot serve` / `photoslot work` processes."""
from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest

from tests.acceptance.procs import db_rows, post_photo, start, start_serve, wait_for_row
from tests.conftest import emulator_control

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


async def test_killed_worker_process_job_is_finished_by_another_worker_inside_the_deadline(
        studio_config, pg_dsn, emulator, photo_bytes, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=10, workers__lease_seconds=1,
                                 workers__heartbeat_seconds=0.3)
    await emulator_control(emulator, latency_seconds=2.0)
    serve = await start_serve(config, pg_dsn, port, "--workers", "0")
    first = await start(config, pg_dsn, "work", "--concurrency", "1", name="work-1")
    await first.wait_for_line("photoslot work:")
    try:
        ingest = asyncio.create_task(post_photo(port, photo_bytes))
        (job_id, worker_id), = await wait_for_row(pg_dsn, "SELECT id, worker_id FROM jobs WHERE status='processing'")
        assert f":{first.pid}:" in worker_id
        first.kill9()
        await first.wait()
        second = await start(config, pg_dsn, "work", "--concurrency", "1", name="work-2")
        status, headers, body = await ingest
        assert status == 200, body[:300]
        assert headers["X-Job-Id"] == str(job_id)
        (state, attempts, final_worker), = db_rows(pg_dsn, "SELECT status, attempts, worker_id FROM jobs WHERE id=%s",
                                                    str(job_id))
        assert state == "succeeded" and attempts == 2 and f":{second.pid}:" in final_worker
        assert db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE status='processing'") == [(0,)]
        await second.stop()
    finally:
        await serve.stop()
        await first.stop()


async def test_sigterm_during_an_ingest_answers_the_client_and_finalizes_the_job(studio_config, pg_dsn, emulator,
                                                                                 photo_bytes):
    config, port = studio_config(ingest__sync_response_seconds=10)
    await emulator_control(emulator, latency_seconds=1.5)
    serve = await start_serve(config, pg_dsn, port)
    try:
        ingest = asyncio.create_task(post_photo(port, photo_bytes))
        await wait_for_row(pg_dsn, "SELECT id FROM jobs WHERE status='processing'")
        serve.signal(signal.SIGTERM)
        status, headers, body = await ingest
        assert status == 200  # the in-flight job finished inside the grace period
        assert await serve.wait(20) == 0
        assert "shutdown_complete" in serve.output
        assert db_rows(pg_dsn, "SELECT status FROM jobs") == [("succeeded",)]
    finally:
        await serve.stop()


async def test_sigterm_with_a_hung_provider_answers_after_the_grace_and_leaves_nothing_processing(
        studio_config, pg_dsn, emulator, photo_bytes, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=20, server__shutdown_grace_seconds=1)
    await emulator_control(emulator, hang=True)
    serve = await start_serve(config, pg_dsn, port)
    try:
        ingest = asyncio.create_task(post_photo(port, photo_bytes))
        await wait_for_row(pg_dsn, "SELECT id FROM jobs WHERE status='processing'")
        started = asyncio.get_running_loop().time()
        serve.signal(signal.SIGTERM)
        status, headers, body = await ingest
        waited = asyncio.get_running_loop().time() - started
        answer = json.loads(body)
        assert status == 500 and answer["failure_reason"] == "internal_error"
        assert "shutting down" in answer["details"]
        assert waited < 5
        assert await serve.wait(20) == 0
        assert db_rows(pg_dsn, "SELECT status, failure_reason FROM jobs") == [("failed", "internal_error")]
        assert list((tmp_path / "data" / "media" / "uploads").iterdir()) == []
    finally:
        await emulator_control(emulator, hang=False)
        await serve.stop()
