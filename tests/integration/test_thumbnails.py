"""Result thumbnails: made once on the first request (one decode however many ask at once), kept
as a file beside the result, and removed wherever the result is removed."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from photoslot import media, purge
from photoslot.sweeper import sweep_once
from tests.conftest import FIXTURES
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

HOUR = 3600
PHOTO = (FIXTURES / "cameras" / "exif_orientation1.jpg").read_bytes()  # small: the emulator answers fast


async def shoot(s: Studio, photo: bytes) -> tuple[str, object]:
    await s.set_password()
    await s.configure("slot-001")
    status, headers, _ = await s.ingest("slot-001", photo)
    assert status == 200
    job_id = headers["X-Job-Id"]
    result = s.ctx.media.results / f"{job_id}.jpg"
    return job_id, result


async def get_thumbnail(s: Studio, job_id: str) -> tuple[int, bytes]:
    async with s.http.get(f"{s.base_url}/public/results/{job_id}/thumbnail") as r:
        return r.status, await r.read()


def age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


async def test_24_parallel_requests_make_one_thumbnail_stored_beside_the_result(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        job_id, result = await shoot(s, PHOTO)
        thumb = s.ctx.media.thumbnail_path(result)
        assert thumb == s.ctx.media.results / f"{job_id}.thumb.jpg" and not thumb.exists()
        made = media.DECODES["thumbnail"]
        answers = await asyncio.gather(*(get_thumbnail(s, job_id) for _ in range(24)))
        assert {status for status, _ in answers} == {200}
        assert len({body for _, body in answers}) == 1  # one thumbnail, served 24 times
        assert media.DECODES["thumbnail"] == made + 1
        assert thumb.read_bytes() == answers[0][1]
        written = thumb.stat().st_mtime_ns
        for _ in range(3):  # later requests are served from the file
            assert (await get_thumbnail(s, job_id))[0] == 200
        assert media.DECODES["thumbnail"] == made + 1 and thumb.stat().st_mtime_ns == written
        assert sorted(s.files("results")) == sorted([result.name, thumb.name])


async def test_thumbnail_is_removed_with_its_result_at_the_end_of_retention(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        job_id, result = await shoot(s, PHOTO)
        assert (await get_thumbnail(s, job_id))[0] == 200
        s.clock.advance(72 * HOUR + 1)
        assert (await get_thumbnail(s, job_id))[0] == 410  # expired, though both files are still there
        report = await sweep_once(s.ctx)
        assert report["results_expired"] == 1 and s.files("results") == []
        assert (await get_thumbnail(s, job_id))[0] == 410


async def test_a_full_cache_purge_removes_thumbnails_with_their_results(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        job_id, _ = await shoot(s, PHOTO)
        assert (await get_thumbnail(s, job_id))[0] == 200
        await purge.request_purge(s.ctx, "full", actor="test", source="cli")
        assert (await sweep_once(s.ctx))["purges_done"] == 1
        assert s.files("results") == []
        assert (await get_thumbnail(s, job_id))[0] == 410


async def test_orphan_pass_keeps_a_live_results_thumbnail_and_removes_one_whose_result_is_gone(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__sync_response_seconds=10, sweeper__orphan_grace_seconds=60), pg_dsn) as s:
        job_id, result = await shoot(s, PHOTO)
        assert (await get_thumbnail(s, job_id))[0] == 200
        thumb = s.ctx.media.thumbnail_path(result)
        # A thumbnail made just as the sweeper removed its result (or left by a crash) has no result.
        stray = s.ctx.media.results / "0b0e1f5e-0000-4000-8000-000000000000.thumb.jpg"
        stray.write_bytes(thumb.read_bytes())
        for p in (result, thumb, stray):
            age(p, 600)
        report = await sweep_once(s.ctx)
        assert report["orphan_files_removed"] == 1
        assert result.exists() and thumb.exists() and not stray.exists()


async def test_a_result_removed_under_the_thumbnail_request_answers_410(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        job_id, result = await shoot(s, PHOTO)
        result.unlink()  # what the sweeper does a moment before the row says so
        status, _ = await get_thumbnail(s, job_id)
        assert status == 410
        assert s.files("results") == []
