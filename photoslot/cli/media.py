"""photoslot media purge|register"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Optional

import typer

from photoslot import audit, public_media, purge
from photoslot.cli.common import console, fail, fmt_time, print_json, with_context

app = typer.Typer(help="Public media links and the media cache.", no_args_is_help=True)


@app.command("purge")
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


@app.command("register")
def media_register(file: Path = typer.Argument(..., metavar="FILE", exists=True, dir_okay=False),
                   job_id: Optional[str] = typer.Option(None, "--job-id", help="cap the link at this job's deadline"),
                   as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """A temporary public link to an image (what Turbotext fetches)."""
    try:
        job = uuid.UUID(job_id) if job_id else None
    except ValueError:
        fail("--job-id must be a UUID", 2)

    async def go(ctx):
        return await public_media.register(ctx, data=file.read_bytes(), job_id=job, kind="upload")

    out = with_context(go)
    print_json(out) if as_json else console.print(f"{out['public_url']} (until {fmt_time(out['expires_at'])})")
