"""photoslot jobs"""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from photoslot import jobs as jobs_mod
from photoslot.cli.common import console, fail, fmt_time, print_json, with_context

STATUSES = ("pending", "processing", "succeeded", "timeout", "failed", "cancelled")


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
    }


def jobs(
    slot: Optional[str] = typer.Option(None, "--slot", help="only this slot"),
    status: Optional[str] = typer.Option(None, "--status", help=f"one of: {', '.join(STATUSES)}"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="how many, newest first"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Recent jobs with state, reason, timings."""
    if status is not None and status not in STATUSES:
        fail(f"--status must be one of: {', '.join(STATUSES)}", 2)

    async def go(ctx):
        return [job_view(j) for j in await jobs_mod.list_recent(ctx.db, slot_id=slot, status=status, limit=limit)]

    rows = with_context(go)
    if as_json:
        print_json(rows)
        return
    table = Table(title="recent jobs")
    for col in ("created", "job", "slot", "provider", "status", "reason", "total ms", "attempts"):
        table.add_column(col)
    for r in rows:
        table.add_row(fmt_time(r["created_at"]), r["id"], r["slot_id"], r["provider_id"], r["status"],
                      r["failure_reason"] or "—", str(r["total_elapsed_ms"] or "—"), str(r["attempts"]))
    console.print(table)
