"""photoslot slot list|show|set|reset"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import aiohttp
import typer

from photoslot import audit, slots
from photoslot import stats as stats_mod
from photoslot import templates as template_media
from photoslot.cli.common import (SafeTable, config, console, fail, fmt_time, new_table, print_json, run_async,
                                  with_context)
from photoslot.providers import catalogue

app = typer.Typer(help="The 15 slots: list, inspect, configure, reset.", no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """15 rows: id, name, provider, operation, enabled, ingest URL, last result."""

    async def go(ctx):
        return [slots.view(ctx.cfg, s) for s in await slots.list_all(ctx.db)]

    rows = with_context(go)
    if as_json:
        print_json(rows)
        return
    table = new_table("photoslot slots", ("slot", "name", "provider", "operation", "enabled", "ingest URL", "last result"))
    for r in rows:
        table.add_row(r["id"], r["name"] or "—", r["provider_id"] or "—", r["operation_id"] or "—",
                      "yes" if r["enabled"] else "no", r["ingest_url"], fmt_time(r["last_result_at"]))
    console.print(table)


def _show(slot: dict, recent: list[dict]) -> None:
    table = SafeTable(show_header=False, title=f"{slot['id']}")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in ("name", "provider_id", "operation_id", "enabled", "version", "ingest_url", "updated_at"):
        value = slot[key]
        table.add_row(key, fmt_time(value) if key.endswith("_at") else str(value if value is not None else "—"))
    table.add_row("settings", json.dumps(slot["settings_json"], ensure_ascii=False, indent=1))
    console.print(table)
    if recent:
        res = new_table("recent results", ("job", "finished", "download"))
        for r in recent:
            res.add_row(r["job_id"], fmt_time(r["completed_at"]), r["download_url"])
        console.print(res)
    else:
        console.print("no results yet")


@app.command("show")
def show(slot_id: str = typer.Argument(..., metavar="SLOT"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Full settings and the last results (job id, time, download link)."""

    async def go(ctx):
        slot = slots.view(ctx.cfg, await slots.get(ctx.db, slot_id))
        return slot, await slots.recent_results(ctx.db, ctx.cfg, slot_id)

    slot, recent = with_context(go)
    if as_json:
        print_json({**slot, "recent_results": recent})
    else:
        _show(slot, recent)


