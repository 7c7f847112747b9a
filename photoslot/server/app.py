"""The aiohttp application: every route table, the two error middlewares, the app's state.

Handler modules declare their routes (`routes = web.RouteTableDef()`) and reach the AppContext
through `toolkit.endpoint`; this module is the only one that knows them all.
"""
from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from photoslot import media
from photoslot.server import (api_audit, api_auth, api_jobs, api_media, api_settings, api_slots, api_stats, health,
                              metrics, openapi, public_media, public_results, security)
from photoslot.server.ingest import IngestHandler
from photoslot.server.ingest_answers import ingest_http_errors
from photoslot.server.keys import CTX, INGEST, QUERY_PARAMS
from photoslot.server.toolkit import api_errors
from photoslot.web import site as web_admin

ROUTE_TABLES = (
    health.routes,
    public_media.routes,
    api_auth.routes, openapi.routes, api_slots.routes, api_settings.routes, api_media.routes,
    api_jobs.routes, api_stats.routes, api_audit.routes,
    public_results.routes,
    metrics.routes,
)


def build_app(ctx, *, shutdown: asyncio.Event | None = None) -> web.Application:
    # aiohttp's own cap only guards non-streamed reads; uploads stream and enforce their cap themselves.
    app = web.Application(client_max_size=media.max_upload_bytes(ctx.cfg) + 1024 * 1024,
                          middlewares=[ingest_http_errors, api_errors])
    app[CTX] = ctx
    app[QUERY_PARAMS] = openapi.query_parameters()  # what each /api operation takes (toolkit.check_query)
    security.install(app)  # nosniff, frame denial, CSP, no Server version: on every response
    ingest = IngestHandler(ctx, shutdown=shutdown or asyncio.Event())
    app[INGEST] = ingest
    app.router.add_post("/ingest/{slot_id}", ingest.handle)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    web_admin.install(app)  # the web admin's pages at /admin/ (and / → /admin/)
    app.cleanup_ctx.append(_waiter_poll)
    return app


async def _waiter_poll(app: web.Application):
    """While the app runs: the waiting ingests' fallback poll (one query per interval in all),
    and the loop-lag probe the ingest deadline uses; at the end the ingest's own clean-up."""
    ctx = app[CTX]
    ingest = app[INGEST]
    ingest.lag.start()
    task = asyncio.create_task(ctx.waiters.poll_forever(ctx.db, float(ctx.cfg.get("workers.poll_interval_seconds")),
                                                        ctx.listener),
                               name="photoslot-waiter-poll")
    yield
    await ingest.lag.stop()
    ingest.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
