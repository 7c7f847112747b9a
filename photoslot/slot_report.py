"""Which booth is failing, and why: the figures the Slots cards, a Slot's page and Statistics show.

Every request a booth made is counted — the ones refused before a job existed (wrong password,
throttled, a disabled or mistyped slot, a provider down, a photo too large or damaged) included,
since they are an event day's most common fault — from the hourly rollups (rollups.py). Test
shots are counted apart (`test_shots`), never in a booth's figures. The last failures merge the
jobs that ended without a result (their rows) with the record of recent refusals (refusals.py).
Queries: queries/slot_report.sql.
"""
from __future__ import annotations

import contextlib
import datetime as dt

from photoslot import outcomes
from photoslot.db import DatabaseUnavailable
from photoslot.refusals import INVALID_SLOT

COUNTS = ("requests", "answered_200", "answered_504", "refused", "test_shots", "test_shots_succeeded")


async def _written(ctx) -> None:
    """This process's refusals counted in memory go to the database first (one statement each)."""
    with contextlib.suppress(DatabaseUnavailable):
        await ctx.refusals.flush(ctx.db)


def _row(r: dict) -> dict:
    out = {k: int(r[k]) for k in COUNTS}
    # a job that ended without a result and not as a 504: provider errors, cancelled, hung up …
    out["errors"] = max(0, out["requests"] - out["answered_200"] - out["answered_504"] - out["refused"])
    out["success_share"] = round(out["answered_200"] / out["requests"], 4) if out["requests"] else None
    job_at, refused_at = r["last_failed_job_at"], r["last_refused_at"]
    if job_at is not None and (refused_at is None or job_at >= refused_at):
        out["last_failure"] = {"at": job_at, "status": r["last_failed_job_status"], "reason": r["last_failed_job_reason"],
                               "refused": False}
    elif refused_at is not None:
        out["last_failure"] = {"at": refused_at, "status": r["last_refused_status"], "reason": r["last_refused_reason"],
                               "refused": True}
    else:
        out["last_failure"] = None
    if out["last_failure"] is not None:
        out["last_failure"]["words"] = outcomes.reason_words(out["last_failure"]["reason"])
    out["last_success"] = r["last_success"]
    return out


async def by_slot(ctx, *, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """One row per slot over [start, end): name, provider, requests (booth shots, refused ones
    included), answered 200 / 504, refused, errors, success share, test shots apart, the last
    success and the last failure (what the booth got). A row `invalid` is added when booths sent
    photos to a slot id that does not exist (a mistyped URL)."""
    await _written(ctx)
    rows = await ctx.db.fetchall("report_by_slot", **{"from": start, "to": end})
    return [{"slot_id": r["slot_id"], "name": r["name"] or "", "provider_id": r["provider_id"],
             "operation_id": r["operation_id"], "enabled": r["enabled"], "exists": r["slot_id"] != INVALID_SLOT,
             **_row(r)} for r in rows]


async def refused_by_reason(ctx, *, start: dt.datetime, end: dt.datetime, slot_id: str | None = None) -> list[dict]:
    """Refused requests by reason and status, most first; test shots' refusals flagged apart."""
    await _written(ctx)
    rows = await ctx.db.fetchall("report_refused_by_reason", slot_id=slot_id, **{"from": start, "to": end})
    return [{"reason": r["reason"], "status": r["status"], "is_test": r["is_test"], "requests": int(r["requests"]),
             "words": outcomes.reason_words(r["reason"])} for r in rows]


async def last_failures(ctx, *, start: dt.datetime, end: dt.datetime, slot_id: str | None = None,
                        limit: int = 30) -> list[dict]:
    """The newest failures, newest first: each a job that ended without a result (once) or an
    episode of refusals of one kind at one slot (how many since when, from which addresses) —
    time, slot, what the booth got (HTTP status, reason and its words, the detail it was told)."""
    await _written(ctx)
    params = {"from": start, "to": end, "slot_id": slot_id, "limit": limit}
    jobs = await ctx.db.fetchall("report_failed_jobs", **params)
    episodes = await ctx.db.fetchall("report_refusals", **params)
    out = [{"at": j["finalized_at"], "slot_id": j["slot_id"], "status": j["answer_status"],
            "reason": j["failure_reason"], "detail": j["failure_detail"], "is_test": j["is_test"],
            "job_id": str(j["id"]), "requests": 1, "first_at": j["created_at"], "clients": [], "refused": False}
           for j in jobs]
    out += [{"at": e["last_at"], "slot_id": e["slot_id"], "status": e["status"], "reason": e["reason"],
             "detail": e["detail"], "is_test": e["is_test"], "job_id": None, "requests": int(e["requests"]),
             "first_at": e["first_at"], "clients": list(e["clients"] or []), "refused": True} for e in episodes]
    for item in out:
        item["words"] = outcomes.reason_words(item["reason"])
    out.sort(key=lambda item: item["at"], reverse=True)
    return out[:limit]
