"""Long-running processes: `photoslot serve` and `photoslot work`, with graceful shutdown.

serve on SIGINT/SIGTERM: stop accepting → let in-flight ingests finish for
`server.shutdown_grace_seconds` → answer the rest at once (their jobs finalized) → stop workers,
handing any job still running for another process's ingest back to the queue. No job is left
`processing` by a clean stop.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from datetime import datetime, timezone

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from photoslot import filemodes, secrets, tls, users
from photoslot import settings as live_settings
from photoslot.context import AppContext
from photoslot.logs import event
from photoslot.server.app import build_app
from photoslot.server.connection_guard import limit_accept_error_logs, make_runner
from photoslot.server.keys import INGEST
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


class _Sweeper:
    """APScheduler running sweep passes; stop() lets a running pass finish instead of cancelling
    it halfway through (APScheduler's shutdown cancels running coroutine jobs)."""

    def __init__(self, scheduler, idle: asyncio.Event) -> None:
        self.scheduler = scheduler
        self.idle = idle

    async def stop(self, timeout: float = 10) -> None:
        self.scheduler.pause()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.idle.wait(), timeout)
        self.scheduler.shutdown(wait=False)


def _start_sweeper(ctx) -> _Sweeper:
    idle = asyncio.Event()
    idle.set()

    async def tick() -> None:
        idle.clear()
        try:
            await sweep_once(ctx)
        except Exception as exc:  # a failed pass is retried next interval; never kill the scheduler
            event(log, "sweep_failed", logging.ERROR, error=f"{exc.__class__.__name__}: {exc}")
        finally:
            idle.set()

    scheduler = AsyncIOScheduler()
    # First pass at start-up: after a crash or downtime the leftovers go within seconds, not one interval.
    scheduler.add_job(tick, "interval", seconds=float(ctx.cfg.get("sweeper.interval_seconds")),
                      max_instances=1, coalesce=True, id="sweep", next_run_time=datetime.now(timezone.utc))
    scheduler.start()
    return _Sweeper(scheduler, idle)


async def serve(cfg, *, host: str, port: int, workers: int, out=print) -> None:
    filemodes.make_private(cfg)
    filemodes.warn_if_config_exposed(cfg)
    ctx = await AppContext.open(cfg, listen=True)
    await secrets.encrypt_plaintext(ctx)  # creates the settings key on first start
    first_password = await live_settings.ensure_ingest_password(ctx.db, cfg, ctx.clock)
    pool = WorkerPool(ctx, workers, name="serve") if workers > 0 else None
    await ctx.start_listener()
    shutdown = asyncio.Event()
    app = build_app(ctx, shutdown=shutdown)
    limit_accept_error_logs(asyncio.get_running_loop())
    runner = make_runner(app, cfg)  # header timeout and connection caps in front of aiohttp
    await runner.setup()
    certs = tls.from_config(cfg)  # None = plain HTTP
    site = web.TCPSite(runner, host, port, ssl_context=certs.context if certs else None)
    await site.start()
    if certs is not None:
        certs.start()
    if pool is not None:
        pool.start()
    scheduler = _start_sweeper(ctx)
    stop = asyncio.Event()
    _install_stop_handlers(stop)

    bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port
    scheme = "https" if certs else "http"
    out(f"photoslot serving on {scheme}://{host}:{bound}  (workers: {workers}, media: {ctx.media.root})")
    if not cfg.get("server.public_base_url"):
        # Every URL any photoslot process prints or hands out (slot list, result links, the links
        # Turbotext fetches) follows the port this serve really listens on.
        cfg.served_base_url = cfg.listen_base_url(bound)
        await live_settings.record_served_base_url(ctx.db, ctx.clock, cfg.served_base_url)
    out(f"ingest URL pattern: {cfg.public_base_url()}/ingest/slot-001 … slot-015  (form fields: password, fileToUpload)")
    if not cfg.get("server.public_base_url"):
        out("(this PC only: for booths on other PCs and for Turbotext set server.public_base_url, docs/DEPLOY.md)")
    shown = []
    if first_password:
        shown.append(f"ingest password (shown once, change with `photoslot settings set --ingest-password`): "
                     f"{first_password}")
    for name, password in users.ensure_admins(cfg).items():
        shown.append(f"admin {name} password (shown once, new one with `photoslot users reset {name}`): {password}")
    # A service manager keeps stdout in its journal: without a terminal the passwords go to a 0600 file.
    secrets.deliver_first_start(cfg, shown, out=out, interactive=sys.stdout.isatty())
    sys.stdout.flush()

    await stop.wait()
    event(log, "shutdown_started", in_flight=len(app[INGEST].in_flight))
    await site.stop()
    grace = float(cfg.get("server.shutdown_grace_seconds"))
    ingest = app[INGEST]
    if ingest.in_flight:
        await asyncio.wait(set(ingest.in_flight), timeout=grace)
    shutdown.set()  # whoever is still waiting is answered now, its job finalized
    ctx.waiters.wake_all()
    if ingest.in_flight:
        await asyncio.wait(set(ingest.in_flight), timeout=5)
    if pool is not None:
        await pool.stop(grace=0)
    await scheduler.stop()
    if certs is not None:
        await certs.stop()
    await runner.cleanup()
    await ctx.close()
    event(log, "shutdown_complete")


async def work(cfg, *, concurrency: int, out=print) -> None:
    filemodes.make_private(cfg)
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
