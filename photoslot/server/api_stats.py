"""Stats over the admin API: every slot, or one slot since its last reset (photoslot/stats.py).
The defaults are the admin API contract's (docs/API.md): global figures per week, newest period
first, 10 periods a page, each period named by its dates; a slot's per day."""
from __future__ import annotations

from aiohttp import web

from photoslot import stats
from photoslot.server.toolkit import answer, endpoint, q_int, q_str

routes = web.RouteTableDef()


# Registered before /api/stats/{slot_id}, which would otherwise take "global" for a slot id.
@routes.get("/api/stats/global")
@endpoint("stats:read")
async def global_stats(request, ctx, claims):
    return answer(stats.dated(await stats.global_stats(
        ctx, from_=q_str(request, "from"), to=q_str(request, "to"), group_by=q_str(request, "group_by") or "week",
        page=q_int(request, "page", 1), page_size=q_int(request, "page_size", 10),
        sort_by=q_str(request, "sort_by") or "period_start", sort_order=q_str(request, "sort_order") or "desc",
        provider_id=q_str(request, "provider_id"), slot_id=q_str(request, "slot_id"))))


@routes.get("/api/stats/series")
@endpoint("stats:read")
async def stats_series(request, ctx, claims):
    return answer(await stats.series(ctx, slot_id=q_str(request, "slot_id"), period=q_str(request, "period") or "24h"))


@routes.get("/api/stats/{slot_id}")
@endpoint("stats:read")
async def slot_stats(request, ctx, claims):
    return answer(await stats.slot_stats(ctx, request.match_info["slot_id"], from_=q_str(request, "from"),
                                         to=q_str(request, "to"), group_by=q_str(request, "group_by") or "day",
                                         provider_id=q_str(request, "provider_id")))
