"""Jobs: the filtered list (`jobs.admin_list`, as `GET /api/jobs` and `photoslot jobs`), one
job's timeline (`jobs.admin_view`), its result full size or downloaded under a name that says
which slot and when, and cancelling a pending or processing job (`job_control.cancel`, as
`POST /api/jobs/{id}/cancel` and `photoslot jobs cancel`) — after a confirmation page, which works
without JavaScript."""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from aiohttp import web

from photoslot import SLOT_IDS, job_control, jobs, media
from photoslot.errors import Conflict, NotFound, ValidationError
from photoslot.web import render
from photoslot.web.session import ZONE, action, form_of, page

routes = web.RouteTableDef()
PAGE_SIZE = 50
KINDS = {"booth": False, "test": True}  # the Jobs filter: booths' shots, or admins' test shots
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
    kind = q.get("kind") if q.get("kind") in KINDS else ""
    is_test = KINDS.get(kind)
    try:
        rows, total = await jobs.admin_list(ctx.db, slot_id=slot_id, status=status, page=page_no,
                                            page_size=PAGE_SIZE, created_from=since, is_test=is_test)
    except ValidationError as exc:
        errors.update(exc.details)
        rows, total = await jobs.admin_list(ctx.db, slot_id=slot_id, page=page_no, page_size=PAGE_SIZE,
                                            created_from=since, is_test=is_test)
        status = None
    now = ctx.clock.now()
    return render.page(request, "jobs.html", session, active="jobs", title="Jobs",
                       rows=[jobs.admin_view(j, ctx.cfg, now) for j in rows], total=total, page_no=page_no,
                       pages=max(1, -(-total // PAGE_SIZE)), slot_ids=SLOT_IDS, states=jobs.STATES,
                       slot_id=slot_id or "", chosen_status=status or "", errors=errors,
                       period=period, periods=list(PERIODS), kind=kind)


async def render_job(request, ctx, session, raw: str, *, status: int = 200, notice: str | None = None,
                     template: str = "job.html"):
    job = await jobs.get(ctx.db, job_control.parse_job_id(raw))
    if job is None:
        raise NotFound("no such job", {"job_id": raw})
    view = jobs.admin_view(job, ctx.cfg, ctx.clock.now())
    return render.page(request, template, session, status=status, active="jobs", title="Job", view=view,
                       job=view["job"], notice=notice, result_live=result_live(job, ctx.clock.now()),
                       can_cancel=not job["is_finalized"] and session.can(CANCEL_PERMISSION))


CANCEL_PERMISSION = "slots:write"  # as POST /api/jobs/{id}/cancel


def result_live(job: dict, now: dt.datetime) -> bool:
    """The job's result can still be shown (not expired, not removed by a purge or the sweeper)."""
    return (job["status"] == "succeeded" and job["result_file_path"] is not None and job["result_expires_at"] is not None
            and now < job["result_expires_at"] and job.get("result_removed_at") is None)


@routes.get("/admin/jobs/{job_id}")
@page("stats:read")
async def job_page(request, ctx, session):
    _ = render.translate(request)
    notice = _("Cancelled.") if request.query.get("done") == "cancelled" else None
    return await render_job(request, ctx, session, request.match_info["job_id"], notice=notice)


@routes.get("/admin/jobs/{job_id}/cancel")
@page(CANCEL_PERMISSION)
async def confirm_cancel(request, ctx, session):
    """Cancelling asks first: this page says what the booth gets, and its form cancels."""
    return await render_job(request, ctx, session, request.match_info["job_id"], template="job_cancel.html")


@routes.post("/admin/jobs/{job_id}/cancel")
@action(CANCEL_PERMISSION)
async def cancel_job(request, ctx, session):
    raw = request.match_info["job_id"]
    if form_of(request).get("confirm") != "yes":  # only the confirmation page's button cancels
        raise web.HTTPSeeOther(f"/admin/jobs/{job_control.parse_job_id(raw)}/cancel")
    try:
        job = await job_control.cancel(ctx, raw, actor=session.actor, source="web")
    except Conflict as exc:  # it ended on its own meanwhile: the page says how
        return await render_job(request, ctx, session, raw, status=409, notice=exc.message)
    raise web.HTTPSeeOther(f"/admin/jobs/{job['id']}?done=cancelled")


def download_name(job: dict, zone) -> str:
    """`slot-003_2026-11-29_14-03-05.jpg`: which slot, and when in the studio's time."""
    at = zone.local(job["finalized_at"] or job["created_at"])
    return f"{job['slot_id']}_{at:%Y-%m-%d_%H-%M-%S}.{media.MIME_EXT.get(job['result_mime_type'], 'bin')}"


@routes.get("/admin/jobs/{job_id}/result")
@page("stats:read")
async def job_result(request, ctx, session):
    """A job's result for the admin: full size in the browser, or with `download=1` saved under a
    name that says which slot and when (the public link's name is the job id)."""
    job = await jobs.get(ctx.db, job_control.parse_job_id(request.match_info["job_id"]))
    if job is None or job["status"] != "succeeded":
        raise NotFound("this job has no result", {"job_id": request.match_info["job_id"]})
    if not result_live(job, ctx.clock.now()):
        raise web.HTTPGone(reason="this result has expired or was purged")
    try:
        data = await asyncio.to_thread(Path(job["result_file_path"]).read_bytes)
    except OSError:
        raise web.HTTPGone(reason="this result has expired or was purged") from None
    disposition = "attachment" if request.query.get("download") == "1" else "inline"
    return web.Response(body=data, content_type=job["result_mime_type"], headers={
        "Content-Disposition": f'{disposition}; filename="{download_name(job, request[ZONE])}"',
        "Cache-Control": "private, no-store"})
