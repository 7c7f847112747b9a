"""The studio at a glance: every slot with its last result, today's shots and the alerts that
touch it — what the web admin's Slots page shows (queries/overview.sql: two statements for all 15
slots, counted as stats.sql counts; the alert states are the sweeper's)."""
from __future__ import annotations

import datetime as dt

from photoslot import slots


async def active_alerts(db) -> dict[str, dict]:
    """The alerts firing now, by name (`provider_failing:gemini`, `quota:turbotext`, …)."""
    return {r["name"]: r for r in await db.fetchall("ops_alert_states") if r["active"]}


def start_of_day(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


async def slot_cards(ctx) -> list[dict]:
    """One card per slot: the Slot view, its last live result, today's counts (UTC day, since its
    last reset) and badges for a failing provider or a nearly spent quota."""
    now = ctx.clock.now()
    alerts = await active_alerts(ctx.db)
    today = {r["slot_id"]: r for r in await ctx.db.fetchall("overview_today", day=start_of_day(now), to=now)}
    last = {r["slot_id"]: r for r in await ctx.db.fetchall("overview_last_results", now=now)}
    cards = []
    for slot in await slots.list_all(ctx.db):
        card = {"slot": slots.view(ctx.cfg, slot), "last_result": None, "today": None, "badges": [],
                "provider_reason": None}
        if slots.is_configured(slot):
            result = last.get(slot["id"])
            card["last_result"] = {"job_id": str(result["id"]), "completed_at": result["finalized_at"]} if result else None
            card["today"] = {k: int(today[slot["id"]][k]) for k in ("ingest_count", "success", "timeouts", "errors")}
            provider = slot["provider_id"]
            if f"provider_failing:{provider}" in alerts or f"provider_down:{provider}" in alerts:
                card["badges"].append("provider_failing")
            health = ctx.health.get(provider)
            if health.is_down:  # why, in words: "this key's project has no quota for … (billing not enabled?)"
                card["provider_reason"] = health.reason or health.last_problem
            if f"quota:{provider}" in alerts or f"provider_quota_low:{provider}" in alerts:
                card["badges"].append("quota_low")
        cards.append(card)
    return cards
