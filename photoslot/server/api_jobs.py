"""Jobs over the admin API: the filtered, paged list, one job with its deadline and timings, cancel.
Filters are checked in photoslot/jobs.py, once for the API, the web admin and the CLI; the API
answers the contract's view of a job (jobs.api_view) and takes the contract's defaults (soonest
deadline first)."""
from __future__ import annotations

import uuid

from aiohttp import web

from photoslot import job_control, jobs, slots, stats
from photoslot.errors import NotFound
from photoslot.server.toolkit import actor, answer, endpoint, q_bool, q_int, q_str

routes = web.RouteTableDef()


@routes.get("/api/jobs")
@endpoint("stats:read")
async def list_jobs(request, ctx, claims):
    page, page_size = q_int(request, "page", 1), q_int(request, "page_size", 20)
    slot_id = q_str(request, "slot_id")
    if slot_id is not None:
        slots.check_slot_id(slot_id)
    filters = jobs.api_list_filters(status=q_str(request, "status"), state=q_str(request, "state"),
                                    failure_reason=q_str(request, "failure_reason"),
                                    failure_code=q_str(request, "failure_code"))
    rows, total = await jobs.admin_list(
        ctx.db, slot_id=slot_id, **filters, is_finalized=q_bool(request, "is_finalized"),
        is_test=q_bool(request, "is_test"), page=page, page_size=page_size,
        sort_by=q_str(request, "sort_by") or "expires_at", sort_order=q_str(request, "sort_order") or "asc",
        created_from=stats.parse_time(q_str(request, "from"), "from"), created_to=stats.parse_time(q_str(request, "to"), "to"))
    now = ctx.clock.now()
    return answer({"data": [jobs.api_view(j, ctx.cfg, now) for j in rows],
                   "meta": {"page": page, "page_size": page_size, "total": total}})


@routes.get("/api/jobs/{job_id}")
@endpoint("stats:read")
async def get_job(request, ctx, claims):
    raw = request.match_info["job_id"]
    try:
        job = await jobs.get(ctx.db, uuid.UUID(raw))
    except ValueError:
        job = None
    if job is None:
        raise NotFound("no such job", {"job_id": raw})
    return answer(jobs.api_view(job, ctx.cfg, ctx.clock.now()))


@routes.post("/api/jobs/{job_id}/cancel")
@endpoint("slots:write")
async def cancel_job(request, ctx, claims):
    """Finalize a pending/processing job as cancelled / admin_cancelled (job_control.cancel)."""
    job = await job_control.cancel(ctx, request.match_info["job_id"], actor=actor(claims), source="http")
    return answer(jobs.api_view(job, ctx.cfg, ctx.clock.now()))
