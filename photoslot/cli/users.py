"""photoslot users reset|revoke NAME"""
from __future__ import annotations

import typer

from photoslot import audit, users
from photoslot.cli.common import console, print_json, with_context

app = typer.Typer(help="The admin accounts serg and igor (no others exist).", no_args_is_help=True)


@app.command("reset")
def reset(name: str = typer.Argument(..., metavar="NAME", help="serg or igor"),
          as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """New random password for serg or igor, printed once (only its hash is kept); ends their sessions."""

    async def go(ctx):
        return await users.reset_password(ctx, name, actor=audit.os_actor(), source="cli")

    password = with_context(go)
    if as_json:
        print_json({"username": name, "password": password})
    else:
        console.print(f"new password for {name} (shown once): {password}", markup=False, highlight=False)


@app.command("revoke")
def revoke(name: str = typer.Argument(..., metavar="NAME", help="serg or igor"),
           as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """End every session (token) of serg or igor at once, on every process; the password stays."""

    async def go(ctx):
        return await users.end_sessions(ctx, name, actor=audit.os_actor(), source="cli", action="users.revoke")

    epoch = with_context(go)
    if as_json:
        print_json({"username": name, "sessions_ended": True, "session_epoch": epoch})
    else:
        console.print(f"every session of {name} has ended; they sign in again with their password",
                      markup=False, highlight=False)
