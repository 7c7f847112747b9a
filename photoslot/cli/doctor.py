"""`photoslot doctor [--json] [--live]`: the studio's checks as a ✓/✗ table; exit 1 when any failed."""
from __future__ import annotations

import typer

from photoslot.cli.common import console, err_console, print_json, run_async, state

MARKS = {"ok": "[green]✓[/green]", "fail": "[red]✗[/red]", "skipped": "[dim]–[/dim]"}


def doctor(as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
           live: bool = typer.Option(False, "--live", help="also make one real call per provider an enabled slot "
                                     "uses (costs one Gemini image per model, one Turbotext photo); proves billing, "
                                     "quota, region, model and that Turbotext reaches server.public_base_url; raw "
                                     "answers kept, redacted, in <data_dir>/doctor/")) -> None:
    """Check everything a studio needs: config, disk, database, schema, port, password, keys, TLS, clock, slots,
    Gemini models, the public address Turbotext fetches from; with --live, one real call per provider."""
    from rich.markup import escape
    from rich.table import Table

    from photoslot import doctor as checks_mod
    from photoslot import doctor_live

    if live:
        from photoslot.config import ConfigError, load_config

        try:
            where = doctor_live.folder(load_config(state.config_path))
        except ConfigError:
            where = "<data_dir>/doctor"
        err_console.print(doctor_live.COST_NOTE.format(folder=where), style="yellow", markup=False)
    checks = run_async(checks_mod.run(state.config_path, live=live))
    failed = [c for c in checks if not c.ok]
    if as_json:
        print_json(checks_mod.as_json(checks))
    else:
        table = Table(title="photoslot doctor", show_lines=False)
        for col in ("", "check", "result", "fix"):
            table.add_column(col, overflow="fold")
        for c in checks:
            table.add_row(MARKS[c.status], c.name, escape(c.detail), escape(c.fix or ""))
        console.print(table)
        console.print(f"{len(failed)} problem(s) found" if failed else "all checks passed",
                      style="red" if failed else "green")
    if failed:
        raise typer.Exit(1)
