"""photoslot providers (the catalogue) · photoslot providers status (each provider's health)"""
from __future__ import annotations

import typer

from photoslot import provider_health
from photoslot.cli.common import console, fmt_time, new_table, print_json, with_context
from photoslot.providers import catalogue

app = typer.Typer(help="The provider/operation catalogue with parameters. `providers status` shows each "
                       "provider's health.")


@app.callback(invoke_without_command=True)
def providers(typer_ctx: typer.Context,
              as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The provider/operation catalogue with parameters."""
    if typer_ctx.invoked_subcommand is not None:
        return
    data = catalogue.as_list()
    if as_json:
        print_json(data)
        return
    table = new_table("providers and operations", ("provider", "operation", "templates", "parameters"))
    for p in data:
        for op in p["operations"]:
            params = ", ".join(
                f"{k} ({v['type']}{', ' + str(v.get('minimum')) + '–' + str(v.get('maximum')) if 'minimum' in v else ''})"
                for k, v in op["parameters"].items()) or "—"
            table.add_row(p["id"], op["id"], ", ".join(op["needs"]) or "—", ("prompt; " if op["prompt_required"] else "") + params)
    console.print(table)


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Each provider's health, shared by every process: up or down, failed calls in a row, last problem, next try."""

    async def go(ctx):
        return await provider_health.board_view(ctx, list(catalogue.CATALOGUE))

    rows = with_context(go)
    if as_json:
        print_json(rows)
        return
    table = new_table("provider health", ("provider", "state", "failed calls in a row", "down since", "next try",
                                          "last problem"))
    for r in rows:
        table.add_row(r["provider"], r["state"], str(r["consecutive_failures"]), fmt_time(r["down_since"]),
                      "probe running" if r["probe_running"] else
                      (f"in {r['retry_after_s']} s" if r["retry_after_s"] else "—"), r["last_problem"] or "—")
    console.print(table)
