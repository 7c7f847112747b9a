"""GET /metrics — Prometheus text exposition (names and meanings: docs/OPERATIONS.md)."""
from __future__ import annotations

from aiohttp import web

from photoslot import metrics
from photoslot.server.toolkit import endpoint

routes = web.RouteTableDef()


@routes.get("/metrics")
@endpoint(None)
async def metrics_handler(request: web.Request, ctx, _) -> web.Response:
    body = await metrics.of(ctx).render(ctx)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = metrics.CONTENT_TYPE
    return resp
