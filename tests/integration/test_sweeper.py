"""The sweeper's pass on real PostgreSQL and a real media root, time moved by the injected clock."""
from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from photoslot import purge, templates
from photoslot.context import AppContext
from photoslot.sweeper import sweep_once
from tests import logscan
from tests.conftest import FIXTURES
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

HOUR = 3600


async def abandoned_job(s: Studio, *, seconds_ago: float = 60, window: float = 3) -> uuid.UUID:
    """A job as a killed `serve` leaves it: queued, upload on disk, nobody waiting, deadline passed."""
    return await s.queue_job(created_ago=seconds_ago, window=window, photo="template_style.jpg")


def age(path, seconds: float) -> None:
    """Make a file look `seconds` old (orphan grace is measured on file mtimes)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


async def test_jobs_left_past_their_deadline_are_finalized_as_timeout_and_their_uploads_removed(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await s.configure("slot-001")
        old = [await abandoned_job(s) for _ in range(3)]
        fresh = await abandoned_job(s, seconds_ago=0, window=30)  # still inside its window: left alone
        report = await sweep_once(s.ctx)
        assert report["jobs_timed_out"] == 3 and report["uploads_removed"] == 3 and report["errors"] == []
        for job_id in old:
            job = await s.job(job_id)
            assert (job["status"], job["failure_reason"], job["upload_path"]) == ("timeout", "timeout", None)
        assert (await s.job(fresh))["status"] == "pending"
        assert s.files("uploads") == [f"{fresh}.jpg"]


async def test_each_pass_logs_one_summary_line(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        start = logscan.mark()
        await sweep_once(s.ctx)
        await sweep_once(s.ctx)
        summaries = [line for line in logscan.since(start) if "event=sweep " in line]
        assert len(summaries) == 2
        for key in ("jobs_timed_out=", "results_expired=", "orphan_files_removed=", "job_rows_pruned=", "ms="):
            assert key in summaries[0]


async def test_results_past_retention_are_deleted_and_their_link_answers_410(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        job_id = headers["X-Job-Id"]
        s.clock.advance(72 * HOUR + 1)
        report = await sweep_once(s.ctx)
        assert report["results_expired"] == 1
        assert s.files("results") == []
        job = await s.job(job_id)
        assert job["result_removed_at"] is not None and job["status"] == "succeeded"  # the row stays for stats
        async with s.http.get(f"{s.base_url}/public/results/{job_id}") as r:
            assert r.status == 410


async def test_orphan_files_older_than_the_grace_are_removed_and_everything_referenced_stays(make_cfg, pg_dsn,
                                                                                              photo_bytes):
    async with Studio(make_cfg(sweeper__orphan_grace_seconds=60), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        result = s.ctx.media.results / f"{headers['X-Job-Id']}.jpg"
        template = await templates.register(s.ctx, data=(FIXTURES / "template_style.jpg").read_bytes(), label="style",
                                            actor="test", source="test")
        template_file = next(s.ctx.media.templates.iterdir())
        await s.pool.stop(grace=0)  # nobody may run the queued job below: its upload must stay referenced
        s.pool = None
        pending = await abandoned_job(s, seconds_ago=0, window=30)
        pending_upload = s.ctx.media.upload_path(pending, "image/jpeg")
        old_orphans = [s.ctx.media.uploads / "lost.jpg", s.ctx.media.results / "lost.jpg",
                       s.ctx.media.templates / "lost.jpg"]
        young_orphan = s.ctx.media.uploads / "being-written.upload"
        for p in old_orphans + [young_orphan]:
            p.write_bytes(b"x")
        for p in old_orphans + [result, template_file, pending_upload]:
            age(p, 120)
        report = await sweep_once(s.ctx)
        assert report["orphan_files_removed"] == 3
        assert not any(p.exists() for p in old_orphans)
        assert young_orphan.exists() and result.exists() and template_file.exists() and pending_upload.exists()
        assert template["id"]


async def test_finished_job_rows_older_than_the_row_retention_are_pruned(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(sweeper__job_row_retention_days=30), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        old_job = headers["X-Job-Id"]
        s.clock.advance(29 * 24 * HOUR)
        status, headers, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        recent_job = headers["X-Job-Id"]
        s.clock.advance(1 * 24 * HOUR + 60)
        report = await sweep_once(s.ctx)
        # the old result goes past its retention, then its row past the row retention, in one pass;
        # the recent job keeps its row and its result
        assert report["results_expired"] == 1 and report["job_rows_pruned"] == 1
        assert await s.job(old_job) is None
        assert (await s.job(recent_job))["status"] == "succeeded"


async def test_two_sweepers_at_once_split_the_work_and_finalize_each_job_once(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        await s.configure("slot-001")
        ids = [await abandoned_job(s) for _ in range(40)]
        twin = await AppContext.open(cfg, clock=s.clock, dsn=pg_dsn)
        try:
            start = logscan.mark()
            a, b = await asyncio.gather(sweep_once(s.ctx), sweep_once(twin))
        finally:
            await twin.close()
        assert a["errors"] == [] and b["errors"] == []
        assert a["jobs_timed_out"] + b["jobs_timed_out"] == 40
        assert a["uploads_removed"] + b["uploads_removed"] == 40
        timed_out = [line for line in logscan.since(start) if "event=job_timed_out_by_sweeper" in line]
        assert len(timed_out) == 40 and len({line.split("job=")[1].split()[0] for line in timed_out}) == 40
        for job_id in ids:
            assert (await s.job(job_id))["status"] == "timeout"
        assert s.files("uploads") == []


async def test_a_cache_purge_request_is_carried_out_by_the_next_pass(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        from photoslot import public_media

        link = await public_media.register(s.ctx, data=photo_bytes)
        assert s.files("public") != []
        queued = await purge.request_purge(s.ctx, "full", actor="test", source="cli")
        assert queued["status"] == "queued_for_gc"
        report = await sweep_once(s.ctx)
        assert report["purges_done"] == 1
        assert s.files("results") == [] and s.files("public") == []
        done = await purge.get(s.ctx.db, queued["job_id"])
        assert done["done_at"] is not None
        assert done["report"] == {"media_objects_expired": 1, "results_removed": 1}
        async with s.http.get(f"{s.base_url}/public/results/{headers['X-Job-Id']}") as r:
            assert r.status == 410
        async with s.http.get(f"{s.base_url}/public/media/{link['id']}") as r:
            assert r.status == 410
        assert (await sweep_once(s.ctx))["purges_done"] == 0  # done once
