"""photoslot stats [--slot S] [--provider P] [--since DURATION] [--json]"""
from __future__ import annotations

from typing import Optional

import typer

from photoslot import stats as stats_mod
from photoslot.cli.common import SafeTable, console, fmt_time, print_json, with_context


def _ms(value) -> str:
    return "—" if value is None else f"{value} ms"


def stats(
    slot: Optional[str] = typer.Option(None, "--slot", help="one slot (counts from its last reset_stats)"),
    provider: Optional[str] = typer.Option(None, "--provider", help="only shots of this provider (gemini, turbotext)"),
    since: str = typer.Option("24h", "--since", metavar="DURATION",
                              help="window: 30m, 24h, 7d, 2w, up to 400d; counted in whole hours"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Requests (refused ones too) and the share answered 200 / 504 / provider_unavailable, counts by outcome,
    p50/p95 ingest time, timeout share, provider calls and spend."""

    async def go(ctx):
        return await stats_mod.recent(ctx, slot_id=slot, since=stats_mod.parse_duration(since), provider_id=provider)

    result = with_context(go)
    if as_json:
        print_json(result)
        return
    s = result["summary"]
    title = f"photoslot stats — {slot or 'all slots'}{', ' + provider if provider else ''}, " \
            f"{fmt_time(result['range']['from'])} → " \
            f"{fmt_time(result['range']['to'])}"
    table = SafeTable(show_header=False, title=title)
    table.add_column("figure", style="bold")
    table.add_column("value")
    table.add_row("requests (refused ones too)", f"{s['requests']} ({s['refused']} refused before a job)")
    table.add_row("answered 200", f"{s['answered_200']} ({s['answered_200_share'] * 100:.1f} %)")
    table.add_row("answered 504 timeout", f"{s['answered_504']} ({s['answered_504_share'] * 100:.1f} %)")
    table.add_row("answered 503 provider_unavailable",
                  f"{s['provider_unavailable']} ({s['provider_unavailable_share'] * 100:.1f} %)")
    table.add_row("ingests", str(s["ingest_count"]) + (f" ({s['in_progress']} in progress)" if s["in_progress"] else ""))
    table.add_row("succeeded", str(s["success"]))
    table.add_row("timeouts (504)", str(s["timeouts"]))
    table.add_row("provider errors", str(s["provider_errors"]))
    table.add_row("cancelled", str(s["cancelled"]))
    table.add_row("all failures", str(s["errors"]))
    table.add_row("timeout share", f"{s['timeout_share'] * 100:.1f} %")
    table.add_row("ingest time p50 / p95", f"{_ms(s['p50_ms'])} / {_ms(s['p95_ms'])}")
    table.add_row("Gemini tokens", f"{s['gemini_tokens']} ({s['gemini_requests']} requests)")
    table.add_row("Turbotext attempts", str(s["turbotext_attempts"]))
    table.add_row("provider calls", str(s["provider_calls"]))
    table.add_row("admins' test shots (in no figure above but spend)",
                  f"{s['test_shots']} ({s['test_shots_succeeded']} succeeded)")
    table.add_row("estimated cost", f"{s['estimated_cost']:.4f} {s['currency']}")
    if slot and s.get("last_reset_at"):
        table.add_row("counted since reset", fmt_time(s["last_reset_at"]))
    console.print(table)
