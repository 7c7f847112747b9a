"""The aiohttp application: routes only; the work lives in the modules they call."""
from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from photoslot.db import DatabaseUnavailable
from photoslot.server import admin
from photoslot.server import public_media
from photoslot.server.ingest import IngestHandler, ingest_http_errors
from photoslot.server.metrics import metrics_handler

CTX = web.AppKey("ctx", object)
INGEST = web.AppKey("ingest", IngestHandler)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    checks = {"database": False, "media_root": False}
    try:
        await asyncio.wait_for(ctx.db.fetchone("jobs_open_count_by_state"), timeout=2)
        checks["database"] = True
    except (DatabaseUnavailable, asyncio.TimeoutError):
        pass
    checks["media_root"] = await asyncio.to_thread(ctx.media.writable)
    ok = all(checks.values())
    return web.json_response({"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503)


def build_app(ctx, *, shutdown: asyncio.Event | None = None) -> web.Application:
    max_mb = float(ctx.cfg.get("ingest.max_upload_mb"))
    # aiohttp's own cap only guards non-streamed reads; ingest streams and enforces its cap itself.
    app = web.Application(client_max_size=int((max_mb + 1) * 1024 * 1024), middlewares=[ingest_http_errors])
    app[CTX] = ctx
    ingest = IngestHandler(ctx, shutdown=shutdown or asyncio.Event())
    app[INGEST] = ingest
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/ingest/{slot_id}", ingest.handle)
    app.router.add_get("/public/media/{media_id}", public_media.make_handler(ctx))
    admin.setup_routes(app)  # /api/* (JWT) and /public/results/*
    app.router.add_get("/metrics", metrics_handler)
    app.cleanup_ctx.append(_waiter_poll)
    return app


async def _waiter_poll(app: web.Application):
    """While the app runs: the waiting ingests' fallback poll (one query per interval in all),
    and the loop-lag probe the ingest deadline uses."""
    ctx = app[CTX]
    app[INGEST].lag.start()
    task = asyncio.create_task(ctx.waiters.poll_forever(ctx.db, float(ctx.cfg.get("workers.poll_interval_seconds"))),
                               name="photoslot-waiter-poll")
    yield
    await app[INGEST].lag.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
