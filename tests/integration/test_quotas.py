"""requests_per_minute / requests_per_day, counted in PostgreSQL for every provider request."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from photoslot import jobs, quotas
from tests.conftest import FIXTURES, emulator_control, emulator_requests
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


def to_start_of_minute(s) -> None:
    """Move the studio's clock to just after a minute boundary, so a test's requests share a window."""
    now = s.clock.now()
    s.clock.advance(60 - now.second - now.microsecond / 1e6 + 0.5)


async def job_count(s) -> int:
    return len(await jobs.list_recent(s.ctx.db, status=None, limit=100))


async def test_fourth_request_in_a_minute_is_refused_503_without_a_job(make_cfg, pg_dsn, emulator):
    async with Studio(make_cfg(providers__gemini__requests_per_minute=3), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        to_start_of_minute(s)
        for _ in range(3):
            status, _, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
            assert status == 200, body[:200]
        status, headers, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert status == 503
        answer = json.loads(body)
        assert answer["failure_reason"] == "quota_exhausted" and "job_id" not in answer
        assert "3 requests per minute" in answer["details"]
        assert 1 <= int(headers["Retry-After"]) <= 60 and answer["retry_after"] == int(headers["Retry-After"])
        assert await job_count(s) == 3
        assert s.files("uploads") == []
        # the next minute has a fresh count
        s.clock.advance(60)
        status, _, _ = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert status == 200
    assert len([r for r in await emulator_requests(emulator) if r["provider"] == "gemini"]) == 4


async def test_retries_count_too_and_a_quota_spent_mid_job_fails_it_as_quota_exhausted(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["fail:503", "ok"])
    async with Studio(make_cfg(providers__gemini__requests_per_minute=1), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        to_start_of_minute(s)
        status, _, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert status == 503
        answer = json.loads(body)
        assert answer["failure_reason"] == "quota_exhausted"
        job = await s.job(answer["job_id"])  # queued before the quota was spent: the job says why
        assert job["status"] == "failed" and job["failure_reason"] == "quota_exhausted"
        assert "1 requests per minute" in job["failure_detail"]
        assert job["provider_requests"] == 1
        used = await quotas.counts(s.ctx.db, "gemini", s.clock.now(), s.cfg)
        assert used == {"minute": 1, "day": 1}
    assert len([r for r in await emulator_requests(emulator) if r["provider"] == "gemini"]) == 1


async def test_daily_quota_refuses_until_the_providers_next_day(make_cfg, pg_dsn):
    async with Studio(make_cfg(providers__gemini__requests_per_day=2), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        for _ in range(2):
            assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 200
        status, headers, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert status == 503 and json.loads(body)["failure_reason"] == "quota_exhausted"
        assert "per day" in json.loads(body)["details"]
        assert 1 <= int(headers["Retry-After"]) <= 86400
        s.clock.advance(int(headers["Retry-After"]) + 1)
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 200


async def test_quota_of_one_provider_leaves_the_other_open(make_cfg, pg_dsn):
    from tests.integration.operations import setup_slot

    cfg = make_cfg(providers__gemini__requests_per_day=1, providers__turbotext__poll_interval_seconds=0.1)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await setup_slot(s, "slot-002", "turbotext", "image_edit", prompt="sepia")
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 200
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 503
        assert (await s.ingest("slot-002", PHOTO, content_type="image/png"))[0] == 200
        usage = await quotas.usage(s.ctx.db, s.cfg, s.clock.now())
        assert usage["gemini"]["day"] == {"used": 1, "limit": 1}
        assert usage["turbotext"]["day"] == {"used": 1, "limit": None}


async def test_provider_input_limits_are_checked_at_ingest(make_cfg, pg_dsn, emulator):
    """Turbotext takes up to 15 MB: a 16 MB photo for a Turbotext slot is 413 before anything is queued."""
    import io

    from PIL import Image

    from tests.integration.operations import setup_slot

    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG")
    big = buf.getvalue() + b"\0" * (16 * 1024 * 1024)  # a PNG with trailing padding: valid, and 16 MB
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-002", "turbotext", "image_edit", prompt="sepia")
        status, _, body = await s.ingest("slot-002", big, content_type="image/png")
        assert status == 413, body[:200]
        assert json.loads(body)["failure_reason"] == "payload_too_large" and "15 MB" in json.loads(body)["details"]
        assert await job_count(s) == 0 and s.files("uploads") == []


def clock_at(s, when: dt.datetime) -> None:
    s.clock.advance((when - s.clock.now()).total_seconds())


async def test_geminis_day_is_counted_midnight_to_midnight_pacific(make_cfg, pg_dsn):
    # "Requests per day (RPD) quotas reset at midnight Pacific time" (Gemini API rate-limits page)
    async with Studio(make_cfg(providers__gemini__requests_per_day=1), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        clock_at(s, dt.datetime(2031, 1, 15, 7, 30, tzinfo=dt.timezone.utc))  # 23:30 on the 14th in Los Angeles
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 200
        status, headers, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert status == 503 and json.loads(body)["failure_reason"] == "quota_exhausted"
        assert 1790 <= int(headers["Retry-After"]) <= 1800  # 30 min to midnight Pacific, not 16.5 h to UTC's
        clock_at(s, dt.datetime(2031, 1, 15, 8, 0, 5, tzinfo=dt.timezone.utc))  # a new day in Los Angeles
        assert (await s.ingest("slot-001", PHOTO, content_type="image/png"))[0] == 200
        usage = await quotas.usage(s.ctx.db, s.cfg, s.clock.now())
        assert usage["gemini"]["day"] == {"used": 1, "limit": 1}


def test_a_quota_day_follows_its_time_zone_across_daylight_saving():
    la = quotas._zone("America/Los_Angeles")
    summer = dt.datetime(2031, 7, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert quotas.window_starts(summer, la)["day"] == dt.datetime(2031, 7, 1, 7, 0, tzinfo=dt.timezone.utc)
    winter = dt.datetime(2031, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert quotas.window_starts(winter, la)["day"] == dt.datetime(2031, 1, 1, 8, 0, tzinfo=dt.timezone.utc)
    spring_forward = dt.datetime(2031, 3, 9, 12, 0, tzinfo=dt.timezone.utc)  # a 23-hour day in Los Angeles
    assert quotas.day_end(spring_forward, la) - quotas.window_starts(spring_forward, la)["day"] == \
        dt.timedelta(hours=23)
    assert quotas.window_starts(winter)["day"] == dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)  # UTC default
