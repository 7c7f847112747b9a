"""GET /healthz (the process answers) and GET /readyz (the database and the media root work; the
providers' health as details, which never makes the process unready: a down provider is the
provider's problem, and this process answers its shots correctly, 503 provider_unavailable)."""
from __future__ import annotations

import asyncio

from aiohttp import web

from photoslot import provider_health
from photoslot.db import DatabaseUnavailable
from photoslot.providers import catalogue
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
    now = ctx.clock.now()
    providers = {}
    for p in catalogue.CATALOGUE:
        v = provider_health.view(ctx.health.get(p), now)
        providers[p] = {"state": v["state"], "consecutive_failures": v["consecutive_failures"],
                        "retry_after_s": v["retry_after_s"]}
    return web.json_response({"status": "ready" if ok else "not_ready", "checks": checks, "providers": providers},
                             status=200 if ok else 503)
