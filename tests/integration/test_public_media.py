"""GET /public/media/{id}: 200 while live, 410 after expiry or once the job is finalized, 404 unknown."""
from __future__ import annotations

import json
import uuid

import pytest

from photoslot import jobs, public_media
from tests.conftest import FIXTURES
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


async def fetch(s, url: str):
    async with s.http.get(url) as r:
        return r.status, r.headers.get("Content-Type"), await r.read()


async def queued_job(s, seconds: float = 30) -> str:
    """A job row as ingest would create it (no worker runs in these tests)."""
    await s.configure("slot-001")
    return str(await s.queue_job(window=seconds))


async def test_link_serves_the_bytes_with_their_type_until_the_ttl_then_410(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__sync_response_seconds=5), pg_dsn, workers=0) as s:
        link = await public_media.register(s.ctx, data=PHOTO)
        created = s.clock.now()
        # the link ends in the file's extension (Turbotext: "url with image (format: jpg, png, jpeg)")
        assert link["public_url"] == f"{s.base_url}/public/media/{link['id']}.png"
        assert (await fetch(s, f"{s.base_url}/public/media/{link['id']}"))[0] == 200  # the bare id too
        assert (await fetch(s, f"{s.base_url}/public/media/{link['id']}.jpg"))[0] == 404  # not its type
        assert abs((link["expires_at"] - created).total_seconds() - 5) < 1  # T_public_link_ttl = T_sync_response
        status, ctype, body = await fetch(s, link["public_url"])
        assert (status, ctype, body) == (200, "image/png", PHOTO)
        s.clock.advance(5.5)
        status, _, body = await fetch(s, link["public_url"])
        assert status == 410 and json.loads(body)["error"]["code"] == "gone"
        assert s.files("public") == [f"{link['id']}.png"]  # the file waits for the sweeper
        report = await public_media.sweep(s.ctx)
        assert report["links_closed"] == 1 and s.files("public") == []
        assert (await fetch(s, link["public_url"]))[0] == 410


async def test_link_expiry_is_capped_by_the_jobs_deadline_and_dies_with_its_finalization(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__sync_response_seconds=30), pg_dsn, workers=0) as s:
        job_id = await queued_job(s, seconds=3)
        job = await s.job(job_id)
        link = await public_media.register(s.ctx, data=PHOTO, job_id=job_id, kind="photo")
        assert link["expires_at"] == job["expires_at"]
        assert (await fetch(s, link["public_url"]))[0] == 200
        await jobs.finalize_failure(s.ctx.db, s.ctx.media, job_id=job_id, now=s.clock.now(), reason="timeout",
                                    detail="test")
        assert (await fetch(s, link["public_url"]))[0] == 410  # finalized elsewhere: dead at once
        assert await public_media.expire_for_job(s.ctx, job_id) == 1
        assert s.files("public") == []


async def test_template_link_borrows_the_file_and_leaves_it_in_place(make_cfg, pg_dsn):
    from photoslot import templates

    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        job_id = await queued_job(s)
        t = await templates.get(s.ctx.db, (await templates.register(
            s.ctx, data=(FIXTURES / "template_style.jpg").read_bytes(), label=None, actor="t", source="test"))["id"])
        link = await public_media.register(s.ctx, path=t["file_path"], mime=t["mime"], job_id=job_id, kind="template")
        status, ctype, _ = await fetch(s, link["public_url"])
        assert (status, ctype) == (200, "image/jpeg")
        await public_media.expire_for_job(s.ctx, job_id)
        assert (await fetch(s, link["public_url"]))[0] == 410
        assert s.files("templates") == [f"{t['id']}.jpg"]


async def test_unknown_and_malformed_ids_are_404(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        assert (await fetch(s, f"{s.base_url}/public/media/{uuid.uuid4()}"))[0] == 404
        assert (await fetch(s, f"{s.base_url}/public/media/not-a-uuid"))[0] == 404


async def test_registering_bytes_that_are_not_an_image_is_415_and_leaves_no_file(make_cfg, pg_dsn):
    from photoslot.media import UnsupportedMedia

    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        with pytest.raises(UnsupportedMedia) as err:
            await public_media.register(s.ctx, data=b"GIF89a not for us")
        assert err.value.http_status == 415
        assert s.files("public") == []
