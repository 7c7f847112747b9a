"""Scale-out: `serve --workers 0` plus three `photoslot work` processes on one PostgreSQL."""
from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from tests.acceptance.procs import db_rows, post_photo, start, start_serve, wait_for_row
from tests.conftest import emulator_control, emulator_stats

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

MAX_PARALLEL = 2


async def test_three_work_processes_process_every_job_exactly_once_within_the_parallel_limit(
        studio_config, pg_dsn, emulator, photo_bytes):
    config, port = studio_config(ingest__sync_response_seconds=20, providers__gemini__max_parallel=MAX_PARALLEL)
    await emulator_control(emulator, latency_seconds=0.4)
    serve = await start_serve(config, pg_dsn, port, "--workers", "0")
    workers = [await start(config, pg_dsn, "work", "--concurrency", "2", name=f"work-{i}") for i in range(3)]
    try:
        for w in workers:
            await w.wait_for_line("photoslot work:")

        # 1. a burst: every job is processed once, never more than MAX_PARALLEL at the provider
        answers = await asyncio.gather(*(post_photo(port, photo_bytes) for _ in range(12)))
        assert [a[0] for a in answers] == [200] * 12, [a[2][:200] for a in answers if a[0] != 200]
        stats = (await emulator_stats(emulator))["gemini"]
        assert stats["requests"] == 12  # exactly once each
        assert stats["max_concurrent"] <= MAX_PARALLEL
        rows = db_rows(pg_dsn, "SELECT status, attempts, worker_id FROM jobs")
        assert len(rows) == 12 and {(r[0], r[1]) for r in rows} == {("succeeded", 1)}
        pids = {int(r[2].split(":")[1]) for r in rows}
        assert pids <= {w.pid for w in workers} and len(pids) >= 2

        # 2. one work process is stopped while a burst is in progress: nothing is lost
        batch = [asyncio.create_task(post_photo(port, photo_bytes)) for _ in range(8)]
        victim = workers[0]
        await wait_for_row(pg_dsn, f"SELECT id FROM jobs WHERE status = 'processing' AND worker_id LIKE '%%:{victim.pid}:%%'"
                                   f" OR (SELECT count(*) FROM jobs) >= 20")
        victim.signal(signal.SIGTERM)
        assert await victim.wait(30) == 0
        answers = await asyncio.gather(*batch)
        assert [a[0] for a in answers] == [200] * 8, [a[2][:200] for a in answers if a[0] != 200]
        assert db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE status <> 'succeeded'") == [(0,)]
        assert db_rows(pg_dsn, "SELECT count(*) FROM jobs") == [(20,)]
        assert (await emulator_stats(emulator))["gemini"]["max_concurrent"] <= MAX_PARALLEL
    finally:
        for w in workers:
            await w.stop()
        await serve.stop()
