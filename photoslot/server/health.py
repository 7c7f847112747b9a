"""GET /healthz (the process answers) and GET /readyz (the database and the media root work)."""
from __future__ import annotations

import asyncio

from aiohttp import web

from photoslot.db import DatabaseUnavailable
from photoslot.server.toolkit import endpoint

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@endpoint(None)
async def readyz(request: web.Request, ctx, _) -> web.Response:
    checks = {"database": False, "media_root": False}
    try:
        await asyncio.wait_for(ctx.db.fetchone("jobs_open_count_by_state"), timeout=2)
        checks["database"] = True
    except (DatabaseUnavailable, asyncio.TimeoutError):
        pass
    checks["media_root"] = await asyncio.to_thread(ctx.media.writable)
    ok = all(checks.values())
    return web.json_response({"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503)
