"""Statistics: which booth is failing and why — the By slot table (every request counted, refused
ones included, test shots apart), the refused requests by reason and the last failures with what
the booth got (`slot_report`) — and the pictures: outcomes over time, p95 against the window, the
timeout share against 5 %, provider requests and spend (`stats.series`, as `GET /api/stats/series`),
for all slots or one, today, over 24 h, 7 or 30 days, or the dates chosen — all in the studio's
time zone."""
from __future__ import annotations

import datetime as dt

from aiohttp import web

from photoslot import SLOT_IDS, slot_report, stats, studio_time
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


# the periods offered, in words ("range": the dates chosen, from and to)
PERIODS = {"today": "today", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days",
           "range": "the dates below"}
MAX_DAYS = stats.SLOT_MAX_DAYS


def parse_day(text: str, field: str, errors: dict) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        errors[field] = "must be a date such as 2026-11-29"
        return None


def chosen_range(query, now: dt.datetime, zone) -> tuple[str, dt.datetime, dt.datetime, str, dict, dict]:
    """(period, start, end, unit, the dates as typed, per-field messages) for the page's choice; a
    range refused falls back to the last 24 hours with its messages shown."""
    period = query.get("period", "24h")
    period = period if period in PERIODS else "24h"
    typed = {"from": query.get("from", ""), "to": query.get("to", "")}
    errors: dict = {}
    if period == "today":
        return period, studio_time.day_start(now, zone), now, "hour", typed, errors
    if period == "range":
        first = parse_day(typed["from"], "from", errors) if typed["from"] else None
        last = parse_day(typed["to"], "to", errors) if typed["to"] else now.astimezone(zone.tzinfo).date()
        if not typed["from"]:
            errors["from"] = "must be a date such as 2026-11-29"
        if first and last:
            if first > last:
                errors["from"] = "must be before 'to'"
            elif (last - first).days + 1 > MAX_DAYS:
                errors["to"] = f"the range may span at most {MAX_DAYS} days"
        if not errors:
            start = studio_time.date_start(first, zone)
            end = studio_time.date_start(last + dt.timedelta(days=1), zone)
            return period, start, end, "hour" if end - start <= dt.timedelta(days=2) else "day", typed, errors
    span, unit = stats.CHART_PERIODS.get(period, stats.CHART_PERIODS["24h"])
    return period, now - span, now, unit, typed, errors


@routes.get("/admin/stats")
@page("stats:read")
async def stats_page(request, ctx, session):
    _ = render.translate(request)
    zone = request[ZONE]
    slot_id = request.query.get("slot_id") or None
    slot_id = slot_id if slot_id in SLOT_IDS else None
    period, start, end, unit, typed, errors = chosen_range(request.query, ctx.clock.now(), zone)
    data = await stats.series_between(ctx, slot_id=slot_id, start=start, end=end, unit=unit, tz=zone.sql)
    live = await live_settings.load(ctx.db, ctx.cfg)
    fmt = "%H:%M" if data["range"]["group_by"] == "hour" else "%d.%m"
    rows = data["metrics"]
    labels = [zone.local(r["period_start"]).strftime(fmt) for r in rows]
    split = [answers(r) for r in rows]
    currency = data["summary"]["currency"] or ""
    pictures = {
        "outcomes": charts.stacked_bars(labels, [(name, [a[name] for a in split])
                                                 for name in ("ok", "timeout", "refused", "error")],
                                        _("Outcomes over time (requests)")),
        "p95": charts.line_with_reference(labels, [r["p95_ms"] / 1000 if r["p95_ms"] is not None else None
                                                   for r in rows], live.sync_response_seconds,
                                          _("p95 answer time (seconds)"), " " + _("s"),
                                          _("window {s} s", s=f"{live.sync_response_seconds:g}")),
        "timeouts": charts.line_with_reference(labels, [100 * r["timeout_share"] for r in rows], 100 * TIMEOUT_LIMIT,
                                               _("Timeout share (%)"), " %", "5 %", bars=True),
        "spend": charts.stacked_bars(labels, [("spend", [r["estimated_cost"] for r in rows])],
                                     _("Estimated spend ({currency})", currency=currency), money=True),
    }
    by_slot = await slot_report.by_slot(ctx, start=start, end=end)
    if slot_id is not None:
        by_slot = [r for r in by_slot if r["slot_id"] == slot_id]
    return render.page(request, "stats.html", session, active="stats", title="Statistics", data=data,
                       summary=data["summary"], totals=answers(data["summary"]), pictures=pictures, period=period,
                       slot_id=slot_id or "", slot_ids=SLOT_IDS, periods=PERIODS, by_slot=by_slot, typed=typed,
                       errors=errors, today=ctx.clock.now().astimezone(zone.tzinfo).date().isoformat(),
                       refused=await slot_report.refused_by_reason(ctx, start=start, end=end, slot_id=slot_id),
                       failures=await slot_report.last_failures(ctx, start=start, end=end, slot_id=slot_id))
