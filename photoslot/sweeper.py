"""The sweeper: one pass enforces every TTL (docs/ARCHITECTURE.md "TTLs") and evaluates the alerts.

Runs every `sweeper.interval_seconds` inside `serve` (APScheduler), and once per `photoslot sweep`
(cron, or after downtime). A pass, in order:

1. finalizes open jobs past their deadline as `timeout` (nobody is waiting any more) and removes
   their uploads;
2. expires public media links made for providers (public_media.sweep: rows, their files, and
   orphans under public/);
3. deletes result files past `result_expires_at`, thumbnails included (their links answer 410
   from then on);
4. carries out queued `POST /api/media/cache/purge` requests;
5. removes orphan files under uploads/, results/ and templates/ that no row points to and that
   are older than `sweeper.orphan_grace_seconds` (an upload being written has no row yet);
6. deletes finished job rows older than `sweeper.job_row_retention_days` whose result is gone,
   quota windows that can no longer matter, and statistics rollups older than
   `stats.rollup_retention_days` (400);
7. evaluates the alerts.

Safe to run from two processes at once: every row change is a conditional UPDATE/DELETE over rows
taken with SKIP LOCKED, so each row is handled by one pass; file removal tolerates a twin having
removed the file first. A failing step is logged and the pass goes on with the next one.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from pathlib import Path

from photoslot import alerts, public_media, purge, quotas, refusals, rollups
from photoslot.db import DatabaseUnavailable
from photoslot.logs import event

log = logging.getLogger("photoslot.sweeper")

# An ingest finalizes its own job at the deadline; the sweeper only steps in when nobody did.
ABANDON_GRACE = dt.timedelta(seconds=2)
BATCH = 1000

COUNTS = ("jobs_timed_out", "uploads_removed", "public_links_expired", "results_expired",
          "purges_done", "orphan_files_removed", "job_rows_pruned", "alerts_changed")


async def sweep_once(ctx) -> dict:
    started = time.perf_counter()
    now = ctx.clock.now()
    report: dict = {k: 0 for k in COUNTS}
    report["errors"] = []
    for step in (_expire_abandoned_jobs, _expire_public_links, _expire_results, _run_purges,
                 _remove_orphans, _prune_job_rows, _evaluate_alerts):
        try:
            await step(ctx, now, report)
        except Exception as exc:  # one broken step must not stop the others (nor the scheduler)
            name = step.__name__.lstrip("_")
            report["errors"].append(f"{name}: {exc.__class__.__name__}")
            if isinstance(exc, DatabaseUnavailable):  # an outage, not a bug: no traceback
                event(log, "sweep_step_failed", logging.WARNING, step=name, error=f"{exc.__class__.__name__}: {exc}")
            else:
                log.exception("event=sweep_step_failed step=%s", name)
    report["ms"] = int((time.perf_counter() - started) * 1000)
    event(log, "sweep", logging.WARNING if report["errors"] else logging.INFO,
          **{k: v for k, v in report.items() if k != "errors"},
          errors=",".join(report["errors"]) or None)
    return report


async def sweep_and_deliver(ctx) -> dict:
    """One pass for `photoslot sweep`: also waits (bounded) for alert webhooks before the process exits."""
    report = await sweep_once(ctx)
    await alerts.drain(timeout=float(ctx.cfg.get("alerts.webhook_timeout_seconds")) + 1)
    return report


# ---------------------------------------------------------------- 1. abandoned jobs

async def _expire_abandoned_jobs(ctx, now, report) -> None:
    rows = await ctx.db.fetchall("jobs_expire_abandoned", now=now, cutoff=now - ABANDON_GRACE)
    for row in rows:
        report["jobs_timed_out"] += 1
        if ctx.media.remove(row["old_upload_path"]):
            report["uploads_removed"] += 1
        event(log, "job_timed_out_by_sweeper", job=str(row["id"]), slot=row["slot_id"], provider=row["provider_id"])


# ---------------------------------------------------------------- 2. public links

async def _expire_public_links(ctx, now, report) -> None:
    # The links' own module owns the rule (TTL, job finalized, files under public/); the sweeper runs it.
    done = await public_media.sweep(ctx)
    report["public_links_expired"] += int(done.get("links_closed", 0))
    report["orphan_files_removed"] += int(done.get("public_orphans_removed", 0))


# ---------------------------------------------------------------- 3. results past retention

async def _expire_results(ctx, now, report) -> None:
    while True:
        rows = await ctx.db.fetchall("ops_results_expire", now=now, limit=BATCH)
        for row in rows:
            ctx.media.remove_result(row["result_file_path"])  # its thumbnail goes with it
            report["results_expired"] += 1
        if len(rows) < BATCH:
            return


# ---------------------------------------------------------------- 4. purge requests

async def _run_purges(ctx, now, report) -> None:
    """`POST /api/media/cache/purge`: `media_objects` closes every open public link; `full` also
    deletes the results finished up to the request's cutoff. Idempotent, so a twin doing it too is harmless."""
    for req in await purge.pending_purges(ctx.db):
        cutoff = req["expires_cutoff"]
        done = {"media_objects_expired": await public_media.expire_all(ctx), "results_removed": 0}
        if req["scope"] == "full":
            while True:
                rows = await ctx.db.fetchall("ops_results_purge", now=now, cutoff=cutoff, limit=BATCH)
                for row in rows:
                    ctx.media.remove_result(row["result_file_path"])
                done["results_removed"] += len(rows)
                if len(rows) < BATCH:
                    break
        if await purge.mark_purge_done(ctx.db, req["id"], done, now=now):
            report["purges_done"] += 1
            event(log, "purge_done", purge=str(req["id"]), scope=req["scope"], **done)


