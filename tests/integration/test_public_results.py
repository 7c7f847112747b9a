"""Public result links and the slot's recent_results, across retention expiry on the injected clock."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from tests.conftest import FIXTURES
from tests.integration.adminapi import Api, logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


async def _shoot(s, n: int = 1, data: bytes | None = None) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(n):
        status, headers, body = await s.ingest("slot-001", data or (FIXTURES / "dslr_landscape.jpg").read_bytes())
        assert status == 200
        out.append((headers["X-Job-Id"], body))
    return out


async def test_result_downloads_as_attachment_until_retention_then_410(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn) as s:
        api = Api(s)
        await s.set_password()
        await s.configure("slot-001")
        [(job_id, body)] = await _shoot(s)
        job = await s.job(job_id)
        status, headers, data = await api.call("GET", f"/public/results/{job_id}", auth=False)
        assert status == 200 and data == body
        assert headers["Content-Type"] == "image/jpeg"
        assert headers["Content-Disposition"] == f'attachment; filename="{job_id}.jpg"'
        # one second before the end of retention it still works …
        left = (job["result_expires_at"] - s.clock.now()).total_seconds()
        s.clock.advance(left - 1)
        assert (await api.call("GET", f"/public/results/{job_id}", auth=False))[0] == 200
        assert (await api.call("GET", f"/public/results/{job_id}/thumbnail", auth=False))[0] == 200
        # … and from its end on it is gone, thumbnail included, even before the sweeper removed the file
        s.clock.advance(1)
        for path in (f"/public/results/{job_id}", f"/public/results/{job_id}/thumbnail"):
            status, _, err = await api.call("GET", path, auth=False)
            assert status == 410 and err["error"]["code"] == "gone"


async def test_thumbnail_is_a_jpeg_of_at_most_160_px_upright(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn) as s:
        api = Api(s)
        await s.set_password()
        await s.configure("slot-001", output_format="png")
        portrait = (FIXTURES / "dslr_portrait_orientation6.jpg").read_bytes()
        [(job_id, body)] = await _shoot(s, data=portrait)
        status, headers, thumb = await api.call("GET", f"/public/results/{job_id}/thumbnail", auth=False)
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(thumb)) as t, Image.open(io.BytesIO(body)) as full:
            assert t.format == "JPEG" and max(t.size) == 160
            assert (t.width < t.height) == (full.width < full.height)  # portrait stays portrait


async def test_unknown_failed_or_removed_results(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        api = Api(s)
        await s.set_password()
        await s.configure("slot-001")
        for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
            status, _, err = await api.call("GET", f"/public/results/{bad}", auth=False)
            assert status == 404 and err["error"]["code"] == "not_found"
        status, headers, _ = await s.ingest("slot-001", b"\xff\xd8\xff broken jpeg" * 10)
        assert status == 415  # no job → nothing to download
        [(job_id, _)] = await _shoot(s)
        os.remove((await s.job(job_id))["result_file_path"])  # what the sweeper does at retention end
        assert (await api.call("GET", f"/public/results/{job_id}", auth=False))[0] == 410


async def test_recent_results_lists_the_last_ten_live_results_with_links(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn) as s:
        api = await logged_in(s)
        await s.set_password()
        await s.configure("slot-001")
        shots = await _shoot(s, 11)
        status, _, slot = await api.call("GET", "/api/slots/slot-001")
        recent = slot["recent_results"]
        assert [r["job_id"] for r in recent] == [j for j, _ in reversed(shots)][:10]
        first = recent[0]
        assert first["download_url"].endswith(f"/public/results/{first['job_id']}")
        assert first["thumbnail_url"].endswith(f"/public/results/{first['job_id']}/thumbnail")
        assert first["mime"] == "image/jpeg" and first["size_bytes"] == len(shots[-1][1])
        for link in (first["download_url"], first["thumbnail_url"]):
            async with s.http.get(link.replace(s.cfg.public_base_url(), s.base_url)) as r:
                assert r.status == 200
        s.clock.advance(72 * 3600 + 60)
        await api.login()
        _, _, slot = await api.call("GET", "/api/slots/slot-001")
        assert slot["recent_results"] == []  # expired results are not offered as links any more
