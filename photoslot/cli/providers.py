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
            params = ", ".join(f"{k} ({describe_param(v)})" for k, v in op["parameters"].items()) or "—"
            table.add_row(p["id"], op["id"], ", ".join(op["needs"]) or "—", ("prompt; " if op["prompt_required"] else "") + params)
    console.print(table)


def describe_param(v: dict) -> str:
    """"int, 0–80", "str: 1:1 | 2:3 | …", "str, ≤ 80 words" — the type and what the provider accepts."""
    if "choices" in v:
        return f"{v['type']}: {' | '.join(v['choices'])}"
    text = v["type"]
    if "minimum" in v:
        text += f", {v.get('minimum')}–{v.get('maximum')}"
    if "max_words" in v:
        text += f", ≤ {v['max_words']} words"
    return text


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Each provider's health, shared by every process: up or down and why, failed calls in a row, last problem,
    next try, and what the provider says is left on the account (Turbotext's tariff)."""

    async def go(ctx):
        return await provider_health.board_view(ctx, list(catalogue.CATALOGUE))

    rows = with_context(go)
    if as_json:
        print_json(rows)
        return
    table = new_table("provider health", ("provider", "state", "why", "failed calls in a row", "down since",
                                          "next try", "last problem", "left on the account"))
    for r in rows:
        table.add_row(r["provider"], r["state"], r["reason"] or "—", str(r["consecutive_failures"]),
                      fmt_time(r["down_since"]),
                      "probe running" if r["probe_running"] else
                      (f"in {r['retry_after_s']} s" if r["retry_after_s"] else "—"), r["last_problem"] or "—",
                      "—" if r["quota_remaining"] is None else str(r["quota_remaining"]))
    console.print(table)
