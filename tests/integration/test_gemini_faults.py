"""Gemini fault handling through POST /ingest: NO_IMAGE retries, deadlines, 429, 4xx, safety."""
from __future__ import annotations

import json
import time

import pytest

from tests.conftest import FIXTURES, emulator_control, emulator_requests
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


async def run_one(s, **kw):
    await s.set_password()
    await s.configure("slot-001")
    status, headers, body = await s.ingest("slot-001", PHOTO, content_type="image/png", **kw)
    job_id = headers.get("X-Job-Id") or json.loads(body).get("job_id")
    return status, body, await s.wait_job(job_id, lambda j: j["is_finalized"])


async def gemini_calls(emulator) -> list[dict]:
    return [r for r in await emulator_requests(emulator) if r["provider"] == "gemini"]


async def test_no_image_twice_then_an_image_answers_200(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["no_image", "no_image", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200, body[:300]
    assert job["status"] == "succeeded" and job["provider_requests"] == 3
    assert job["provider_response_id"]
    assert job["provider_tokens"] > 0  # every attempt's usage, the image-less ones included
    assert [c["outcome"] for c in await gemini_calls(emulator)] == ["no_image", "no_image", "ok"]


async def test_no_image_forever_ends_504_inside_the_window_and_no_call_after_the_deadline(
        make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", no_image_rate=1.0, latency_seconds=0.2)
    cfg = make_cfg(ingest__sync_response_seconds=2.5, providers__gemini__max_attempts=100)  # the deadline stops it
    async with Studio(cfg, pg_dsn) as s:
        sent = time.time()
        status, body, job = await run_one(s)
        answered = time.time()
    assert status == 504
    assert json.loads(body)["failure_reason"] == "timeout"
    assert job["status"] == "timeout"
    assert answered - sent <= 2.5 + 0.2
    calls = await gemini_calls(emulator)
    assert len(calls) >= 2 and job["provider_requests"] == len(calls)
    outcomes = [c["outcome"] for c in calls]
    # every answer was NO_IMAGE; only the attempt in flight at the deadline may have been cut off
    assert set(outcomes[:-1]) == {"no_image"} and outcomes[-1] in ("no_image", "cancelled")
    assert max(c["received_at"] for c in calls) < sent + 2.5  # nothing sent after the deadline


async def test_no_image_forever_stops_at_max_attempts_with_a_502_that_says_why(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", no_image_rate=1.0)
    async with Studio(make_cfg(ingest__sync_response_seconds=20), pg_dsn) as s:
        started = time.monotonic()
        status, body, job = await run_one(s)
        took = time.monotonic() - started
    assert status == 502 and json.loads(body)["failure_reason"] == "provider_error"
    assert job["provider_requests"] == 3 and len(await gemini_calls(emulator)) == 3  # the default max_attempts
    assert job["failure_detail"].startswith("finish reason NO_IMAGE × 3 from gemini")
    assert took < 10  # the cap, not the 20 s window


async def test_503_on_every_call_ends_after_max_attempts_naming_the_status_and_count(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    cfg = make_cfg(ingest__sync_response_seconds=20, providers__gemini__max_attempts=2)
    async with Studio(cfg, pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502 and job["failure_reason"] == "provider_error"
    assert job["failure_detail"].startswith("HTTP 503 × 2 from gemini, last: HTTP 503")
    assert len(await gemini_calls(emulator)) == 2


async def test_a_timeout_detail_names_what_the_provider_answered_meanwhile(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    cfg = make_cfg(ingest__sync_response_seconds=2, providers__gemini__max_attempts=100,
                   providers__gemini__down_after_failures=100)
    async with Studio(cfg, pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 504 and job["failure_reason"] == "timeout"
    assert job["failure_detail"].startswith("no result within the response window; the provider: HTTP 503 × ")
    assert "from gemini, last: HTTP 503" in job["failure_detail"]


async def test_a_missing_api_key_is_stored_and_answered_as_provider_unavailable(make_cfg, pg_dsn, emulator):
    async with Studio(make_cfg(providers__gemini__api_key=None), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 503 and json.loads(body)["failure_reason"] == "provider_unavailable"
    assert job["status"] == "failed" and job["failure_reason"] == "provider_unavailable"
    assert "API key is not configured" in job["failure_detail"]
    assert await gemini_calls(emulator) == []


async def test_429_then_success_is_retried_within_the_deadline(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["fail:429", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200, body[:300]
    assert job["provider_requests"] == 2
    assert [c["outcome"] for c in await gemini_calls(emulator)] == ["http_429", "ok"]


async def test_503_then_success_is_retried(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["fail:503", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200 and job["provider_requests"] == 2


async def test_400_fails_at_once_without_retry(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["fail:400", "ok"])
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        started = time.monotonic()
        status, body, job = await run_one(s)
        took = time.monotonic() - started
    assert status == 502
    answer = json.loads(body)
    assert answer["failure_reason"] == "provider_error"
    assert job["status"] == "failed" and job["failure_reason"] == "provider_error"
    assert "HTTP 400" in job["failure_detail"]
    assert job["provider_requests"] == 1 and len(await gemini_calls(emulator)) == 1
    assert took < 5  # failed on the answer, not at the 10 s deadline


async def test_safety_block_fails_as_provider_refused_with_a_readable_reason(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["safety"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502
    assert json.loads(body)["failure_reason"] == "provider_refused"
    assert job["status"] == "failed" and job["failure_reason"] == "provider_refused"
    assert "blocked" in job["failure_detail"] and "SAFETY" in job["failure_detail"]
    assert len(await gemini_calls(emulator)) == 1


async def test_image_that_does_not_decode_fails_as_invalid_result(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["not_image"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
        assert s.files("results") == []
    assert status == 502 and job["failure_reason"] == "invalid_result"
