"""Turbotext through POST /ingest: queue polling, deadlines, public links that really expire."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.conftest import FIXTURES, emulator_control, emulator_requests
from tests.integration.operations import setup_slot
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


def tt_cfg(make_cfg, **kw):
    return make_cfg(providers__turbotext__poll_interval_seconds=0.1, **kw)


async def ingest(s, slot="slot-001"):
    status, headers, body = await s.ingest(slot, PHOTO, content_type="image/png")
    job_id = headers.get("X-Job-Id") or json.loads(body).get("job_id")
    return status, body, await s.wait_job(job_id, lambda j: j["is_finalized"])


async def turbotext_log(emulator) -> list[dict]:
    return [r for r in await emulator_requests(emulator) if r["provider"] == "turbotext"]


async def test_slow_queue_answering_reconnect_still_gets_200_and_the_polls_are_counted(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", reconnect_polls=5)
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 200, body[:300]
    polls = [r for r in await turbotext_log(emulator) if r.get("do") == "get_result"]
    assert [p["outcome"] for p in polls[:5]] == ["reconnect"] * 5 and polls[-1]["outcome"] == "success"
    assert job["poll_count"] == len(polls) >= 6
    assert job["provider_requests"] == 1  # polls are not billable requests
    assert job["provider_job_reference"] == str(polls[0]["queueid"])


async def test_job_timing_out_stops_polling_at_the_deadline(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", latency_seconds=30)  # the queue never finishes in time
    async with Studio(tt_cfg(make_cfg, ingest__sync_response_seconds=2), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        sent = time.time()
        status, body, job = await ingest(s)
        assert status == 504
        assert job["status"] == "timeout"
        await asyncio.sleep(0.8)  # a poller that did not stop would show up here
        assert s.files("public") == []
    polls = [r for r in await turbotext_log(emulator) if r.get("do") == "get_result"]
    assert len(polls) >= 3 and all(p["outcome"] == "reconnect" for p in polls)
    assert max(p["received_at"] for p in polls) < sent + 2.0


async def test_public_link_fetched_after_its_ttl_gets_410_and_the_job_fails_with_turbotexts_text(
        make_cfg, pg_dsn, emulator):
    # Turbotext is slow to start: create_queue is held, so it fetches the photo only later.
    await emulator_control(emulator, provider="turbotext", hang=True)
    async with Studio(tt_cfg(make_cfg, ingest__sync_response_seconds=6), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        task = asyncio.create_task(ingest(s))
        while not [r for r in await turbotext_log(emulator) if r.get("do") == "create_queue"]:
            await asyncio.sleep(0.05)
        s.clock.advance(6.5)  # past T_public_link_ttl (= T_sync_response) of the links just made
        await emulator_control(emulator, provider="turbotext", hang=False)
        status, body, job = await task
    assert status == 502
    assert job["failure_reason"] == "provider_error"
    assert "Failed to download image: HTTP 410" in job["failure_detail"]
    (create,) = [r for r in await turbotext_log(emulator) if r.get("do") == "create_queue"]
    assert create["outcome"] == "download_failed"


async def test_create_queue_503_is_retried_then_succeeds(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", script=["fail:503", "ok"])
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 200, body[:300]
    assert job["provider_requests"] == 2


async def test_moderation_refusal_is_reported_as_provider_refused(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", script=["safety"])
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 502 and json.loads(body)["failure_reason"] == "provider_refused"
    assert "moderation" in job["failure_detail"]


async def test_wrong_api_key_fails_with_turbotexts_answer(make_cfg, pg_dsn, emulator):
    async with Studio(tt_cfg(make_cfg, providers__turbotext__api_key="wrong"), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 502
    assert job["failure_reason"] == "provider_error" and "Invalid API key" in job["failure_detail"]


async def test_create_queue_failing_stops_at_max_attempts_with_the_count_in_the_detail(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", fail_rate=1.0, fail_status=502)
    cfg = tt_cfg(make_cfg, ingest__sync_response_seconds=20, providers__turbotext__max_attempts=2)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        started = time.monotonic()
        status, body, job = await ingest(s)
        assert time.monotonic() - started < 10  # the cap, not the 20 s window
    assert status == 502 and job["failure_reason"] == "provider_error"
    assert job["failure_detail"].startswith("HTTP 502 × 2 from turbotext")
    assert job["provider_requests"] == 2
    assert len([r for r in await turbotext_log(emulator) if r.get("do") == "create_queue"]) == 2
