"""photoslot audit [--json]"""
from __future__ import annotations

import json
from typing import Optional

import typer

from photoslot import audit as audit_mod
from photoslot.cli.common import console, fmt_time, new_table, print_json, with_context


def audit(
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="how many entries, newest first"),
    action: Optional[str] = typer.Option(None, "--action", help="only this action, e.g. settings.update"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Every admin write, from the CLI and the HTTP API: who, when, what (never a secret)."""

    async def go(ctx):
        return await audit_mod.entries(ctx.db, limit=limit, action=action)

    rows = with_context(go)
    if as_json:
        print_json(rows)
        return
    table = new_table("audit log", ("when", "actor", "via", "action", "target", "changed"))
    for r in rows:
        table.add_row(fmt_time(r["at"]), r["actor"], r["source"], r["action"], r["target"] or "—",
                      json.dumps(r["details"], ensure_ascii=False, default=str)[:200])
    console.print(table)
