"""Statistics from the hourly rollups: every ingest request counted (refused ones too), the shares
the business tracks, provider and slot filters, figures that survive the sweeper pruning job rows,
and rollups kept 400 days."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from photoslot import jobs, stats, sweeper
from tests.conftest import FIXTURES, emulator_control
from tests.integration.adminapi import logged_in
from tests.integration.studio import Studio
from tests.integration.test_admin_jobs_stats import _pin_clock, make_job

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


async def test_every_request_is_counted_refused_ones_too_with_the_shares_the_business_tracks(
        make_cfg, pg_dsn, emulator):
    cfg = make_cfg(ingest__sync_response_seconds=2, providers__gemini__down_after_failures=1,
                   providers__gemini__max_attempts=1, providers__gemini__down_cooldown_seconds=30)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        api = await logged_in(s)
        answers = []
        for _ in range(3):
            answers.append((await s.ingest("slot-001", PHOTO, content_type="image/png"))[0])
        answers.append((await s.ingest("slot-001", PHOTO, password="wrong-password!", content_type="image/png"))[0])
        answers.append((await s.ingest("slot-009", PHOTO, content_type="image/png"))[0])  # not configured
        answers.append((await s.ingest("slot-001", b"GIF89a not a photo" * 20, content_type="image/gif"))[0])
        async with s.http.post(f"{s.base_url}/ingest/nowhere", data=b"x") as r:  # aiohttp's own 404
            answers.append(r.status)
        await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
        answers.append((await s.ingest("slot-001", PHOTO, content_type="image/png"))[0])  # takes gemini down
        answers.append((await s.ingest("slot-001", PHOTO, content_type="image/png"))[0])  # refused at once
        assert answers == [200, 200, 200, 401, 404, 415, 404, 503, 503]

        status, _, body = await api.call("GET", "/api/stats/global")
        assert status == 200
        summary = body["summary"]
        assert summary["requests"] == 9 and summary["refused"] == 5 and summary["ingest_count"] == 4
        assert summary["answered_200"] == 3 and summary["answered_200_share"] == round(3 / 9, 4)
        assert summary["provider_unavailable"] == 2
        assert summary["provider_unavailable_share"] == round(2 / 9, 4)
        assert summary["answered_504"] == 0 and summary["answered_504_share"] == 0
        assert summary["provider_calls"] == 4 and summary["gemini_requests"] == 4
        _, _, slot = await api.call("GET", "/api/stats/slot-001")
        assert slot["summary"]["requests"] == 7  # slot-009 and the unknown path are other slots
        _, _, turbotext = await api.call("GET", "/api/stats/global", params={"provider_id": "turbotext"})
        assert turbotext["summary"]["requests"] == 0
        status, _, bad = await api.call("GET", "/api/stats/global", params={"provider_id": "dalle"})
        assert status == 422 and "provider_id" in bad["error"]["details"]


async def test_figures_are_identical_before_and_after_the_sweeper_prunes_the_job_rows(make_cfg, pg_dsn):
    cfg = make_cfg(sweeper__job_row_retention_days=30)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        hour = _pin_clock(s)
        for ms, reason, tokens in ((900, None, 1000), (1500, None, 1200), (2600, "timeout", None),
                                   (700, "provider_error", 300), (1200, "client_gone", None)):
            await make_job(s, "slot-002", ms=ms, reason=reason, tokens=tokens)
        await make_job(s, "slot-003", provider="turbotext", ms=4000, requests=2)
        window = dict(from_=hour - dt.timedelta(days=1), to=hour + dt.timedelta(days=1))

        async def figures():
            return (await stats.slot_stats(s.ctx, "slot-002", group_by="hour", **window),
                    await stats.global_stats(s.ctx, group_by="day", **window))

        before = await figures()
        assert before[0]["summary"]["ingest_count"] == 5 and before[1]["summary"]["ingest_count"] == 6
        assert before[0]["summary"]["p50_ms"] == 1200
        s.clock.advance(31 * 86400)
        await sweeper.sweep_once(s.ctx)
        s.clock.advance(-31 * 86400)
        assert await jobs.list_recent(s.ctx.db, status=None, limit=10) == []  # the rows are gone
        after = await figures()
        assert after == before


async def test_rollups_are_kept_400_days_and_then_pruned(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        _pin_clock(s)
        await make_job(s, "slot-001", ms=100)
        s.clock.advance(399 * 86400)
        await sweeper.sweep_once(s.ctx)
        result = await stats.recent(s.ctx, slot_id="slot-001", since=stats.parse_duration("400d"))
        assert result["summary"]["ingest_count"] == 1  # the CLI reaches back 400 days
        assert await jobs.list_recent(s.ctx.db, status=None, limit=10) == []
        s.clock.advance(2 * 86400)
        await sweeper.sweep_once(s.ctx)
        assert (await s.ctx.db.fetchone("stats_rollup_rows"))["n"] == 0


async def test_a_flood_of_refused_requests_is_written_in_one_statement_per_flush(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await s.set_password()
        s.ctx.refusals.drain()
        for i in range(40):
            status, _, body = await s.ingest(f"slot-{900 + i}", PHOTO, content_type="image/png")
            assert status == 404 and json.loads(body)["failure_reason"] == "slot_not_found"
        assert s.ctx.refusals.total() == 40 and len(s.ctx.refusals) == 1  # unknown ids share one key
        assert (await s.ctx.db.fetchone("stats_rollup_rows"))["n"] == 0  # nothing written per request
        assert await s.ctx.refusals.flush(s.ctx.db) == 40
        row = await s.ctx.db.fetchone("stats_rollup_rows")
        assert row["n"] == 1 and row["requests"] == 40