# ---------------------------------------------------------------- 5. orphan files

async def _remove_orphans(ctx, now, report) -> None:
    grace = float(ctx.cfg.get("sweeper.orphan_grace_seconds"))
    # The file's age is measured on the same clock as every TTL, so a test moving the clock moves it too.
    cutoff = now.timestamp() - grace
    # public/ is swept by public_media.sweep (step 2) against its own rows.
    folders = [ctx.media.uploads, ctx.media.results, ctx.media.templates]
    # Files first, rows second: a row inserted meanwhile is then seen, so its file is never taken
    # for an orphan.
    candidates = await asyncio.to_thread(_old_files, folders, cutoff)
    if not candidates:
        return
    job_files = [r["path"] for r in await ctx.db.fetchall("ops_referenced_job_files")]
    # A live result's thumbnail is kept with it; one whose result is gone is an orphan.
    referenced = {_norm(p) for p in job_files} | {_norm(ctx.media.thumbnail_path(p)) for p in job_files}
    # A template's preview (the web admin's, made on first view) is kept with it, likewise.
    template_files = [r["path"] for r in await ctx.db.fetchall("ops_referenced_template_files")]
    referenced |= {_norm(p) for p in template_files} | {_norm(ctx.media.thumbnail_path(p)) for p in template_files}
    for path in candidates:
        if _norm(path) in referenced:
            continue
        if ctx.media.remove(path):
            report["orphan_files_removed"] += 1
            event(log, "orphan_file_removed", kind=path.parent.name, file=path.name)


def _old_files(folders: list[Path], cutoff: float) -> list[Path]:
    out = []
    for folder in folders:
        if not folder.exists():
            continue
        for path in folder.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    out.append(path)
            except FileNotFoundError:
                continue
    return out


def _norm(path) -> str:
    return str(Path(path).resolve())


# ---------------------------------------------------------------- 6. old job rows

async def _prune_job_rows(ctx, now, report) -> None:
    await quotas.prune(ctx.db, now)
    await rollups.prune(ctx.db, ctx.cfg, now)  # the statistics' hourly rows: kept far longer than jobs
    await refusals.prune(ctx.db, now)  # the Statistics page's record of recent refusals
    await ctx.db.execute("ended_sessions_prune", now=now)  # signed-out sessions past their absolute end
    days = float(ctx.cfg.get("sweeper.job_row_retention_days"))
    if days <= 0:
        return
    cutoff = now - dt.timedelta(days=days)
    while True:
        rows = await ctx.db.fetchall("ops_prune_job_rows", cutoff=cutoff, limit=BATCH)
        report["job_rows_pruned"] += len(rows)
        if len(rows) < BATCH:
            return


# ---------------------------------------------------------------- 7. alerts

async def _evaluate_alerts(ctx, now, report) -> None:
    changed = await alerts.evaluate(ctx, now=now)
    report["alerts_changed"] += len(changed)
