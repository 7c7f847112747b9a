"""POST /api/login and /api/logout: the two admins sign in for a bearer JWT and sign out
(photoslot/auth.py holds every rule; the web admin's session goes through the same functions)."""
from __future__ import annotations

from aiohttp import web

from photoslot import auth
from photoslot.server.security import client_address
from photoslot.server.toolkit import SIGNED_IN, answer, endpoint, json_body

routes = web.RouteTableDef()


@routes.post("/api/login")
@endpoint(None)
async def login(request, ctx, _):
    body = await json_body(request)
    token = await auth.login(ctx, body.get("username"), body.get("password"), client=client_address(request))
    return answer(token)


@routes.post("/api/logout")
@endpoint(SIGNED_IN)
async def logout(request, ctx, claims):
    """Ends every session of the signed-in admin, on every process (this token included)."""
    await auth.logout(ctx, claims, source="http")
    return web.Response(status=204)
