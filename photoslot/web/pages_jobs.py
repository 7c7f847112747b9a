"""Jobs: the filtered list (`jobs.admin_list`, as `GET /api/jobs` and `photoslot jobs`) and one
job's timeline (`jobs.admin_view`)."""
from __future__ import annotations

import uuid

from aiohttp import web

from photoslot import SLOT_IDS, jobs
from photoslot.errors import NotFound, ValidationError
from photoslot.web import render
from photoslot.web.session import page

routes = web.RouteTableDef()
PAGE_SIZE = 50


@routes.get("/admin/jobs")
@page("stats:read")
async def jobs_page(request, ctx, session):
    q = request.query
    slot_id = q.get("slot_id") or None
    status = q.get("status") or None
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
                                            page_size=PAGE_SIZE)
    except ValidationError as exc:
        errors.update(exc.details)
        rows, total = await jobs.admin_list(ctx.db, slot_id=slot_id, page=page_no, page_size=PAGE_SIZE)
        status = None
    now = ctx.clock.now()
    return render.page(request, "jobs.html", session, active="jobs", title="Jobs",
                       rows=[jobs.admin_view(j, ctx.cfg, now) for j in rows], total=total, page_no=page_no,
                       pages=max(1, -(-total // PAGE_SIZE)), slot_ids=SLOT_IDS, states=jobs.STATES,
                       slot_id=slot_id or "", chosen_status=status or "", errors=errors)


@routes.get("/admin/jobs/{job_id}")
@page("stats:read")
async def job_page(request, ctx, session):
    raw = request.match_info["job_id"]
    try:
        job = await jobs.get(ctx.db, uuid.UUID(raw))
    except ValueError:
        job = None
    if job is None:
        raise NotFound("no such job", {"job_id": raw})
    view = jobs.admin_view(job, ctx.cfg, ctx.clock.now())
    return render.page(request, "job.html", session, active="jobs", title="Job", view=view, job=view["job"],
                       can_cancel=False)
