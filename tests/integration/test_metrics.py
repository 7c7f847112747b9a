"""GET /metrics: Prometheus text with process-local instruments and values read from PostgreSQL."""
from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from photoslot import metrics
from photoslot.context import AppContext
from photoslot.worker.pool import WorkerPool
from tests.conftest import emulator_control
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


async def scrape(s: Studio) -> dict:
    async with s.http.get(f"{s.base_url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_ingest_latency_histogram_by_slot_and_outcome_and_answers_by_status(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        assert (await s.ingest("slot-001", photo_bytes, password="wrong"))[0] == 401
        assert (await s.ingest("slot-099", photo_bytes))[0] == 404
        m = await scrape(s)
        assert value(m, "photoslot_ingest_duration_seconds_count", slot="slot-001", outcome="succeeded") == 1
        assert value(m, "photoslot_ingest_duration_seconds_count", slot="slot-001", outcome="invalid_password") == 1
        assert value(m, "photoslot_ingest_duration_seconds_count", slot="invalid", outcome="slot_not_found") == 1
        # p95 is derivable: the histogram has its +Inf bucket and finer ones below the response window
        assert value(m, "photoslot_ingest_duration_seconds_bucket", slot="slot-001", outcome="succeeded", le="+Inf") == 1
        assert value(m, "photoslot_ingest_duration_seconds_bucket", slot="slot-001", outcome="succeeded", le="60.0") == 1
        for status in ("200", "401", "404"):
            assert value(m, "photoslot_ingest_answers_total", status=status) == 1
        assert value(m, "photoslot_provider_call_duration_seconds_count", provider="gemini", outcome="ok") == 1
        assert value(m, "photoslot_database_up") == 1


async def test_database_values_count_jobs_processed_by_a_worker_in_another_process(make_cfg, pg_dsn, photo_bytes):
    cfg = make_cfg()
    # The serving studio has no workers of its own: a separate context (another host's `work`) runs the jobs.
    async with Studio(cfg, pg_dsn, workers=0) as s:
        await s.set_password()
        await s.configure("slot-001")
        other = await AppContext.open(cfg, dsn=pg_dsn, listen=True)
        pool = WorkerPool(other, 2, name="elsewhere")
        await other.start_listener()
        pool.start()
        try:
            for _ in range(2):
                status, _, _ = await s.ingest("slot-001", photo_bytes)
                assert status == 200
        finally:
            await pool.stop(grace=0)
            await other.close()
        m = await scrape(s)
        assert value(m, "photoslot_window_jobs", provider="gemini", outcome="succeeded") == 2
        assert value(m, "photoslot_jobs", state="succeeded", reason="") == 2
        assert value(m, "photoslot_window_provider_requests", provider="gemini") == 2
        assert value(m, "photoslot_quota_used", provider="gemini", period="day") == 2
        assert value(m, "photoslot_quota_left", provider="gemini", period="day") == cfg.get(
            "providers.gemini.requests_per_day") - 2
        assert value(m, "photoslot_window_processing_seconds", provider="gemini", quantile="0.95") > 0
        # this process called no provider itself; its own instruments say so
        assert value(m, "photoslot_provider_call_duration_seconds_count", provider="gemini", outcome="ok") is None
        assert metrics.of(other).provider_seconds.labels("gemini", "ok")._sum.get() > 0


async def test_queue_depth_jobs_by_state_and_timeout_ratio_follow_the_database(make_cfg, pg_dsn, emulator,
                                                                               photo_bytes):
    async with Studio(make_cfg(ingest__sync_response_seconds=2), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        await emulator_control(emulator, latency_seconds=3)
        assert (await s.ingest("slot-001", photo_bytes))[0] == 504
        await emulator_control(emulator, latency_seconds=0)
        m = await scrape(s)
        assert value(m, "photoslot_timeout_ratio") == 0.5
        assert value(m, "photoslot_window_jobs", provider="gemini", outcome="timeout") == 1
        assert value(m, "photoslot_jobs", state="timeout", reason="timeout") == 1
        await s.pool.stop(grace=0)
        s.pool = None
        import asyncio

        pending = asyncio.create_task(s.ingest("slot-001", photo_bytes))
        for _ in range(100):
            m = await scrape(s)
            if value(m, "photoslot_queue_depth", provider="gemini", state="pending") == 1:
                break
            await asyncio.sleep(0.02)
        assert value(m, "photoslot_queue_depth", provider="gemini", state="pending") == 1
        assert value(m, "photoslot_queue_depth", provider="gemini", state="processing") == 0
        assert (await pending)[0] == 504


async def test_media_bytes_by_kind_and_free_disk(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, body = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        m = await scrape(s)
        assert value(m, "photoslot_media_bytes", kind="results") == len(body)
        assert value(m, "photoslot_media_files", kind="results") == 1
        assert value(m, "photoslot_media_bytes", kind="uploads") == 0
        assert value(m, "photoslot_media_disk_free_bytes") > 0
        assert 0 < value(m, "photoslot_media_disk_used_ratio") < 1


async def test_db_pool_in_use_is_zero_at_rest_and_counts_a_connection_held(make_cfg, pg_dsn, photo_bytes):
    async def at_rest(s: Studio) -> float | None:
        """The gauge once the shot's own background write (its answer's timing) is done."""
        for _ in range(40):
            seen = value(await scrape(s), "photoslot_db_pool_in_use")
            if seen == 0:
                return seen
            await asyncio.sleep(0.05)
        return seen

    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        assert await at_rest(s) == 0  # every connection came back
        async with s.ctx.db.transaction():  # a connection held (as a leak would hold it)
            assert value(await scrape(s), "photoslot_db_pool_in_use") >= 1
            assert await at_rest(s) >= 1  # it does not come back while held
        assert await at_rest(s) == 0
