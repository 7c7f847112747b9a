"""Provider health through the real app, workers, PostgreSQL and the emulator: N failed calls take
the provider down, its shots are refused 503 at once, queued jobs end at once, the alert fires once;
after the cool-down one probe call brings it back and the alert resolves."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from photoslot import provider_health
from tests.conftest import FIXTURES, emulator_control, emulator_requests
from tests.integration.adminapi import logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


def health_cfg(make_cfg, **kw):
    return make_cfg(ingest__sync_response_seconds=20, providers__gemini__down_after_failures=2,
                    providers__gemini__down_cooldown_seconds=2, providers__gemini__max_parallel=1,
                    alerts__webhook_url=None, **kw)


async def shot(s):
    started = time.monotonic()
    status, headers, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
    return status, headers, (json.loads(body) if status != 200 else None), time.monotonic() - started


async def alert_rows(s):
    return {r["name"]: r for r in await s.ctx.db.fetchall("ops_alert_states")}


async def test_a_provider_failing_goes_down_refuses_shots_at_once_and_comes_back_after_one_probe(
        make_cfg, pg_dsn, emulator, caplog):
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503, latency_seconds=0.3)
    async with Studio(health_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        # A runs (max_parallel 1), B waits in the queue; A's two failed calls take gemini down
        first = asyncio.create_task(shot(s))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(shot(s))
        (a_status, _, a_body, _), (b_status, b_headers, b_body, b_took) = await asyncio.wait_for(
            asyncio.gather(first, second), 10)
        assert a_status == 503 and a_body["failure_reason"] == "provider_unavailable"
        assert b_status == 503 and b_body["failure_reason"] == "provider_unavailable"
        assert b_took < 5 and int(b_headers["Retry-After"]) >= 1  # ended at once, not at the 20 s window
        assert "gemini is down after 2 failed calls" in b_body["details"]
        calls = len(await emulator_requests(emulator))
        assert calls == 2

        # while down: refused before the photo is read, from memory, and no call goes out
        status, headers, body, took = await shot(s)
        assert status == 503 and body["failure_reason"] == "provider_unavailable" and "job_id" not in body
        assert took < 0.5 and 1 <= int(headers["Retry-After"]) <= 2
        assert len(await emulator_requests(emulator)) == calls
        alerts = await alert_rows(s)
        assert alerts["provider_down:gemini"]["active"] is True
        api = await logged_in(s)
        _, _, board = await api.call("GET", "/api/providers/health")
        gemini = next(p for p in board["data"] if p["provider"] == "gemini")
        assert gemini["state"] == "down" and gemini["consecutive_failures"] == 2
        assert gemini["last_problem"].startswith("HTTP 503")
        async with s.http.get(f"{s.base_url}/readyz") as r:
            ready = await r.json()
        assert r.status == 200 and ready["providers"]["gemini"]["state"] == "down"
        async with s.http.get(f"{s.base_url}/metrics") as r:
            text = await r.text()
        assert 'photoslot_provider_up{provider="gemini"} 0.0' in text
        assert 'photoslot_provider_up{provider="turbotext"} 1.0' in text

        # healthy again; after the cool-down the next shot is the probe, and it brings gemini back
        await emulator_control(emulator, provider="gemini", fail_rate=0.0, latency_seconds=0.0)
        await asyncio.sleep(2.1)
        status, _, _, _ = await shot(s)
        assert status == 200
        assert s.ctx.health.get("gemini").state == "up"
        assert (await alert_rows(s))["provider_down:gemini"]["active"] is False
        async with s.http.get(f"{s.base_url}/metrics") as r:
            assert 'photoslot_provider_up{provider="gemini"} 1.0' in await r.text()
    fired = [r.getMessage() for r in caplog.records if "alert=provider_down:gemini" in r.getMessage()]
    assert len([m for m in fired if "state=firing" in m]) == 1
    assert len([m for m in fired if "state=resolved" in m]) == 1


async def test_a_failed_probe_restarts_the_cool_down_and_ends_the_jobs_that_waited_for_it(
        make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    async with Studio(health_cfg(make_cfg, providers__gemini__max_attempts=1), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await shot(s))[0] == 502  # one call (max_attempts 1), one failure
        assert (await shot(s))[0] == 503  # the second failure takes gemini down, ending its own job too
        assert s.ctx.health.get("gemini").is_down
        await asyncio.sleep(2.1)
        # the probe's call is slow and fails; a shot arriving meanwhile waits in the queue for it
        await emulator_control(emulator, provider="gemini", latency_seconds=1.0)
        probe = asyncio.create_task(shot(s))
        await asyncio.sleep(0.4)
        waiting = asyncio.create_task(shot(s))
        (p_status, _, _, _), (w_status, _, w_body, w_took) = await asyncio.gather(probe, waiting)
        assert p_status in (502, 503)
        assert w_status == 503 and w_body["failure_reason"] == "provider_unavailable" and w_took < 3
        h = s.ctx.health.get("gemini")
        assert h.is_down and h.probe_job is None and h.failures == 3
        status, headers, body, took = await shot(s)
        assert status == 503 and body["failure_reason"] == "provider_unavailable" and took < 0.5
        assert len(await emulator_requests(emulator)) == 3  # exactly one probe call


async def test_every_process_sees_the_same_health_through_postgresql(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    cfg = health_cfg(make_cfg, providers__gemini__max_attempts=1)
    async with Studio(cfg, pg_dsn) as s, Studio(cfg, pg_dsn, workers=0) as other:
        await s.set_password()
        await s.configure("slot-001")
        for _ in range(2):
            await shot(s)
        for _ in range(40):  # the NOTIFY reaches the other process's copy
            if other.ctx.health.get("gemini").is_down:
                break
            await asyncio.sleep(0.05)
        assert other.ctx.health.get("gemini").is_down
        status, _, body, _ = await shot(other)
        assert status == 503 and body["failure_reason"] == "provider_unavailable"
        rows = await provider_health.board_view(other.ctx, ["gemini"])
        assert rows[0]["state"] == "down"


async def test_calls_sent_too_late_to_answer_in_time_do_not_take_the_provider_down(make_cfg, pg_dsn, emulator):
    # One call at a time, each taking 1.5 s of a 2.5 s window: the shot queued behind the first is
    # sent with 1 s left, less than half its window, and cut off at its deadline. That says nothing
    # of the provider (a restart of PostgreSQL strands a whole queue the same way): it stays up.
    await emulator_control(emulator, provider="gemini", latency_seconds=1.5)
    cfg = make_cfg(ingest__sync_response_seconds=2.5, ingest__sync_response_bounds=[2, 3],
                   providers__gemini__down_after_failures=1, providers__gemini__max_parallel=1,
                   providers__gemini__max_attempts=1, alerts__webhook_url=None)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        first = asyncio.create_task(shot(s))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(shot(s))
        (a_status, *_), (b_status, *_) = await asyncio.wait_for(asyncio.gather(first, second), 15)
        assert a_status == 200 and b_status == 504
        await asyncio.sleep(0.3)
        (health,) = await provider_health.board_view(s.ctx, ["gemini"])
        assert health["state"] == "up" and health["consecutive_failures"] == 0
        # a call that had its whole window and still did not answer is the provider's failure
        await emulator_control(emulator, provider="gemini", latency_seconds=5)
        assert (await shot(s))[0] == 504
        await asyncio.sleep(0.3)
        (health,) = await provider_health.board_view(s.ctx, ["gemini"])
        assert health["state"] == "down"



def probe_cfg(make_cfg):
    return make_cfg(ingest__sync_response_seconds=20, providers__gemini__down_after_failures=1,
                    providers__gemini__down_cooldown_seconds=0.5, providers__gemini__max_attempts=1,
                    alerts__webhook_url=None)


async def down_with_its_probe_due_and_a_hanging_provider(s, emulator) -> None:
    """Gemini taken down by one failed shot, its cool-down over (the next job is the probe), and
    every call from now on left hanging."""
    await s.set_password()
    await s.configure("slot-001")
    assert (await shot(s))[0] == 503
    await asyncio.sleep(0.6)
    await emulator_control(emulator, provider="gemini", fail_rate=0.0, hang=True)


async def the_probe_running(s) -> None:
    for _ in range(100):
        (health,) = await provider_health.board_view(s.ctx, ["gemini"])
        if health["probe_running"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no probe running: {health}")



async def test_a_probe_handed_back_by_a_stopping_worker_is_free_for_the_next_shot_at_once(make_cfg, pg_dsn, emulator):
    # serve restarted while the probe call was out: the job goes back to the queue, and the probe's
    # lease with it — the provider must not stay down for the lease's minute
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    async with Studio(probe_cfg(make_cfg), pg_dsn) as s:
        await down_with_its_probe_due_and_a_hanging_provider(s, emulator)
        probe_shot = asyncio.create_task(shot(s))
        await the_probe_running(s)
        await s.pool.stop(grace=0)  # the stop hands the job back
        s.pool = None
        (health,) = await provider_health.board_view(s.ctx, ["gemini"])
        assert health["state"] == "down" and not health["probe_running"]
        (row,) = [r for r in await s.ctx.db.fetchall("provider_health_all") if r["provider_id"] == "gemini"]
        assert row["probe_job"] is None and row["probe_until"] is None
        await emulator_control(emulator, provider="gemini", hang=False)
        probe_shot.cancel()
        await asyncio.gather(probe_shot, return_exceptions=True)


async def test_a_probe_cut_off_too_late_to_count_is_handed_back_not_held_for_its_lease(make_cfg, pg_dsn, emulator):
    # The probe's job waited in the queue: its call went out with a fifth of the window left and was
    # cut off at the deadline. That says nothing about the provider (health_rule.timed_out), so
    # nothing is reported — and the probe must be free for the next job at once, not held for its
    # lease while every shot admitted for it waits into a 504 (the two-minute event day met that).
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    async with Studio(probe_cfg(make_cfg), pg_dsn) as s:
        await down_with_its_probe_due_and_a_hanging_provider(s, emulator)
        job_id = await s.queue_job("slot-001", created_ago=8, window=10)  # 2 s of its 10 s left
        await the_probe_running(s)
        await s.wait_job(job_id, lambda j: j["is_finalized"] or j["lease_expires_at"] is None, timeout=10)
        for _ in range(40):  # the hand-back runs beside the attempt's end
            (row,) = [r for r in await s.ctx.db.fetchall("provider_health_all") if r["provider_id"] == "gemini"]
            if row["probe_job"] is None:
                break
            await asyncio.sleep(0.05)
        assert row["probe_job"] is None and row["probe_until"] is None, row  # the lease would hold it 8 s more
        (health,) = await provider_health.board_view(s.ctx, ["gemini"])
        assert health["state"] == "down" and health["consecutive_failures"] == 1  # nothing was counted
        await emulator_control(emulator, provider="gemini", hang=False)
