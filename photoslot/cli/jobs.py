"""photoslot jobs · photoslot job JOB_ID · photoslot jobs cancel JOB_ID"""
from __future__ import annotations

import uuid
from typing import Optional

import typer
from rich.text import Text

from photoslot import audit, job_control
from photoslot import stats as stats_mod
from photoslot import jobs as jobs_mod
from photoslot.cli.common import console, fail, fmt_time, new_table, print_json, with_context
from photoslot.errors import NotFound, ValidationError

STATUSES = jobs_mod.STATES
# Why a shot failed, in the list itself; long enough for a provider's message, short enough for a row.
DETAIL_CHARS = 100


def job_view(job: dict) -> dict:
    def ms(a, b):
        return int((b - a).total_seconds() * 1000) if a and b else None

    return {
        "id": str(job["id"]), "slot_id": job["slot_id"], "status": job["status"],
        "is_finalized": job["is_finalized"], "failure_reason": job["failure_reason"],
        "failure_detail": job["failure_detail"], "provider_id": job["provider_id"],
        "operation_id": job["operation_id"], "provider_job_reference": job["provider_job_reference"],
        "attempts": job["attempts"], "provider_requests": job["provider_requests"], "poll_count": job["poll_count"],
        "result_mime_type": job["result_mime_type"], "result_size_bytes": job["result_size_bytes"],
        "result_expires_at": job["result_expires_at"], "expires_at": job["expires_at"],
        "created_at": job["created_at"], "finalized_at": job["finalized_at"],
        "queue_wait_ms": ms(job["created_at"], job["started_at"]),
        "total_elapsed_ms": ms(job["created_at"], job["finalized_at"]),
        "is_test": job["is_test"],
    }


app = typer.Typer(help="Recent jobs with state, reason, timings. `jobs cancel JOB_ID` cancels one.")


@app.callback(invoke_without_command=True)
def jobs(
    typer_ctx: typer.Context,
    slot: Optional[str] = typer.Option(None, "--slot", help="only this slot"),
    status: Optional[str] = typer.Option(None, "--status", help=f"one of: {', '.join(STATUSES)}"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="how many, newest first"),
    since: Optional[str] = typer.Option(None, "--since", metavar="DURATION",
                                        help="only jobs created within this window: 30m, 24h, 7d …"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Recent jobs with state, reason, timings (`jobs cancel JOB_ID` cancels one)."""
    if typer_ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in STATUSES:
        fail(f"--status must be one of: {', '.join(STATUSES)}", 2)

    try:
        window = stats_mod.parse_duration(since) if since else None
    except ValidationError as exc:
        fail(f"--since: {next(iter(exc.details.values()), exc.message)}", 2)

    async def go(ctx):
        created_from = ctx.clock.now() - window if window else None
        return [job_view(j) for j in await jobs_mod.list_recent(ctx.db, slot_id=slot, status=status, limit=limit,
                                                                created_from=created_from)]

    rows = with_context(go)
    if as_json:
        print_json(rows)
        return
    table = new_table("recent jobs", ("created", "job", "slot", "provider", "status", "reason", "total ms", "attempts",
                                      "detail"))
    cut = False
    for r in rows:
        detail = r["failure_detail"] or "—"
        if len(detail) > DETAIL_CHARS:
            detail, cut = detail[:DETAIL_CHARS - 1] + "…", True
        slot_label = f"{r['slot_id']} (test)" if r["is_test"] else r["slot_id"]
        table.add_row(fmt_time(r["created_at"]), r["id"], slot_label, r["provider_id"], r["status"],
                      r["failure_reason"] or "—", str(r["total_elapsed_ms"] or "—"), str(r["attempts"]),
                      Text(detail))  # Text: a provider's message is never read as rich markup
    console.print(table)
    if cut:
        console.print("a detail ending in … is cut short: `photoslot job JOB_ID` shows it whole", markup=False)


def job(job_id: str = typer.Argument(..., metavar="JOB_ID"),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """One job with its deadline and timings (GET /api/jobs/{job_id})."""

    async def go(ctx):
        try:
            row = await jobs_mod.get(ctx.db, uuid.UUID(job_id))
        except ValueError:
            row = None
        if row is None:
            raise NotFound(f"no job {job_id}")
        return jobs_mod.admin_view(row, ctx.cfg, ctx.clock.now())

    view = with_context(go)
    if as_json:
        print_json(view)
        return
    j = view["job"]
    console.print(f"{j['id']}  {j['slot_id']}  {j['provider_id']}/{j['operation_id']}  {j['status']}"
                  f"{'  (' + j['failure_reason'] + ')' if j['failure_reason'] else ''}")
    console.print(f"created {fmt_time(j['created_at'])}, finalized {fmt_time(j['finalized_at'])}, "
                  f"deadline {fmt_time(view['deadline']['expires_at'])}")
    m = view["metrics"]
    console.print(f"queue {m['queue_wait_ms']} ms, processing {m['processing_ms']} ms, total {m['total_elapsed_ms']} ms")
    if j["failure_detail"]:
        console.print(f"detail: {j['failure_detail']}", markup=False)
    if j["download_url"]:
        console.print(f"download: {j['download_url']}")


@app.command("cancel")
def cancel(job_id: str = typer.Argument(..., metavar="JOB_ID"),
           as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Finalize a pending or processing job as cancelled by an admin (its booth is answered at once); audited."""

    async def go(ctx):
        row = await job_control.cancel(ctx, job_id, actor=audit.os_actor(), source="cli")
        return jobs_mod.admin_view(row, ctx.cfg, ctx.clock.now())

    view = with_context(go)
    if as_json:
        print_json(view)
        return
    console.print(f"{view['job']['id']} cancelled ({view['job']['failure_reason']})", markup=False, highlight=False)
