"""GET /metrics — Prometheus text exposition (names and meanings: docs/OPERATIONS.md)."""
from __future__ import annotations

from aiohttp import web

from photoslot import metrics


async def metrics_handler(request: web.Request) -> web.Response:
    from photoslot.server.app import CTX

    ctx = request.app[CTX]
    body = await metrics.of(ctx).render(ctx)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = metrics.CONTENT_TYPE
    return resp
