"""photoslot settings show|set"""
from __future__ import annotations

from typing import Optional

import typer

from photoslot import audit
from photoslot import settings as live_settings
from photoslot.cli.common import SafeTable, console, fail, fmt_time, print_json, with_context

app = typer.Typer(help="Live settings: response window, retention, ingest password.", no_args_is_help=True)

PROMPT = "<ask>"  # the bare flag: cli.app turns it into this marker


def _print(view: dict) -> None:
    table = SafeTable(show_header=False, title="photoslot settings")
    table.add_column("setting", style="bold")
    table.add_column("value")
    lo, hi = view["sync_response_bounds"]
    table.add_row("T_sync_response", f"{view['sync_response_seconds']:g} s (allowed {lo:g}–{hi:g} s)")
    table.add_row("result retention", f"{view['result_retention_hours']:g} h")
    pw = "set" if view["ingest_password_set"] else "NOT SET — every ingest answers 401"
    if view["ingest_password_set"] and view["ingest_password_updated_at"]:
        pw += f" (changed {fmt_time(view['ingest_password_updated_at'])} by {view['ingest_password_updated_by']})"
    table.add_row("ingest password", pw)
    for name, info in view["provider_keys"].items():
        table.add_row(f"{name} API key", "configured" if info["is_configured"] else "not configured")
    console.print(table)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
         reveal: bool = typer.Option(False, "--reveal-ingest-password",
                                     help="also print the current ingest password, to give a new booth "
                                          "(audited; the other booths keep theirs)")) -> None:
    """T_sync_response, retention, whether an ingest password / provider keys are set (never their values
    unless --reveal-ingest-password)."""

    async def go(ctx):
        view = live_settings.public_view(await live_settings.load(ctx.db, ctx.cfg), ctx.cfg)
        if reveal:
            shown = await live_settings.reveal_ingest_password(ctx.db, ctx.cfg, ctx.clock, actor=audit.os_actor(),
                                                               source="cli")
            view["ingest_password"] = shown["value"]
        return view

    view = with_context(go)
    if as_json:
        print_json(view)
        return
    _print(view)
    if reveal:
        console.print(f"ingest password: {view['ingest_password']}", highlight=False, markup=False)


@app.command("set")
def set_(
    sync_timeout: Optional[float] = typer.Option(None, "--sync-timeout", metavar="SECONDS",
                                                 help="T_sync_response for new jobs (within the configured bounds)"),
    ingest_password: Optional[str] = typer.Option(None, "--ingest-password", metavar="[TEXT]",
                                                  help="new ingest password (12 to 256 characters); without TEXT "
                                                       "it is asked for without echo"),
    retention: Optional[float] = typer.Option(None, "--result-retention-hours", metavar="H",
                                              help="how long results stay downloadable"),
    generate: bool = typer.Option(False, "--generate-ingest-password",
                                  help="a new ingest password made by photoslot (like K7QM-X9PR-4TNH-W2ZD: no "
                                       "look-alike characters), printed once; every booth needs it"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Live change, audited. The new password works on the very next ingest."""
    if generate and ingest_password is not None:
        fail("give --ingest-password or --generate-ingest-password, not both", 2)
    if ingest_password == PROMPT:  # asked twice: a typo would lock every booth out
        ingest_password = typer.prompt("new ingest password", hide_input=True, confirmation_prompt=True)
    if sync_timeout is None and ingest_password is None and retention is None and not generate:
        fail("nothing to change: give --sync-timeout, --ingest-password, --generate-ingest-password or "
             "--result-retention-hours", 2)

    async def go(ctx):
        made = None
        if sync_timeout is not None or ingest_password is not None or retention is not None:
            await live_settings.update(ctx.db, ctx.cfg, ctx.clock, actor=audit.os_actor(), source="cli",
                                       sync_response_seconds=sync_timeout, ingest_password=ingest_password,
                                       result_retention_hours=retention)
        if generate:
            made = await live_settings.generate_ingest_password(ctx.db, ctx.cfg, ctx.clock, actor=audit.os_actor(),
                                                                source="cli")
        view = live_settings.public_view(await live_settings.load(ctx.db, ctx.cfg), ctx.cfg)
        if made is not None:
            view["ingest_password"] = made
        return view

    view = with_context(go)
    if as_json:
        print_json(view)
        return
    _print(view)
    if generate:
        console.print(f"new ingest password (enter it on every booth): {view['ingest_password']}", highlight=False,
                      markup=False)


@app.command("provider-key")
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
