"""The aiohttp application: every route table, the middlewares, the app's state.

Middlewares, outermost first: `track_phases` (tells the connection guard when a request's head is
in and its answer out), the ingest's and the admin API's error shapes, the web admin's error
pages, and innermost `refuse_compressed_bodies` (415 in each of those shapes).

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
from photoslot.server.connection_guard import Connections, track_phases
from photoslot.server.ingest import IngestHandler
from photoslot.server.ingest_answers import ingest_http_errors
from photoslot.server.keys import CONNECTIONS, CTX, INGEST, QUERY_PARAMS
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
                          middlewares=[track_phases, ingest_http_errors, api_errors])
    app[CTX] = ctx
    app[QUERY_PARAMS] = openapi.query_parameters()  # what each /api operation takes (toolkit.check_query)
    app[CONNECTIONS] = connections = Connections()  # the guard binds itself here when serving
    security.install(app)  # nosniff, frame denial, CSP, no Server version: on every response
    ingest = IngestHandler(ctx, shutdown=shutdown or asyncio.Event(), connections=connections)
    app[INGEST] = ingest
    app.router.add_post("/ingest/{slot_id}", ingest.handle)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    web_admin.install(app)  # the web admin's pages at /admin/ (and / → /admin/)
    app.middlewares.append(security.refuse_compressed_bodies)  # innermost: each shape's 415
    app.cleanup_ctx.append(_waiter_poll)
    return app


async def _waiter_poll(app: web.Application):
    """While the app runs: the waiting ingests' fallback poll (one query per interval in all),
    and the loop-lag probe the ingest deadline uses; at the end the ingest's own clean-up."""
    ctx = app[CTX]
    ingest = app[INGEST]
    ingest.lag.start()
    with contextlib.suppress(Exception):  # the password's copy, read now rather than on the first shot
        await ingest.password.current()
    task = asyncio.create_task(ctx.waiters.poll_forever(ctx.db, float(ctx.cfg.get("workers.poll_interval_seconds")),
                                                        ctx.listener),
                               name="photoslot-waiter-poll")
    yield
    await ingest.lag.stop()
    ingest.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
