"""Statistics: outcomes over time, p95 against the window, the timeout share against 5 %, provider
requests and spend — for all slots or one, over 24 h, 7 or 30 days (`stats.series`, as
`GET /api/stats/series`)."""
from __future__ import annotations

from aiohttp import web

from photoslot import SLOT_IDS, stats
from photoslot import settings as live_settings
from photoslot.web import charts, render
from photoslot.web.session import page

routes = web.RouteTableDef()
TIMEOUT_LIMIT = 0.05  # the product's promise: at most 5 % of shots answered 504


@routes.get("/admin/stats")
@page("stats:read")
async def stats_page(request, ctx, session):
    _ = render.translate(request)
    period = request.query.get("period", "24h")
    period = period if period in stats.CHART_PERIODS else "24h"
    slot_id = request.query.get("slot_id") or None
    slot_id = slot_id if slot_id in SLOT_IDS else None
    data = await stats.series(ctx, slot_id=slot_id, period=period)
    live = await live_settings.load(ctx.db, ctx.cfg)
    fmt = "%H:%M" if data["range"]["group_by"] == "hour" else "%d.%m"
    rows = data["metrics"]
    labels = [r["period_start"].strftime(fmt) for r in rows]
    pictures = {
        "outcomes": charts.stacked_bars(labels, [
            ("ok", [r["success"] for r in rows]),
            ("timeout", [r["timeouts"] for r in rows]),
            ("error", [r["errors"] - r["timeouts"] for r in rows])], _("Outcomes over time")),
        "p95": charts.line_with_reference(labels, [r["p95_ms"] / 1000 if r["p95_ms"] is not None else None
                                                   for r in rows], live.sync_response_seconds, _("p95 answer time"),
                                          " " + _("s"), _("window {s} s", s=f"{live.sync_response_seconds:g}")),
        "timeouts": charts.line_with_reference(labels, [100 * r["timeout_share"] for r in rows], 100 * TIMEOUT_LIMIT,
                                               _("Timeout share"), " %", "5 %", bars=True),
        "spend": charts.stacked_bars(labels, [("ok", [r["estimated_cost"] for r in rows])], _("Estimated spend")),
    }
    return render.page(request, "stats.html", session, active="stats", title="Statistics", data=data,
                       summary=data["summary"], pictures=pictures, period=period, slot_id=slot_id or "",
                       slot_ids=SLOT_IDS, periods=list(stats.CHART_PERIODS))
