"""The provider-down drill with real processes (docs/RELIABILITY.md): `serve --workers 0` and two
`work` processes on one PostgreSQL, Gemini played by a `photoslot emulate` process this test
starts, stops and starts again.

1. the emulator answers 503 to every call → after `down_after_failures` failed calls gemini is
   down: the shots already queued end at once, new shots get 503 provider_unavailable in < 100 ms,
   the `provider_down` alert fires once (webhook);
2. the emulator is gone (connection refused) → after the cool-down exactly one probe call, which
   fails: still down, a new cool-down;
3. the emulator is back and healthy → within cool-down + one probe the shots succeed again, and
   the alert resolves once.
Every process sees the same state: while gemini is down no process sends it a single call, and
after each cool-down exactly one probe goes out, whichever process makes it.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import pytest
from aiohttp import web

from tests.acceptance.procs import cli, post_photo, start, start_serve
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

DOWN_AFTER = 5
COOLDOWN = 3.0
FIGURES: dict = {}  # what the drill measured; printed for docs/RELIABILITY.md


async def start_emulator(config, dsn, port):
    emu = await start(config, dsn, "emulate", "--port", str(port), name="emulate")
    end = time.monotonic() + 30
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(f"http://127.0.0.1:{port}/emulator/stats") as r:
                    if r.status == 200:
                        return emu
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < end, emu.output[-2000:]
            await asyncio.sleep(0.1)


async def control(port, **body):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/emulator/control", json=body) as r:
            assert r.status == 200, await r.text()


async def gemini_calls(port) -> int:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/emulator/stats") as r:
            return (await r.json())["gemini"]["requests"]


async def timed_shot(port, photo):
    started = time.monotonic()
    status, headers, body = await post_photo(port, photo, timeout=40)
    return status, headers, (json.loads(body) if status != 200 else None), (time.monotonic() - started) * 1000


async def test_provider_down_drill_serve_and_two_work_processes(studio_config, pg_dsn, photo_bytes):
    hooks: list[dict] = []

    async def receive(request):
        hooks.append(await request.json())
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    runner = web.AppRunner(receiver)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    emu_port = free_port()
    config, port = studio_config(
        ingest__sync_response_seconds=20, providers__gemini__base_url=f"http://127.0.0.1:{emu_port}",
        providers__gemini__max_parallel=2, providers__gemini__down_after_failures=DOWN_AFTER,
        providers__gemini__down_cooldown_seconds=COOLDOWN, alerts__webhook_url=f"http://127.0.0.1:{hook_port}/hook",
        sweeper__interval_seconds=1)
    emu = await start_emulator(config, pg_dsn, emu_port)
    serve = await start_serve(config, pg_dsn, port, "--workers", "0")
    workers = [await start(config, pg_dsn, "work", "--concurrency", "2", name=f"work-{i}") for i in range(2)]
    try:
        for w in workers:
            await w.wait_for_line("photoslot work:")
        assert (await timed_shot(port, photo_bytes))[0] == 200

        # 1. every call answered 503: a burst of 6 shots (2 at the provider, 4 queued)
        await control(emu_port, provider="gemini", fail_rate=1.0, fail_status=503)
        burst = await asyncio.gather(*(timed_shot(port, photo_bytes) for _ in range(6)))
        assert all(b[0] in (502, 503) for b in burst), [(b[0], b[2]) for b in burst]
        assert sum(1 for b in burst if b[2]["failure_reason"] == "provider_unavailable") >= 4
        FIGURES["burst_slowest_ms"] = round(max(b[3] for b in burst))
        assert max(b[3] for b in burst) < 15000  # the queued ones ended at once, not at the 20 s window
        # A retry the other work process sent in the very moment the provider went down (its copy of
        # the health is one NOTIFY behind, a few ms; seen once in the whole suite) belongs to the
        # transition, not to "while down": count from a moment after it, well inside the cool-down.
        await asyncio.sleep(0.5)
        calls_when_down = await gemini_calls(emu_port)
        FIGURES["calls_to_go_down"] = calls_when_down - 1  # less the healthy first shot
        down = [await timed_shot(port, photo_bytes) for _ in range(10)]
        assert all(d[0] == 503 and d[2]["failure_reason"] == "provider_unavailable" and "job_id" not in d[2]
                   for d in down)
        assert all(int(d[1]["Retry-After"]) >= 1 for d in down)
        FIGURES["refused_ms_max"] = round(max(d[3] for d in down), 1)
        assert max(d[3] for d in down) < 100
        assert await gemini_calls(emu_port) == calls_when_down  # no process calls a down provider
        status = json.loads(cli(config, pg_dsn, "providers", "status", "--json").stdout)
        assert next(p for p in status if p["provider"] == "gemini")["state"] == "down"

        # 2. connection refused: after the cool-down one probe, which fails; still down
        await emu.stop()
        await asyncio.sleep(COOLDOWN + 0.3)
        probe = await timed_shot(port, photo_bytes)
        assert probe[0] in (502, 503), probe[2]
        FIGURES["refused_probe_ms"] = round(probe[3])
        after = await timed_shot(port, photo_bytes)
        assert after[0] == 503 and after[2]["failure_reason"] == "provider_unavailable" and after[3] < 100

        # 3. healthy again: shots succeed within cool-down + one probe
        emu = await start_emulator(config, pg_dsn, emu_port)
        healthy_at = time.monotonic()
        answers = []
        while True:
            shot = await timed_shot(port, photo_bytes)
            answers.append(shot[0])
            if shot[0] == 200:
                break
            assert time.monotonic() - healthy_at < COOLDOWN + 10, answers
            await asyncio.sleep(0.2)
        FIGURES["recovered_after_s"] = round(time.monotonic() - healthy_at, 2)
        assert time.monotonic() - healthy_at < COOLDOWN + 3
        assert await gemini_calls(emu_port) == 1  # the probe was the one call, from one process
        assert (await timed_shot(port, photo_bytes))[0] == 200
        await asyncio.sleep(1.5)  # webhook deliveries run in the background
        states = [(h["alert"], h["state"]) for h in hooks if h["alert"] == "provider_down:gemini"]
        assert states == [("provider_down:gemini", "firing"), ("provider_down:gemini", "resolved")], hooks
        print("\nprovider-down drill figures:", json.dumps(FIGURES))
    finally:
        for w in workers:
            await w.stop()
        await serve.stop()
        await emu.stop()
        await runner.cleanup()
