"""Jobs: the filtered list (`jobs.admin_list`, as `GET /api/jobs` and `photoslot jobs`), one
job's timeline (`jobs.admin_view`), and cancelling a pending or processing job
(`job_control.cancel`, as `POST /api/jobs/{id}/cancel` and `photoslot jobs cancel`)."""
from __future__ import annotations

import datetime as dt

from aiohttp import web

from photoslot import SLOT_IDS, job_control, jobs
from photoslot.errors import Conflict, NotFound, ValidationError
from photoslot.web import render
from photoslot.web.session import action, page

routes = web.RouteTableDef()
PAGE_SIZE = 50
PERIODS = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7),
           "30d": dt.timedelta(days=30)}


@routes.get("/admin/jobs")
@page("stats:read")
async def jobs_page(request, ctx, session):
    q = request.query
    slot_id = q.get("slot_id") or None
    status = q.get("status") or None
    period = q.get("period") if q.get("period") in PERIODS else ""
    since = ctx.clock.now() - PERIODS[period] if period else None
    errors = {}
    if slot_id is not None and slot_id not in SLOT_IDS:
        errors["slot_id"] = "no such slot"
        slot_id = None
    try:
        page_no = max(1, int(q.get("page", "1")))
    except ValueError:
        page_no = 1
    try:
        rows, total = await jobs.admin_list(ctx.db, slot_id=slot_id, status=status, page=page_no,
                                            page_size=PAGE_SIZE, created_from=since)
    except ValidationError as exc:
        errors.update(exc.details)
        rows, total = await jobs.admin_list(ctx.db, slot_id=slot_id, page=page_no, page_size=PAGE_SIZE,
                                            created_from=since)
        status = None
    now = ctx.clock.now()
    return render.page(request, "jobs.html", session, active="jobs", title="Jobs",
                       rows=[jobs.admin_view(j, ctx.cfg, now) for j in rows], total=total, page_no=page_no,
                       pages=max(1, -(-total // PAGE_SIZE)), slot_ids=SLOT_IDS, states=jobs.STATES,
                       slot_id=slot_id or "", chosen_status=status or "", errors=errors,
                       period=period, periods=list(PERIODS))


async def render_job(request, ctx, session, raw: str, *, status: int = 200, notice: str | None = None):
    job = await jobs.get(ctx.db, job_control.parse_job_id(raw))
    if job is None:
        raise NotFound("no such job", {"job_id": raw})
    view = jobs.admin_view(job, ctx.cfg, ctx.clock.now())
    return render.page(request, "job.html", session, status=status, active="jobs", title="Job", view=view,
                       job=view["job"], notice=notice,
                       can_cancel=not job["is_finalized"] and session.can(CANCEL_PERMISSION))


CANCEL_PERMISSION = "slots:write"  # as POST /api/jobs/{id}/cancel


@routes.get("/admin/jobs/{job_id}")
@page("stats:read")
async def job_page(request, ctx, session):
    _ = render.translate(request)
    notice = _("Cancelled.") if "cancelled" in request.query else None
    return await render_job(request, ctx, session, request.match_info["job_id"], notice=notice)


@routes.post("/admin/jobs/{job_id}/cancel")
@action(CANCEL_PERMISSION)
async def cancel_job(request, ctx, session):
    raw = request.match_info["job_id"]
    try:
        job = await job_control.cancel(ctx, raw, actor=session.actor, source="web")
    except Conflict as exc:  # it ended on its own meanwhile: the page says how
        return await render_job(request, ctx, session, raw, status=409, notice=exc.message)
    raise web.HTTPSeeOther(f"/admin/jobs/{job['id']}?cancelled=1")
