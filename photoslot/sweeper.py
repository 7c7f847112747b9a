"""The sweeper: one pass finalizes abandoned jobs and removes files nothing points to.

Runs every `sweeper.interval_seconds` inside `serve` (APScheduler) and once per
`photoslot sweep`. Safe to run from two processes at once: row updates are conditional and
SKIP LOCKED, file removal tolerates a twin having removed the file first.
"""
from __future__ import annotations

import datetime as dt
import logging
import time

from photoslot.logs import event

log = logging.getLogger("photoslot.sweeper")

# An ingest finalizes its own job at the deadline; the sweeper only steps in when nobody did.
ABANDON_GRACE = dt.timedelta(seconds=2)
# A file younger than this may belong to an upload still being written (no job row yet).
ORPHAN_GRACE_SECONDS = 120


async def sweep_once(ctx) -> dict:
    started = time.perf_counter()
    now = ctx.clock.now()
    report = {"jobs_timed_out": 0, "uploads_removed": 0, "orphan_files_removed": 0}
    rows = await ctx.db.fetchall("jobs_expire_abandoned", now=now, cutoff=now - ABANDON_GRACE)
    for row in rows:
        report["jobs_timed_out"] += 1
        if ctx.media.remove(row["old_upload_path"]):
            report["uploads_removed"] += 1
        event(log, "job_timed_out_by_sweeper", job=str(row["id"]), slot=row["slot_id"], provider=row["provider_id"])
    referenced = {r["upload_path"] for r in await ctx.db.fetchall("jobs_upload_paths")}
    cutoff = time.time() - ORPHAN_GRACE_SECONDS
    if ctx.media.uploads.exists():
        for path in ctx.media.uploads.iterdir():
            try:
                if str(path) not in referenced and path.stat().st_mtime < cutoff:
                    path.unlink()
                    report["orphan_files_removed"] += 1
            except FileNotFoundError:
                continue
    report["ms"] = int((time.perf_counter() - started) * 1000)
    event(log, "sweep", **report)
    return report
