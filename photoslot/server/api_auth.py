"""POST /api/login: the two admins get a bearer JWT (photoslot/auth.py holds every rule)."""
from __future__ import annotations

from aiohttp import web

from photoslot import auth
from photoslot.server.toolkit import answer, endpoint, json_body

routes = web.RouteTableDef()


@routes.post("/api/login")
@endpoint(None)
async def login(request, ctx, _):
    body = await json_body(request)
    token = await auth.login(ctx, body.get("username"), body.get("password"), client=request.remote)
    return answer(token)
