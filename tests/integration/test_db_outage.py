"""PostgreSQL going away under a running studio: fast 503s, no hang, no traceback, recovery by itself.

Uses a PostgreSQL of its own (tests/pg_instance.py), really stopped and started with pg_ctl.
"""
from __future__ import annotations

import asyncio
import gc
import json
import time

import pytest

from photoslot.sweeper import sweep_once
from photoslot import jobs
from tests import logscan
from tests.conftest import emulator_control
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


async def test_ingests_during_an_outage_answer_503_fast_and_the_studio_recovers_by_itself(
        make_cfg, own_pg, emulator, photo_bytes):
    cfg = make_cfg(database__dsn=own_pg.dsn, ingest__sync_response_seconds=3)
    async with Studio(cfg, own_pg.dsn, workers=2) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200

        # one ingest is mid-flight (provider working) when the database goes away
        await emulator_control(emulator, latency_seconds=1.0)
        in_flight = asyncio.create_task(s.ingest("slot-001", photo_bytes))
        await asyncio.sleep(0.4)
        start_log = logscan.mark()
        own_pg.stop()

        for _ in range(3):
            sent = time.monotonic()
            status, headers, body = await s.ingest("slot-001", photo_bytes)
            elapsed = time.monotonic() - sent
            answer = json.loads(body)
            assert status == 503 and answer["failure_reason"] == "database_unavailable", body[:300]
            assert headers.get("Retry-After") == "2"
            assert elapsed < 1.0, elapsed  # the bound: within a second, no hang
        async with s.http.get(f"{s.base_url}/readyz") as r:
            assert r.status == 503 and (await r.json())["checks"]["database"] is False
        async with s.http.get(f"{s.base_url}/metrics") as r:
            assert r.status == 200 and "photoslot_database_up 0.0" in await r.text()

        status, _, body = await in_flight  # answered inside its window, whatever the database did
        assert status in (504, 503, 200), body[:300]
        assert s.files("uploads") == [] or status == 504  # a 504 whose row could not be written is swept below

        own_pg.start_again()
        await emulator_control(emulator, latency_seconds=0)
        # no restart: the pool reconnects on the next ingest, the LISTEN connection on its own
        for _ in range(50):
            status, _, _ = await s.ingest("slot-001", photo_bytes)
            if status == 200:
                break
            await asyncio.sleep(0.2)
        assert status == 200
        await asyncio.wait_for(s.ctx.listener.connected.wait(), 10)

        # whatever the outage left half-done is finalized and cleaned by the sweeper
        s.clock.advance(cfg.get("sweeper.orphan_grace_seconds") + 5)
        report = await sweep_once(s.ctx)
        assert report["errors"] == []
        rows = await jobs.list_recent(s.ctx.db, status=None, limit=50)
        assert all(r["is_finalized"] for r in rows)
        assert s.files("uploads") == []
        succeeded = {f"{r['id']}.jpg" for r in rows if r["status"] == "succeeded"}
        assert set(s.files("results")) == succeeded

        logged = logscan.since(start_log)
        assert not any("Traceback" in line for line in logged)


async def test_a_provider_failure_met_by_an_outage_ends_its_attempt_with_one_line_not_a_lost_task(
        make_cfg, own_pg, emulator, photo_bytes):
    """The provider refuses while PostgreSQL is away: the failure cannot be written, and the
    attempt ends with `job_db_unavailable` (the job's lease runs out, the sweeper ends it) instead
    of an exception nobody reads ("Task exception was never retrieved" — the event day met it)."""
    cfg = make_cfg(database__dsn=own_pg.dsn, ingest__sync_response_seconds=3, providers__gemini__max_attempts=1)
    async with Studio(cfg, own_pg.dsn, workers=1) as s:
        await s.set_password()
        await s.configure("slot-001")
        await emulator_control(emulator, latency_seconds=1.0, fail_rate=1.0, fail_status=400)
        start_log = logscan.mark()
        in_flight = asyncio.create_task(s.ingest("slot-001", photo_bytes))
        await asyncio.sleep(0.5)  # the call is out
        own_pg.stop()
        status, _, body = await in_flight
        assert status in (502, 503, 504), body[:300]
        await asyncio.sleep(0.5)
        gc.collect()  # an exception nobody read is reported when its task is collected
        logged = logscan.since(start_log)
        assert any("event=job_db_unavailable" in line for line in logged), logged[-20:]
        assert not any("never retrieved" in line or "Traceback" in line for line in logged), logged[-20:]
        own_pg.start_again()
