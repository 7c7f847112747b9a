"""Providers: each provider up or down — since when and why in words, the next probe —, its API key
configured or not (a link to Settings), today's requests against its quota, the last error, and the
slots that use it (`provider_status.overview`, over provider_health.py and quotas.py)."""
from __future__ import annotations

from aiohttp import web

from photoslot import provider_status
from photoslot.web import render
from photoslot.web.session import page

routes = web.RouteTableDef()


@routes.get("/admin/providers")
@page("stats:read")
async def providers_page(request, ctx, session):
    return render.page(request, "providers.html", session, active="providers", title="Providers",
                       providers=await provider_status.overview(ctx))
