"""photoslot template add|list|rm|unbind"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from photoslot import audit, templates
from photoslot.cli.common import console, fail, fmt_time, new_table, print_json, with_context

app = typer.Typer(help="Template media (style / face reference images) for slots.", no_args_is_help=True)


@app.command("add")
def add(file: Path = typer.Argument(..., metavar="FILE", help="a JPEG, PNG or WebP image"),
        label: Optional[str] = typer.Option(None, "--label", help="a name for admins (default: the file name)"),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Register an image as template media; prints its id (use it with `slot set --template ROLE=ID`)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", 2)

    async def go(ctx):
        return await templates.register(ctx, data=data, label=label if label is not None else file.name,
                                        actor=audit.os_actor(), source="cli")

    row = with_context(go)
    if as_json:
        print_json(row)
    else:
        console.print(f"template {row['id']} added ({row['mime']}, {row['size_bytes']} bytes, label {row['label']!r})")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Every template with its type, size, label and the slots using it."""
    rows = with_context(lambda ctx: templates.list_all(ctx.db))
    if as_json:
        print_json(rows)
        return
    table = new_table("template media", ("id", "label", "type", "size", "sha256", "used by", "added", "by"))
    for r in rows:
        table.add_row(r["id"], r["label"] or "—", r["mime"], f"{r['size_bytes']:,}", r["sha256"][:12],
                      ", ".join(r["used_by"]) or "—", fmt_time(r["created_at"]), r["uploaded_by"])
    console.print(table)
    if not rows:
        console.print("no templates yet; add one with `photoslot template add FILE`")


@app.command("rm")
def rm(template_id: str = typer.Argument(..., metavar="ID"),
       force: bool = typer.Option(False, "--force", help="also unbind it from the slots using it (they are disabled)"),
       as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Delete a template; refused while a slot uses it unless --force."""

    async def go(ctx):
        return await templates.remove(ctx, template_id, force=force, actor=audit.os_actor(), source="cli")

    report = with_context(go)
    if as_json:
        print_json(report)
        return
    console.print(f"template {template_id} removed")
    for b in report["unbound_from"]:
        console.print(f"unbound from {b['slot_id']} ({b['role']})"
                      + ("; the slot is now disabled until it gets a new template" if b["disabled"] else ""))


@app.command("unbind")
def unbind(template_id: str = typer.Argument(..., metavar="ID"),
           slot: str = typer.Option(..., "--slot", help="the slot to unbind it from"),
           role: str = typer.Option(..., "--role", help="the template role there (style, face)"),
           force: bool = typer.Option(False, "--force",
                                      help="also when the slot needs it (the slot is disabled) or other slots use it "
                                           "(unbound everywhere)"),
           as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Unbind a template from one slot's role (DELETE /api/template-media/{id}); refused without --force when
    an enabled slot needs it, naming the slot that would be disabled."""

    async def go(ctx):
        return await templates.unbind(ctx, template_id, slot_id=slot, role=role, force=force,
                                      actor=audit.os_actor(), source="cli")

    report = with_context(go)
    if as_json:
        print_json(report)
        return
    for b in report["unbound_from"]:
        console.print(f"unbound from {b['slot_id']} ({b['role']})"
                      + ("; the slot is now disabled until it gets a new template" if b["disabled"] else ""))
    if report["removed"]:
        console.print(f"template {template_id} removed (no slot uses it any more)")
