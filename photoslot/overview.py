"""The studio at a glance: every slot with its last result, today's requests and the alerts that
touch it — what the web admin's Slots page shows. "Today" is the studio's day (studio_time.py);
the counts are slot_report's (every request, refused ones included; test shots apart), the alert
states the sweeper's, the provider health this process's copy (provider_health.HealthBoard)."""
from __future__ import annotations

from photoslot import slot_report, slots, studio_time


async def active_alerts(db) -> dict[str, dict]:
    """The alerts firing now, by name (`provider_failing:gemini`, `quota:turbotext`, …)."""
    return {r["name"]: r for r in await db.fetchall("ops_alert_states") if r["active"]}


async def slot_cards(ctx, zone: studio_time.Zone) -> list[dict]:
    """One card per slot: the Slot view, its last live result (not expired, not purged), today's
    figures (from the studio's midnight, since its last reset) and badges for a provider down or
    failing and a nearly spent quota."""
    now = ctx.clock.now()
    alerts = await active_alerts(ctx.db)
    today = {r["slot_id"]: r for r in await slot_report.by_slot(ctx, start=studio_time.day_start(now, zone), end=now)}
    last = {r["slot_id"]: r for r in await ctx.db.fetchall("overview_last_results", now=now)}
    cards = []
    for slot in await slots.list_all(ctx.db):
        card = {"slot": slots.view(ctx.cfg, slot), "last_result": None, "today": None, "badges": []}
        if slots.is_configured(slot):
            result = last.get(slot["id"])
            card["last_result"] = {"job_id": str(result["id"]), "completed_at": result["finalized_at"]} if result else None
            provider = slot["provider_id"]
            if ctx.health.get(provider).is_down or f"provider_down:{provider}" in alerts:
                card["badges"].append("provider_down")
            elif f"provider_failing:{provider}" in alerts:
                card["badges"].append("provider_failing")
            if f"quota:{provider}" in alerts:
                card["badges"].append("quota_low")
        row = today.get(slot["id"])
        if row is not None and (slots.is_configured(slot) or row["requests"] or row["test_shots"]):
            card["today"] = row  # an unconfigured slot's refusals (404) are shown too: a booth is on it
        cards.append(card)
    return cards
