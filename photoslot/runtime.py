"""Long-running processes: `photoslot serve` and `photoslot work`, and their stop.

serve on SIGINT/SIGTERM: stop accepting and close idle kept-alive connections → let in-flight
ingests (and test shots) finish for `server.shutdown_grace_seconds` (a second signal ends the
grace) → answer the rest at once, uploads still trickling in included (their jobs finalized) →
stop workers, handing any job still running back to the queue → stop the sweeper → close every
connection → close the database. Each step is bounded (photoslot/stopping.py): the process exits
within the grace + 10 s whatever its clients, its provider or its database do; a step that had to
be cut off is named in a `shutdown_overdue` line and the exit code is 1. No job is left
`processing` by a stop that could reach its database.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
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
from photoslot.stopping import Stop
from photoslot.sweeper import sweep_once
from photoslot.worker.pool import WorkerPool

log = logging.getLogger("photoslot.runtime")


# Budgets of the stop's steps after the grace, seconds (each also ends at the bound, stopping.py).
ANSWER_BUDGET = 3.0    # the shots still in flight get their "shutting down" answer
WORKERS_BUDGET = 3.0   # provider calls cancelled, jobs handed back
SWEEPER_BUDGET = 2.0   # a running sweep pass finishes
HTTP_BUDGET = 3.0      # connections closed (aiohttp: SHUTDOWN_TIMEOUT per request still running)
DATABASE_BUDGET = 3.0  # the last counts written, the listener and the pool closed
POOL_RETURN_SECONDS = 1.0  # of which: connections still in use may take this long to come back


class _Sweeper:
    """APScheduler running sweep passes; stop() lets a running pass finish instead of cancelling
    it halfway through (APScheduler's shutdown cancels running coroutine jobs)."""

    def __init__(self, scheduler, idle: asyncio.Event) -> None:
        self.scheduler = scheduler
        self.idle = idle

    async def stop(self, timeout: float = SWEEPER_BUDGET) -> None:
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


async def serve(cfg, *, host: str, port: int, workers: int, out=print) -> int:
    """Run until SIGINT/SIGTERM; the exit code: 0, or 1 when the stop had to cut a step off."""
    filemodes.make_private(cfg)
    filemodes.warn_if_config_exposed(cfg)
    stop = Stop("serve", float(cfg.get("server.shutdown_grace_seconds")))
    stop.install()  # from the start: a signal during start-up is a stop too
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

    await stop.requested.wait()
    ingest = app[INGEST]
    guard = runner.server  # the ConnectionGuard around aiohttp's server
    event(log, "shutdown_started", in_flight=len(ingest.in_flight), grace_s=stop.grace, bound_s=stop.bound)
    await site.stop()  # no new connections
    guard.pre_shutdown()  # idle kept-alive connections close now, busy ones after their answer
    await stop.grace_for(ingest.in_flight, "shots")
    ingest.begin_shutdown()  # whoever is still waiting or uploading is answered now, its job finalized
    if not await stop.step("answering the shots still in flight", _answered(ingest.in_flight), ANSWER_BUDGET,
                           waiting=lambda: ingest.in_flight):
        for task in list(ingest.in_flight):  # no answer possible: their connections are closed below
            task.cancel()
    if pool is not None:
        await stop.step("stopping the workers", pool.stop(grace=0), WORKERS_BUDGET, waiting=pool.busy)
    await stop.step("stopping the sweeper", scheduler.stop(), SWEEPER_BUDGET + 0.5)
    if certs is not None:
        await stop.step("stopping the certificate watch", certs.stop(), 1.0)
    await stop.step("closing the connections", runner.cleanup(), HTTP_BUDGET)
    guard.close_all()
    await stop.step("closing the database", ctx.close(timeout=POOL_RETURN_SECONDS), DATABASE_BUDGET)
    await stop.leftover_tasks()
    event(log, "shutdown_complete", seconds=stop.seconds(), overdue=",".join(stop.overdue) or None)
    return stop.exit_code


async def _answered(in_flight: set) -> None:
    while in_flight:
        await asyncio.wait(set(in_flight))


async def work(cfg, *, concurrency: int, out=print) -> int:
    """Run until SIGINT/SIGTERM; the exit code: 0, or 1 when the stop had to cut a step off."""
    filemodes.make_private(cfg)
    stop = Stop("work", float(cfg.get("server.shutdown_grace_seconds")))
    stop.install()
    ctx = await AppContext.open(cfg, listen=True)
    pool = WorkerPool(ctx, concurrency, name="work")
    await ctx.start_listener()
    pool.start()
    out(f"photoslot work: {concurrency} workers on the configured database")
    sys.stdout.flush()
    await stop.requested.wait()
    event(log, "shutdown_started", running=len(pool._running), grace_s=stop.grace, bound_s=stop.bound)
    # the grace for running jobs is inside pool.stop; what it cannot finish goes back to the queue
    await stop.step("stopping the workers", pool.stop(grace=stop.grace, hurry=stop.hurried),
                    stop.grace + WORKERS_BUDGET, waiting=pool.busy)
    await stop.step("closing the database", ctx.close(timeout=POOL_RETURN_SECONDS), DATABASE_BUDGET)
    await stop.leftover_tasks()
    event(log, "shutdown_complete", seconds=stop.seconds(), overdue=",".join(stop.overdue) or None)
    return stop.exit_code
