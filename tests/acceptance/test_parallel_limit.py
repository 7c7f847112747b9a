"""max_parallel per provider holds across processes: one `serve` and two `photoslot work`."""
from __future__ import annotations

import asyncio
import sys

import pytest

from tests.acceptance.procs import cli, post_photo, start, start_serve
from tests.conftest import FIXTURES, emulator_control, emulator_stats

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


async def test_two_worker_processes_never_exceed_each_providers_parallel_limit(studio_config, pg_dsn, emulator):
    config, port = studio_config(ingest__sync_response_seconds=15, providers__gemini__max_parallel=2,
                                 providers__turbotext__max_parallel=1,
                                 providers__turbotext__poll_interval_seconds=0.1)
    r = cli(config, pg_dsn, "slot", "set", "slot-002", "--provider", "turbotext", "--operation", "image_edit",
            "--prompt", "sepia")
    assert r.returncode == 0, r.stderr
    await emulator_control(emulator, latency_seconds=1.0)
    serve = await start_serve(config, pg_dsn, port, "--workers", "0")
    workers = [await start(config, pg_dsn, "work", "--concurrency", "3", name=f"work-{i}") for i in (1, 2)]
    try:
        for w in workers:
            await w.wait_for_line("photoslot work:")
        # 6 workers in all could run 6 calls at once; the limits say 2 for Gemini and 1 for Turbotext
        results = await asyncio.gather(*[post_photo(port, PHOTO, slot="slot-001") for _ in range(6)],
                                       *[post_photo(port, PHOTO, slot="slot-002") for _ in range(3)])
        assert [status for status, _, _ in results] == [200] * 9, [b[:200] for _, _, b in results]
        stats = await emulator_stats(emulator)
        assert stats["gemini"]["requests"] == 6 and stats["gemini"]["max_concurrent"] == 2
        assert stats["turbotext"]["create_queue"] == 3 and stats["turbotext"]["max_concurrent"] == 1
        assert stats["turbotext"]["fetches"] == 3  # each photo fetched through serve's public link
    finally:
        for w in workers:
            await w.stop()
        await serve.stop()
