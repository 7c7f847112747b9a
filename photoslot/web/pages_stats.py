"""Statistics: which booth is failing and why — the By slot table (every request counted, refused
ones included, test shots apart), the refused requests by reason and the last failures with what
the booth got (`slot_report`) — and the pictures: outcomes over time, p95 against the window, the
timeout share against 5 %, provider requests and spend (`stats.series`, as `GET /api/stats/series`),
for all slots or one, over 24 h, 7 or 30 days, in the studio's time zone."""
from __future__ import annotations

from aiohttp import web

from photoslot import SLOT_IDS, slot_report, stats
from photoslot import settings as live_settings
from photoslot.web import charts, render
from photoslot.web.session import ZONE, page

routes = web.RouteTableDef()
TIMEOUT_LIMIT = 0.05  # the product's promise: at most 5 % of shots answered 504


def answers(r: dict) -> dict:
    """A period's booth requests by what the booth got: 200, 504, refused (another refusal: no job
    was made), error (a job that ended otherwise) — the By slot table's columns."""
    refused_504 = max(0, r["answered_504"] - r["timeouts"])  # an upload cut by the window: refused, answered 504
    refused = max(0, r["refused"] - refused_504)
    return {"ok": r["answered_200"], "timeout": r["answered_504"], "refused": refused,
            "error": max(0, r["requests"] - r["answered_200"] - r["answered_504"] - refused)}


@routes.get("/admin/stats")
@page("stats:read")
async def stats_page(request, ctx, session):
    _ = render.translate(request)
    zone = request[ZONE]
    period = request.query.get("period", "24h")
    period = period if period in stats.CHART_PERIODS else "24h"
    slot_id = request.query.get("slot_id") or None
    slot_id = slot_id if slot_id in SLOT_IDS else None
    data = await stats.series(ctx, slot_id=slot_id, period=period, tz=zone.sql)
    start, end = data["range"]["from"], data["range"]["to"]
    live = await live_settings.load(ctx.db, ctx.cfg)
    fmt = "%H:%M" if data["range"]["group_by"] == "hour" else "%d.%m"
    rows = data["metrics"]
    labels = [zone.local(r["period_start"]).strftime(fmt) for r in rows]
    split = [answers(r) for r in rows]
    pictures = {
        "outcomes": charts.stacked_bars(labels, [(name, [a[name] for a in split])
                                                 for name in ("ok", "timeout", "refused", "error")],
                                        _("Outcomes over time")),
        "p95": charts.line_with_reference(labels, [r["p95_ms"] / 1000 if r["p95_ms"] is not None else None
                                                   for r in rows], live.sync_response_seconds, _("p95 answer time"),
                                          " " + _("s"), _("window {s} s", s=f"{live.sync_response_seconds:g}")),
        "timeouts": charts.line_with_reference(labels, [100 * r["timeout_share"] for r in rows], 100 * TIMEOUT_LIMIT,
                                               _("Timeout share"), " %", "5 %", bars=True),
        "spend": charts.stacked_bars(labels, [("ok", [r["estimated_cost"] for r in rows])], _("Estimated spend")),
    }
    by_slot = await slot_report.by_slot(ctx, start=start, end=end)
    if slot_id is not None:
        by_slot = [r for r in by_slot if r["slot_id"] == slot_id]
    return render.page(request, "stats.html", session, active="stats", title="Statistics", data=data,
                       summary=data["summary"], totals=answers(data["summary"]), pictures=pictures, period=period, slot_id=slot_id or "",
                       slot_ids=SLOT_IDS, periods=list(stats.CHART_PERIODS), by_slot=by_slot,
                       refused=await slot_report.refused_by_reason(ctx, start=start, end=end, slot_id=slot_id),
                       failures=await slot_report.last_failures(ctx, start=start, end=end, slot_id=slot_id))
