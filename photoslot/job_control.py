"""What an admin may do to a running job: cancel it (API, CLI and the web page call this one function).

Cancelling is one more finalization, so it obeys the queue's one rule (photoslot/jobs.py): the
conditional UPDATE either wins — and then the job is `cancelled` / `admin_cancelled` — or someone
else finalized first, and the admin is told so (409). Everything else follows from the finalizing
UPDATE, as for any other outcome: its `photoslot_job_done` notification wakes the waiting ingest
in every process (the booth gets its answer at once) and cancels the worker's provider call
(worker/pool.py `_on_done`, with the heartbeat as the backstop); the upload is deleted.
"""
from __future__ import annotations

import logging
import uuid

from photoslot import audit, jobs
from photoslot.errors import Conflict, NotFound
from photoslot.logs import event

log = logging.getLogger("photoslot.jobs")

CANCEL_REASON = "admin_cancelled"


def parse_job_id(raw) -> uuid.UUID:
    """A job id as typed or sent; anything that is not a UUID is an unknown job (404)."""
    try:
        return raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
    except ValueError:
        raise NotFound(f"no job {raw}", {"job_id": str(raw)}) from None


async def cancel(ctx, job_id, *, actor: str, source: str) -> dict:
    """Cancel a pending or processing job; returns the finalized job row.

    `job_id` is a UUID or its text; `actor` is who the audit log names (`admin:serg`, `os:alice`),
    `source` where it came from (`http`, `cli`, `web`). Raises NotFound for an unknown job and
    Conflict (409) when the job is already finalized — including when it ended a moment before.
    """
    jid = parse_job_id(job_id)
    job = await jobs.get(ctx.db, jid)
    if job is None:
        raise NotFound(f"no job {jid}", {"job_id": str(jid)})
    if job["is_finalized"]:
        raise _already_final(job)
    row = await jobs.finalize_failure(ctx.db, ctx.media, job_id=jid, now=ctx.clock.now(), reason=CANCEL_REASON,
                                      detail=f"cancelled by {actor}")
    if row is None:  # the worker or the ingest finalized it between our read and our UPDATE
        raise _already_final(await jobs.get(ctx.db, jid))
    await audit.record(ctx.db, ctx.clock, actor=actor, source=source, action="job.cancel", target=str(jid),
                       details={"slot_id": job["slot_id"], "was": job["status"]})
    event(log, "job_admin_cancelled", job=str(jid), slot=job["slot_id"], reason=CANCEL_REASON, actor=actor, was=job["status"])
    return row


def _already_final(job: dict) -> Conflict:
    return Conflict(f"job {job['id']} is already finalized ({job['status']}"
                    f"{', ' + job['failure_reason'] if job['failure_reason'] else ''})",
                    {"job_id": str(job["id"]), "status": job["status"]})
