"""`photoslot migrate [--json]`: bring the database schema forward (every start does it too)."""
from __future__ import annotations

import asyncio
import subprocess

import psycopg2

import typer

from photoslot.cli.common import config, console, fail, print_json, run_async


def migrate(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Apply the migrations this photoslot has and the database lacks; refuse a newer database."""
    from photoslot import db as dbmod
    from photoslot import schema

    cfg = config()

    async def go():
        dsn = await asyncio.to_thread(dbmod.resolve_dsn, cfg)
        return await asyncio.to_thread(schema.migrate_dsn, dsn)

    try:
        report = run_async(go())  # a SchemaError (newer database, failed migration) is one line there
    except (psycopg2.Error, OSError, subprocess.SubprocessError) as exc:  # no database to migrate
        text = str(exc).strip()
        fail(f"database unavailable: {text.splitlines()[0] if text else exc.__class__.__name__}", 1)
    if as_json:
        print_json(report)
        return
    if report["adopted_baseline"]:
        console.print("adopted the pre-migration schema as 0001_baseline", highlight=False)
    for name in report["applied"]:
        console.print(f"applied {name}", highlight=False)
    if report["applied"] or report["adopted_baseline"]:
        console.print(f"schema at version {report['to_version']} (was {report['from_version']})", highlight=False)
    else:
        console.print(f"schema at version {report['to_version']}: up to date", highlight=False)
