"""Media cache purge requests: recorded by the admin API, carried out by the sweeper.

`POST /api/media/cache/purge` answers 202 at once with the request's id; the sweeper (next pass,
≤ sweeper.interval_seconds) calls `pending_purges`, removes what the scope names — everything of
that kind created before `expires_cutoff` — and calls `mark_purge_done` with its report.

Scopes: `media_objects` — the temporary public media links made for providers; `full` — those
plus processed results (their download links then answer 410).
"""
from __future__ import annotations

import uuid

from photoslot import audit
from photoslot.clock import SystemClock
from photoslot.errors import ValidationError

SCOPES = ("full", "media_objects")
DEFAULT_SCOPE = "media_objects"  # a request naming none: the temporary links only, never the results


async def request_purge(ctx, scope, *, actor: str, source: str) -> dict:
    if scope not in SCOPES:
        raise ValidationError({"scope": f"must be one of: {', '.join(SCOPES)}"})
    now = ctx.clock.now()
    row = await ctx.db.fetchone("purge_request_insert", id=uuid.uuid4(), scope=scope, actor=actor, now=now,
                                expires_cutoff=now)
    await audit.record(ctx.db, ctx.clock, actor=actor, source=source, action="media.purge", target=scope,
                       details={"purge_id": str(row["id"]), "expires_cutoff": now.isoformat()})
    return {"status": "queued_for_gc", "scope": scope, "job_id": str(row["id"]),
            "expires_cutoff": row["expires_cutoff"]}


async def pending_purges(db) -> list[dict]:
    """Requests not carried out yet, oldest first: {id, scope, requested_by, requested_at, expires_cutoff}."""
    return await db.fetchall("purge_requests_pending")


async def mark_purge_done(db, purge_id, report: dict, *, now=None) -> bool:
    """False when another sweeper process marked it first (both may have purged; purging is idempotent)."""
    row = await db.fetchone("purge_request_done", id=purge_id, report=report, now=now or SystemClock().now())
    return row is not None


async def get(db, purge_id) -> dict | None:
    return await db.fetchone("purge_request_get", id=purge_id)
