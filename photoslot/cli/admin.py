"""CLI parity with the admin API for what the spine's commands do not cover: slot reset-stats,
settings provider-key, media register|purge, job ID. Same service functions as the HTTP handlers."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from photoslot import audit, purge
from photoslot import jobs as jobs_mod
from photoslot import settings as live_settings
from photoslot import stats as stats_mod
from photoslot.cli.common import console, fail, fmt_time, print_json, with_context

media_app = typer.Typer(help="Public media links and the media cache.", no_args_is_help=True)


def reset_stats(slot_id: str = typer.Argument(..., metavar="SLOT")) -> None:
    """The slot's stats count from now on (POST /api/slots/{slot_id}/reset_stats)."""

    async def go(ctx):
        return await stats_mod.reset_stats(ctx, slot_id, actor=audit.os_actor(), source="cli")

    row = with_context(go)
    console.print(f"{slot_id}: stats count from {fmt_time(row['last_reset_at'])}")


def provider_key(provider: str = typer.Argument(..., metavar="PROVIDER", help="gemini or turbotext"),
                 value: Optional[str] = typer.Option(None, "--value", help="the key; without it, asked without echo")) -> None:
    """Store a provider API key in the database (wins over the config file from the next job on)."""
    if value is None:
        value = typer.prompt(f"{provider} API key", hide_input=True)

    async def go(ctx):
        updated = await live_settings.update(ctx.db, ctx.cfg, ctx.clock, actor=audit.os_actor(), source="cli",
                                             provider_keys={provider: value})
        return live_settings.public_view(updated, ctx.cfg)["provider_keys"][provider]

    state = with_context(go)
    console.print(f"{provider} API key stored ({'configured' if state['is_configured'] else 'not configured'})")


@media_app.command("purge")
def media_purge(scope: str = typer.Option("media_objects", "--scope", help="media_objects or full"),
                as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Queue a media cache purge; the sweeper carries it out on its next pass."""

    async def go(ctx):
        return await purge.request_purge(ctx, scope, actor=audit.os_actor(), source="cli")

    out = with_context(go)
    if as_json:
        print_json(out)
    else:
        console.print(f"purge {out['job_id']} queued ({out['scope']}, cutoff {fmt_time(out['expires_cutoff'])})")


@media_app.command("register")
def media_register(file: Path = typer.Argument(..., metavar="FILE", exists=True, dir_okay=False),
                   job_id: Optional[str] = typer.Option(None, "--job-id", help="cap the link at this job's deadline"),
                   as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """A temporary public link to an image (what Turbotext fetches)."""
    import uuid

    from photoslot import public_media

    try:
        job = uuid.UUID(job_id) if job_id else None
    except ValueError:
        fail("--job-id must be a UUID", 2)

    async def go(ctx):
        return await public_media.register(ctx, data=file.read_bytes(), job_id=job, kind="upload")

    out = with_context(go)
    print_json(out) if as_json else console.print(f"{out['public_url']} (until {fmt_time(out['expires_at'])})")


def job(job_id: str = typer.Argument(..., metavar="JOB_ID"),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """One job with its deadline and timings (GET /api/jobs/{job_id})."""
    import uuid

    from photoslot.errors import NotFound

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
