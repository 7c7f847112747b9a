"""Long-running processes: `photoslot serve` and `photoslot work`, with graceful shutdown.

serve on SIGINT/SIGTERM: stop accepting → let in-flight ingests finish for
`server.shutdown_grace_seconds` → answer the rest at once (their jobs finalized) → stop workers,
handing any job still running for another process's ingest back to the queue. No job is left
`processing` by a clean stop.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from photoslot import settings as live_settings
from photoslot.context import AppContext
from photoslot.logs import event
from photoslot.server.app import INGEST, build_app
from photoslot.sweeper import sweep_once
from photoslot.worker.pool import WorkerPool

log = logging.getLogger("photoslot.runtime")


def _install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))


def _start_sweeper(ctx):
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    async def tick() -> None:
        try:
            await sweep_once(ctx)
        except Exception as exc:  # a failed pass is retried next interval; never kill the scheduler
            event(log, "sweep_failed", logging.ERROR, error=f"{exc.__class__.__name__}: {exc}")

    scheduler = AsyncIOScheduler()
    scheduler.add_job(tick, "interval", seconds=float(ctx.cfg.get("sweeper.interval_seconds")),
                      max_instances=1, coalesce=True, id="sweep")
    scheduler.start()
    return scheduler


async def serve(cfg, *, host: str, port: int, workers: int, out=print) -> None:
    ctx = await AppContext.open(cfg, listen=True)
    first_password = await live_settings.ensure_ingest_password(ctx.db, ctx.clock)
    pool = WorkerPool(ctx, workers, name="serve") if workers > 0 else None
    await ctx.start_listener()
    shutdown = asyncio.Event()
    app = build_app(ctx, shutdown=shutdown)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    if pool is not None:
        pool.start()
    scheduler = _start_sweeper(ctx)
    stop = asyncio.Event()
    _install_stop_handlers(stop)

    bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port
    out(f"photoslot serving on http://{host}:{bound}  (workers: {workers}, media: {ctx.media.root})")
    out(f"ingest URL pattern: {cfg.public_base_url() if cfg.get('server.public_base_url') else f'http://{host}:{bound}'}"
        f"/ingest/slot-001 … slot-015  (form fields: password, fileToUpload)")
    if first_password:
        out(f"ingest password (shown once, change with `photoslot settings set --ingest-password`): {first_password}")
    sys.stdout.flush()

    await stop.wait()
    event(log, "shutdown_started", in_flight=len(app[INGEST].in_flight))
    await site.stop()
    grace = float(cfg.get("server.shutdown_grace_seconds"))
    ingest = app[INGEST]
    if ingest.in_flight:
        await asyncio.wait(set(ingest.in_flight), timeout=grace)
    shutdown.set()  # whoever is still waiting is answered now, its job finalized
    if ingest.in_flight:
        await asyncio.wait(set(ingest.in_flight), timeout=5)
    if pool is not None:
        await pool.stop(grace=0)
    scheduler.shutdown(wait=False)
    await runner.cleanup()
    await ctx.close()
    event(log, "shutdown_complete")


async def work(cfg, *, concurrency: int, out=print) -> None:
    ctx = await AppContext.open(cfg, listen=True)
    pool = WorkerPool(ctx, concurrency, name="work")
    await ctx.start_listener()
    pool.start()
    stop = asyncio.Event()
    _install_stop_handlers(stop)
    out(f"photoslot work: {concurrency} workers on the configured database")
    sys.stdout.flush()
    await stop.wait()
    await pool.stop(grace=float(cfg.get("server.shutdown_grace_seconds")))
    await ctx.close()
