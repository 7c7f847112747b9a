"""The studio at a glance: every slot with its last result, today's shots and the alerts that
touch it — what the web admin's Slots page shows, read through the same service functions the
API and the CLI use (slots, stats, recent results, the alert states the sweeper keeps)."""
from __future__ import annotations

import datetime as dt

from photoslot import slots, stats


async def active_alerts(db) -> dict[str, dict]:
    """The alerts firing now, by name (`provider_failing:gemini`, `quota:turbotext`, …)."""
    return {r["name"]: r for r in await db.fetchall("ops_alert_states") if r["active"]}


def start_of_day(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


async def slot_cards(ctx) -> list[dict]:
    """One card per slot: the Slot view, its last live result, today's counts (UTC day, since its
    last reset) and badges for a failing provider or a nearly spent quota."""
    now = ctx.clock.now()
    day = start_of_day(now)
    alerts = await active_alerts(ctx.db)
    cards = []
    for slot in await slots.list_all(ctx.db):
        card = {"slot": slots.view(ctx.cfg, slot), "last_result": None, "today": None, "badges": []}
        if slots.is_configured(slot):
            recent = await slots.recent_results(ctx.db, ctx.cfg, slot["id"], 1, now=now)
            card["last_result"] = recent[0] if recent else None
            figures = await stats.slot_stats(ctx, slot["id"], from_=day, to=now + dt.timedelta(seconds=1),
                                             group_by="day")
            card["today"] = figures["summary"]
            provider = slot["provider_id"]
            if f"provider_failing:{provider}" in alerts:
                card["badges"].append("provider_failing")
            if f"quota:{provider}" in alerts:
                card["badges"].append("quota_low")
        cards.append(card)
    return cards
