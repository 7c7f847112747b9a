"""GET /api/audit: the audit log of admin writes, newest first (photoslot/audit.py)."""
from __future__ import annotations

from aiohttp import web

from photoslot import audit
from photoslot.errors import ValidationError
from photoslot.server.toolkit import answer, endpoint, q_int, q_str

routes = web.RouteTableDef()


@routes.get("/api/audit")
@endpoint("settings:read")
async def audit_log(request, ctx, claims):
    limit = q_int(request, "limit", 100)
    if not 1 <= limit <= 1000:
        raise ValidationError({"limit": "must be an integer from 1 to 1000"})
    return answer({"data": await audit.entries(ctx.db, limit=limit, action=q_str(request, "action"))})
