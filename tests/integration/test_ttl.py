"""TTL guarantees (docs/ARCHITECTURE.md "TTLs"), proven by moving the injected clock instead of waiting.

After any mix of ingests and a sweep at expiry + one sweeper interval, nothing temporary is left on
disk or reachable by link; a result stays downloadable until the last second of its retention.
"""
from __future__ import annotations

import asyncio
import json

import pytest

from photoslot import jobs, slots
from photoslot.sweeper import sweep_once
from tests.conftest import emulator_control
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

HOUR = 3600


async def get_status(s: Studio, path: str) -> int:
    async with s.http.get(f"{s.base_url}{path}") as r:
        await r.read()
        return r.status


async def test_after_mixed_ingests_and_a_sweep_at_expiry_plus_interval_nothing_temporary_remains(
        make_cfg, pg_dsn, emulator, photo_bytes):
    interval = 15
    window = 3
    cfg = make_cfg(ingest__sync_response_seconds=window, sweeper__interval_seconds=interval,
                   providers__turbotext__poll_interval_seconds=0.2)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await slots.configure(s.ctx.db, s.clock, "slot-002", actor="test", source="test", provider_id="turbotext",
                              operation_id="image_edit", settings_json={"prompt": "make it a watercolour"})
        # success on both providers (Turbotext fetches the photo through a public link)
        ok = [await s.ingest("slot-001", photo_bytes), await s.ingest("slot-002", photo_bytes)]
        assert [o[0] for o in ok] == [200, 200], [o[2][:200] for o in ok]
        # provider error, rejected password, and a 504 whose provider answers after the deadline
        await emulator_control(emulator, fail_rate=1.0, fail_status=400)  # not retryable
        failed = await s.ingest("slot-001", photo_bytes)
        await emulator_control(emulator, fail_rate=0.0, latency_seconds=window + 1)
        wrong = await s.ingest("slot-001", photo_bytes, password="not-the-password")
        timeouts = await asyncio.gather(s.ingest("slot-001", photo_bytes), s.ingest("slot-002", photo_bytes))
        assert failed[0] in (502, 503) and wrong[0] == 401
        assert [t[0] for t in timeouts] == [504, 504]
        media_links = [json.loads(t[2]) for t in timeouts]
        # the late provider answers land now and must be discarded, not stored
        await asyncio.sleep(window + 1.5)
        await emulator_control(emulator, latency_seconds=0.0)

        # the longest-lived temporary thing is bounded by the window; sweep one interval after it
        s.clock.advance(window + interval)
        report = await sweep_once(s.ctx)
        assert report["errors"] == []
        assert s.files("uploads") == []
        assert s.files("public") == []
        for row in await jobs.list_recent(s.ctx.db, status=None, limit=50):
            assert row["is_finalized"], row["status"]
            assert row["upload_path"] is None
            if row["status"] != "succeeded":
                assert row["result_file_path"] is None
        links = await s.ctx.db.fetchall("media_objects_open_paths")
        assert links == []
        assert len(s.files("results")) == 2  # only the two successes, nothing from the late answers
        assert all("job_id" in m for m in media_links)

        # results: downloadable one second before retention ends, gone (disk and link) one interval after
        ids = [o[1]["X-Job-Id"] for o in ok]
        ends = [(await s.job(job_id))["result_expires_at"] for job_id in ids]
        assert all(abs((end - s.clock.now()).total_seconds() - 72 * HOUR) < 60 for end in ends)
        s.clock.advance((min(ends) - s.clock.now()).total_seconds() - 1)
        await sweep_once(s.ctx)
        for job_id in ids:
            assert await get_status(s, f"/public/results/{job_id}") == 200
        s.clock.advance((max(ends) - s.clock.now()).total_seconds() + interval)
        report = await sweep_once(s.ctx)
        assert report["results_expired"] == 2
        assert s.files("results") == []
        for job_id in ids:
            assert await get_status(s, f"/public/results/{job_id}") == 410


async def test_a_result_is_downloadable_one_second_before_its_retention_ends_and_gone_at_the_end(
        make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, body = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        job = await s.job(headers["X-Job-Id"])
        # move the clock to exactly one second before result_expires_at
        s.clock.advance((job["result_expires_at"] - s.clock.now()).total_seconds() - 1)
        report = await sweep_once(s.ctx)
        assert report["results_expired"] == 0
        async with s.http.get(f"{s.base_url}/public/results/{job['id']}") as r:
            assert r.status == 200
            assert await r.read() == body
        s.clock.advance(1)
        assert await get_status(s, f"/public/results/{job['id']}") == 410  # the link closes on the second
        await sweep_once(s.ctx)
        assert s.files("results") == []
