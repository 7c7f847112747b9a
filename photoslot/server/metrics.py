"""GET /metrics — Prometheus text exposition (names, meanings and who may read it: docs/OPERATIONS.md)."""
from __future__ import annotations

from aiohttp import web

from photoslot import metrics
from photoslot.server.security import metrics_allowed
from photoslot.server.toolkit import endpoint

routes = web.RouteTableDef()


@routes.get("/metrics")
@endpoint(None)
async def metrics_handler(request: web.Request, ctx, _) -> web.Response:
    if not metrics_allowed(request):  # metrics.allow / metrics.token (docs/OPERATIONS.md)
        return web.Response(status=403, text="forbidden: /metrics needs a listed address (metrics.allow) "
                                             "or the bearer token (metrics.token)\n")
    body = await metrics.of(ctx).render(ctx)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = metrics.CONTENT_TYPE
    return resp
