"""photoslot secrets rotate"""
from __future__ import annotations

import typer

from photoslot import audit, secrets
from photoslot.cli.common import console, print_json, with_context

app = typer.Typer(help="The key that encrypts provider API keys stored in the database.", no_args_is_help=True)


@app.command("rotate")
def rotate(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """New encryption key for stored provider keys; re-encrypts them and drops the old key (audited)."""

    async def go(ctx):
        return await secrets.rotate(ctx, actor=audit.os_actor(), source="cli")

    report = with_context(go)
    if as_json:
        print_json(report)
    else:
        console.print(f"new key in {report['key_file']}; {report['re_encrypted']} stored secret(s) re-encrypted, "
                      f"{report['old_keys_dropped']} old key(s) dropped", markup=False, highlight=False)