def _key_values(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{flag} expects KEY=VALUE, got {item!r}", 2)
        out[key] = value
    return out


@app.command("set")
def set_(
    slot_id: str = typer.Argument(..., metavar="SLOT"),
    name: Optional[str] = typer.Option(None, "--name", help="label shown to admins"),
    provider: Optional[str] = typer.Option(None, "--provider", help=catalogue.cli_help()["provider"]),
    operation: Optional[str] = typer.Option(None, "--operation", help=catalogue.cli_help()["operation"]),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="what the AI should do with the photo"),
    param: List[str] = typer.Option([], "--param", help=catalogue.cli_help()["param"]),
    template: List[str] = typer.Option([], "--template", help=catalogue.cli_help()["template"]),
    output_format: Optional[str] = typer.Option(None, "--output-format", help="jpeg, png or webp (default: the format the booth sent)"),
    enable: Optional[bool] = typer.Option(None, "--enable/--disable", help="accept ingests or not"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Validate against the catalogue, save, print the result."""
    params = _key_values(param, "--param")
    templates = _key_values(template, "--template")

    async def go(ctx):
        current = await slots.get(ctx.db, slot_id)
        new_provider = provider or current["provider_id"]
        new_operation = operation or current["operation_id"]
        switched = (new_provider, new_operation) != (current["provider_id"], current["operation_id"])
        settings = {} if switched else dict(current["settings_json"] or {})
        if prompt is not None:
            settings["prompt"] = prompt
        if output_format is not None:
            settings["output_format"] = output_format
        if params:
            merged = dict(settings.get("params") or {})
            for k, v in params.items():
                merged[k] = catalogue.coerce_param(new_provider, new_operation, k, v)
            settings["params"] = merged
        created: list[str] = []
        if templates:
            ids, created = await template_media.resolve_refs(ctx, templates, actor=audit.os_actor(), source="cli")
            settings["templates"] = {**(settings.get("templates") or {}), **ids}
        try:
            saved = await slots.configure(ctx.db, ctx.clock, slot_id, actor=audit.os_actor(), source="cli", name=name,
                                          provider_id=new_provider, operation_id=new_operation,
                                          settings_json=settings, enabled=enable, expected_version=current["version"])
        except BaseException:
            await template_media.discard_unused(ctx, created)  # a refused `slot set` leaves no template behind
            raise
        view = slots.view(ctx.cfg, saved)
        return view, await slots.recent_results(ctx.db, ctx.cfg, slot_id)

    slot, recent = with_context(go)
    if as_json:
        print_json(slot)
    else:
        _show(slot, recent)


@app.command("reset")
def reset(slot_id: str = typer.Argument(..., metavar="SLOT"),
          as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Back to unconfigured (the id and its ingest URL stay)."""

    async def go(ctx):
        return slots.view(ctx.cfg, await slots.reset(ctx.db, ctx.clock, slot_id, actor=audit.os_actor(), source="cli"))

    slot = with_context(go)
    if as_json:
        print_json(slot)
    else:
        console.print(f"{slot['id']} reset; its ingest URL {slot['ingest_url']} answers 404 until configured again")


@app.command("test")
def test(
    slot_id: str = typer.Argument(..., metavar="SLOT"),
    image: Path = typer.Argument(..., metavar="IMAGE", exists=True, dir_okay=False, readable=True),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="where to save the result"),
    password: Optional[str] = typer.Option(None, "--password", envvar="PHOTOSLOT_INGEST_PASSWORD",
                                           help="the ingest password (asked for without echo if not given)"),
    url: Optional[str] = typer.Option(None, "--url", help="server base URL (default: the slot's ingest URL, as "
                                                          "`slot list` shows it)"),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", metavar="FILE", exists=True, dir_okay=False, readable=True,
                                           help="PEM certificate(s) to trust for an https server whose certificate "
                                                "is self-signed or from a private CA (the certificate itself will do)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Run one real ingest for SLOT through the running server, as DSLR Remote Pro would, and save the result."""
    cfg = config()
    try:
        slots.check_slot_id(slot_id)
    except Exception as exc:  # NotFound: a usage error
        fail(str(exc), 2)
    if password is None:
        password = typer.prompt("ingest password", hide_input=True)
    if url is None:
        # the address `serve` recorded (`serve --port 8090`), as slot list shows it — read from an
        # existing studio only: a test shot must never start a new empty embedded database
        known = cfg.dsn or (cfg.data_dir / "pg").exists()
        url = with_context(_base_url) if known else cfg.public_base_url()
    ssl_context = None
    if ca_file is not None:
        import ssl

        try:
            ssl_context = ssl.create_default_context(cafile=str(ca_file))
        except (ssl.SSLError, ValueError) as exc:
            fail(f"--ca-file {ca_file}: not a PEM certificate ({exc})", 2)
    report = run_async(_post_test_shot(f"{url.rstrip('/')}/ingest/{slot_id}", image, password, ssl_context=ssl_context,
                                       timeout=float(cfg.get("ingest.sync_response_bounds")[1]) + 10))
    if report["status"] == 200:
        target = out or Path(f"{image.stem}-{slot_id}.{report['ext']}")
        target.write_bytes(report.pop("body"))
        report["saved_to"] = str(target)
    else:
        report.pop("body", None)
    report.pop("ext", None)
    if as_json:
        print_json(report)
    elif report["status"] == 200:
        console.print(f"{slot_id}: 200 in {report['seconds']:.2f} s (job {report['job_id']}) → {report['saved_to']}")
    else:
        console.print(f"{slot_id}: {report['status']} {report.get('failure_reason')} — {report.get('details')}")
    if report["status"] != 200:
        raise typer.Exit(1)


async def _base_url(ctx) -> str:
    return ctx.cfg.public_base_url()


async def _post_test_shot(url: str, image: Path, password: str, *, timeout: float, ssl_context=None) -> dict:
    form = aiohttp.FormData()
    form.add_field("password", password)
    form.add_field("fileToUpload", image.read_bytes(), filename=image.name, content_type="application/octet-stream")
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout),
                                         connector=aiohttp.TCPConnector(ssl=ssl_context or True)) as session:
            async with session.post(url, data=form) as resp:
                body = await resp.read()
                report = {"status": resp.status, "job_id": resp.headers.get("X-Job-Id"),
                          "seconds": round(time.perf_counter() - started, 3), "body": body}
                if resp.status == 200:
                    report["ext"] = {"image/png": "png", "image/webp": "webp"}.get(resp.content_type, "jpg")
                else:
                    try:
                        answer = json.loads(body)
                        report.update(failure_reason=answer.get("failure_reason"), details=answer.get("details"))
                    except ValueError:
                        report.update(failure_reason="unexpected_answer", details=body[:200].decode("utf-8", "replace"))
                return report
    except (aiohttp.ClientError, OSError) as exc:
        fail(f"cannot reach the server at {url}: {exc.__class__.__name__}: {exc}", 1)


@app.command("reset-stats")
def reset_stats(slot_id: str = typer.Argument(..., metavar="SLOT")) -> None:
    """The slot's stats count from now on (POST /api/slots/{slot_id}/reset_stats)."""

    async def go(ctx):
        return await stats_mod.reset_stats(ctx, slot_id, actor=audit.os_actor(), source="cli")

    row = with_context(go)
    console.print(f"{slot_id}: stats count from {fmt_time(row['last_reset_at'])}")
