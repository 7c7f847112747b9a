"""An admin's test shot is no guest's shot: marked on its job, left out of every run count, share,
percentile and alert, counted apart — and still real provider spend."""
from __future__ import annotations

import aiohttp
import pytest

from photoslot import alerts
from tests.conftest import FIXTURES, emulator_control
from tests.integration.adminapi import logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


async def _test_shot(s, api, slot_id: str) -> int:
    """POST /api/slots/{id}/test_shot; its answer is the booth's (an image or the ingest's JSON)."""
    form = aiohttp.FormData()
    form.add_field("file", PHOTO, filename="test.png", content_type="image/png")
    async with s.http.post(f"{s.base_url}/api/slots/{slot_id}/test_shot", data=form,
                           headers={"Authorization": f"Bearer {api.token}"}) as r:
        await r.read()
        return r.status


async def test_test_shots_are_marked_and_counted_apart_from_the_booths_shots(make_cfg, pg_dsn, emulator):
    cfg = make_cfg(alerts__min_jobs=1)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        api = await logged_in(s)
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 200
        assert [await _test_shot(s, api, "slot-001") for _ in range(2)] == [200, 200]
        # a test shot refused before it became a job (a slot nobody configured) is counted apart too
        assert await _test_shot(s, api, "slot-009") == 404

        rows = await s.ctx.db.fetchall("job_list", slot_id="slot-001", status=None, limit=10)
        assert sorted(r["is_test"] for r in rows) == [False, True, True]

        _, _, body = await api.call("GET", "/api/stats/global")
        summary = body["summary"]
        assert summary["requests"] == 1 and summary["ingest_count"] == 1 and summary["success"] == 1
        assert summary["refused"] == 0 and summary["answered_200"] == 1
        assert summary["test_shots"] == 3 and summary["test_shots_succeeded"] == 2
        assert summary["gemini_requests"] == 3  # every provider call is spend, test shots' included
        _, _, slot = await api.call("GET", "/api/stats/slot-001")
        assert slot["summary"]["ingest_count"] == 1 and slot["summary"]["test_shots"] == 2
        # the booth's shot alone makes the ingest time
        booth_ms = [r["answered_ms"] for r in rows if not r["is_test"]]
        assert slot["summary"]["p50_ms"] is not None and booth_ms


async def test_a_test_shot_that_times_out_raises_no_timeout_alert(make_cfg, pg_dsn, emulator):
    cfg = make_cfg(alerts__min_jobs=1, ingest__sync_response_seconds=2, ingest__sync_response_bounds=[2, 3])
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        api = await logged_in(s)
        await emulator_control(emulator, latency_seconds=5)
        assert await _test_shot(s, api, "slot-001") == 504
        checks = {c.name: c for c in await alerts.checks(s.ctx, s.clock.now())}
        assert not checks["timeout_ratio"].active and checks["timeout_ratio"].value == 0
        # the same window for a booth's shot is a guest kept waiting: the alert fires
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 504
        checks = {c.name: c for c in await alerts.checks(s.ctx, s.clock.now())}
        assert checks["timeout_ratio"].active


async def test_the_api_marks_test_shots_finds_them_by_is_test_and_leaves_them_out_of_every_figure(
        make_cfg, pg_dsn, emulator):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        api = await logged_in(s)
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 200
        await emulator_control(emulator, fail_rate=1.0, fail_status=400)  # the provider refuses: not retried
        try:
            assert [await _test_shot(s, api, "slot-001") for _ in range(2)] == [502, 502]
        finally:
            await emulator_control(emulator, fail_rate=0.0)

        async def listed(**params) -> list[dict]:
            _, _, page = await api.call("GET", "/api/jobs", params=params)
            return [v["job"] for v in page["data"]]

        tests, booth = await listed(is_test="true"), await listed(is_test="false")
        assert len(tests) == 2 and all(j["is_test"] and j["failure_reason"] == "provider_error" for j in tests)
        assert len(booth) == 1 and booth[0]["is_test"] is False and booth[0]["state"] == "succeeded"
        assert await listed(failure_reason="provider_error", is_test="false") == []
        assert len(await listed()) == 3  # without the filter, both kinds

        # two failed test shots beside one good booth shot: no error, no error rate, no run
        for path, params in (("/api/stats/global", {}), ("/api/stats/global", {"slot_id": "slot-001"}),
                             ("/api/stats/slot-001", {})):
            _, _, body = await api.call("GET", path, params=params)
            summary = body["summary"]
            assert (summary["total_runs"], summary["ingest_count"], summary["success"]) == (1, 1, 1), path
            assert (summary["errors"], summary["provider_errors"], summary["error_rate_percent"]) == (0, 0, 0), path
            assert (summary["test_shots"], summary["test_shots_succeeded"]) == (2, 0), path
            assert summary["gemini_requests"] == 3, path  # their provider calls are spend all the same
