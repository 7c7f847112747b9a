"""Alerts: fire once when they start and once when they clear — log line, gauge, webhook POST.

The webhook is received by a real aiohttp server on loopback.
"""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from photoslot import alerts
from photoslot.context import AppContext
from photoslot.sweeper import sweep_and_deliver, sweep_once
from tests import logscan
from tests.conftest import emulator_control, free_port
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


class Receiver:
    """A webhook endpoint: records every JSON body; can be told to hang or to fail."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.hang = False
        self.status = 200
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.arrived.set()
        if self.hang:
            await self.release.wait()
        return web.Response(status=self.status)

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc) -> None:
        self.release.set()
        await self.runner.cleanup()

    def of(self, alert: str) -> list[str]:
        return [r["state"] for r in self.received if r["alert"] == alert]


async def alert_gauge(s: Studio, name: str) -> str:
    async with s.http.get(f"{s.base_url}/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith("photoslot_alert_active{") and f'alert="{name}"' in line:
            return line.rsplit(" ", 1)[1]
    return "absent"


async def test_timeout_share_alert_fires_once_and_clears_once_with_log_gauge_and_webhook(make_cfg, pg_dsn):
    async with Receiver() as hook:
        cfg = make_cfg(alerts__webhook_url=hook.url, alerts__min_jobs=3, alerts__window_minutes=5)
        async with Studio(cfg, pg_dsn, workers=0) as s:
            await s.configure("slot-001")
            for _ in range(3):
                await s.queue_job(created_ago=30, window=3)  # deadline long gone, nobody answered
            start = logscan.mark()
            report = await sweep_and_deliver(s.ctx)
            assert report["jobs_timed_out"] == 3
            assert hook.of("timeout_ratio") == ["firing"]
            assert await alert_gauge(s, "timeout_ratio") == "1.0"
            firing = [line for line in logscan.since(start) if "event=alert " in line]
            assert len(firing) == 1 and "ERROR" in firing[0] and "alert=timeout_ratio" in firing[0]
            body = hook.received[0]
            assert body["severity"] == "error" and body["value"] == 1.0 and body["threshold"] == 0.05
            assert "3 of 3 jobs timed out" in body["message"]

            await sweep_and_deliver(s.ctx)  # still firing: nothing new is announced
            assert hook.of("timeout_ratio") == ["firing"]

            s.clock.advance(5 * 60 + 1)  # the timeouts leave the window
            await sweep_and_deliver(s.ctx)
            assert hook.of("timeout_ratio") == ["firing", "resolved"]
            assert await alert_gauge(s, "timeout_ratio") == "0.0"
            await sweep_and_deliver(s.ctx)
            assert hook.of("timeout_ratio") == ["firing", "resolved"]


async def test_queue_depth_alert_fires_at_the_ingest_limit_and_clears_when_drained(make_cfg, pg_dsn):
    async with Receiver() as hook:
        cfg = make_cfg(alerts__webhook_url=hook.url, ingest__max_pending_jobs=3)
        async with Studio(cfg, pg_dsn, workers=0) as s:
            await s.configure("slot-001")
            for _ in range(3):
                await s.queue_job(created_ago=0, window=20)
            await sweep_and_deliver(s.ctx)
            assert hook.of("queue_depth") == ["firing"]
            s.clock.advance(30)  # their deadlines pass; the sweeper finalizes them and the queue is empty
            await sweep_and_deliver(s.ctx)
            assert hook.of("queue_depth") == ["firing", "resolved"]


async def test_media_disk_alert_follows_the_threshold(make_cfg, pg_dsn):
    async with Receiver() as hook:
        cfg = make_cfg(alerts__webhook_url=hook.url, alerts__media_disk_used_percent=0)
        async with Studio(cfg, pg_dsn, workers=0) as s:
            await sweep_and_deliver(s.ctx)
            assert hook.of("media_disk") == ["firing"]
            assert "media filesystem" in hook.received[0]["message"]
            cfg.set("alerts.media_disk_used_percent", 100)
            await sweep_and_deliver(s.ctx)
            assert hook.of("media_disk") == ["firing", "resolved"]


async def test_provider_failing_repeatedly_fires_and_a_success_clears_it(make_cfg, pg_dsn, emulator, photo_bytes):
    async with Receiver() as hook:
        cfg = make_cfg(alerts__webhook_url=hook.url, alerts__provider_failures=2)
        async with Studio(cfg, pg_dsn) as s:
            await s.set_password()
            await s.configure("slot-001")
            await emulator_control(emulator, fail_rate=1.0, fail_status=400)
            for _ in range(2):
                assert (await s.ingest("slot-001", photo_bytes))[0] == 502
            await sweep_and_deliver(s.ctx)
            assert hook.of("provider_failing:gemini") == ["firing"]
            assert hook.of("provider_failing:turbotext") == []
            await emulator_control(emulator, fail_rate=0.0)
            assert (await s.ingest("slot-001", photo_bytes))[0] == 200
            await sweep_and_deliver(s.ctx)
            assert hook.of("provider_failing:gemini") == ["firing", "resolved"]


async def test_quota_nearly_spent_fires_as_a_warning(make_cfg, pg_dsn, photo_bytes):
    async with Receiver() as hook:
        cfg = make_cfg(alerts__webhook_url=hook.url, alerts__quota_used_percent=50,
                       providers__gemini__requests_per_day=4)
        async with Studio(cfg, pg_dsn) as s:
            await s.set_password()
            await s.configure("slot-001")
            assert (await s.ingest("slot-001", photo_bytes))[0] == 200
            await sweep_and_deliver(s.ctx)
            assert hook.of("quota:gemini") == []
            start = logscan.mark()
            assert (await s.ingest("slot-001", photo_bytes))[0] == 200
            await sweep_and_deliver(s.ctx)
            assert hook.of("quota:gemini") == ["firing"]
            line, = [x for x in logscan.since(start) if "event=alert " in x]
            assert "WARNING" in line and "2 of 4 daily requests" in line


async def test_two_processes_evaluating_at_once_announce_a_transition_once(make_cfg, pg_dsn):
    async with Receiver() as hook:
        cfg = make_cfg(alerts__webhook_url=hook.url, alerts__media_disk_used_percent=0)
        async with Studio(cfg, pg_dsn, workers=0) as s:
            twin = await AppContext.open(cfg, clock=s.clock, dsn=pg_dsn)
            try:
                await asyncio.gather(*(alerts.evaluate(c, now=s.clock.now()) for c in (s.ctx, twin, s.ctx, twin)))
                await alerts.drain(5)
            finally:
                await twin.close()
            assert hook.of("media_disk") == ["firing"]


async def test_a_hanging_or_dead_webhook_never_holds_up_the_sweeper(make_cfg, pg_dsn):
    async with Receiver() as hook:
        hook.hang = True
        cfg = make_cfg(alerts__webhook_url=hook.url, alerts__media_disk_used_percent=0,
                       alerts__webhook_timeout_seconds=1)
        async with Studio(cfg, pg_dsn, workers=0) as s:
            start = logscan.mark()
            report = await sweep_once(s.ctx)
            assert report["alerts_changed"] == 1 and report["errors"] == []
            # the pass is over while the receiver still holds the request open
            await asyncio.wait_for(hook.arrived.wait(), 5)
            assert len(alerts._deliveries) == 1
            await alerts.drain(5)
            failed = [x for x in logscan.since(start) if "event=alert_webhook_failed" in x]
            assert len(failed) == 1 and "TimeoutError" in failed[0]
            # a receiver that is not there at all: logged, the pass still completes
            cfg.set("alerts.webhook_url", f"http://127.0.0.1:{free_port()}/nobody")
            cfg.set("alerts.media_disk_used_percent", 100)
            report = await sweep_once(s.ctx)
            assert report["alerts_changed"] == 1 and report["errors"] == []
            await alerts.drain(5)
            failed = [x for x in logscan.since(start) if "event=alert_webhook_failed" in x]
            assert len(failed) == 2 and "state=resolved" in failed[1]
    assert json.dumps(hook.received)  # the body was JSON
