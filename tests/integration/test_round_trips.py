"""Round trips to PostgreSQL per shot on the happy path, counted by query name (not timed).

Every statement is a round trip on the answer's path or CPU in PostgreSQL; docs/PERFORMANCE.md
("A shot's own cost") lists what each one is for.
"""
from __future__ import annotations

import asyncio
import collections

import pytest

from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

# No fallback poll, ticker or sweeper during the shot: only the shot's own statements are counted.
QUIET = dict(workers__poll_interval_seconds=60)
# Periodic reads of other parts (the provider health's refresh) that may fall into the shot.
BACKGROUND = {"provider_health_all"}

# On the answer's path, one each: the admission (slot, live settings, queue depth, quota used), the
# job row, the claim (with the provider key), the request's accounting (quota windows and the
# job's count), the finalizing UPDATE — the answer is handed over in-process, not re-read.
# After the answer: its duration on the row, and the claim by the worker that the finished job's
# "a provider slot is free" notification wakes.
HAPPY_PATH = {"ingest_admission": 1, "job_insert": 1, "job_claim": 1, "quota_take_request": 1,
              "job_finalize_success": 1}
AFTER_THE_ANSWER = {"job_record_answer": 1, "job_claim": 1}


async def one_shot(s: Studio, photo: bytes) -> dict:
    s.ctx.db.statements.clear()
    status, headers, body = await s.ingest("slot-001", photo)
    assert status == 200, body[:300]
    await asyncio.sleep(1.0)  # what follows the answer (its accounting, wake-ups) lands too
    return {name: n for name, n in s.ctx.db.statements.items() if name not in BACKGROUND}


async def test_a_gemini_shot_costs_five_statements_to_its_answer_and_two_after(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(**QUIET), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await one_shot(s, photo_bytes)  # warm: the first shot may differ (connections, clients)
        counted = await one_shot(s, photo_bytes)
    expected = collections.Counter(HAPPY_PATH) + collections.Counter(AFTER_THE_ANSWER)
    assert counted == dict(expected)
    assert sum(HAPPY_PATH.values()) == 5


async def test_a_key_set_over_the_admin_api_reaches_the_provider_through_the_claim(make_cfg, pg_dsn, photo_bytes,
                                                                                   emulator):
    """The claim reads the stored key in its own round trip: the stored key still wins over the
    config file's, and the statement the attempt used to read it with is gone."""
    from photoslot import settings as live_settings
    from tests.conftest import emulator_requests

    async with Studio(make_cfg(**QUIET), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await live_settings.update(s.ctx.db, s.cfg, s.clock, actor="test", source="test",
                                   provider_keys={"gemini": "a-key-the-emulator-refuses"})
        s.ctx.db.statements.clear()
        status, _, body = await s.ingest("slot-001", photo_bytes)
        assert status == 502 or status == 503, body[:300]
        assert "settings_all" not in s.ctx.db.statements
    calls = [r for r in await emulator_requests(emulator) if r["provider"] == "gemini"]
    assert calls and all(c["outcome"] == "invalid_key" for c in calls)


async def test_commits_do_not_wait_for_the_disk_unless_configured(make_cfg, pg_dsn):
    """database.synchronous_commit: false (the default) → synchronous_commit=off on the pool's
    connections; true → PostgreSQL's default (on)."""
    for configured, expected in ((False, "off"), (True, "on")):
        async with Studio(make_cfg(database__synchronous_commit=configured), pg_dsn, workers=0) as s:
            async with s.ctx.db.pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SHOW synchronous_commit")
                assert (await cur.fetchone())[0] == expected
