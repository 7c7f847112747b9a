"""Each provider as the web admin shows it: up or down (since when, why, the next try), its API key
configured or not, today's requests against its quota, the last error, the slots that use it and
what their booths get while it is down — one function for the Providers page, the banner every page
shows and the slot page's warnings (provider_health.py holds the state, quotas.py the counts)."""
from __future__ import annotations

import datetime as dt

from photoslot import health_rule, provider_health, quotas, slots
from photoslot import settings as live_settings
from photoslot.providers.catalogue import CATALOGUE


def _slots_of(all_slots: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {p: [] for p in CATALOGUE}
    for s in all_slots:
        if slots.is_configured(s) and s["enabled"] and s["provider_id"] in out:
            out[s["provider_id"]].append(s["id"])
    return out


def _meanwhile(h: health_rule.Health, now: dt.datetime) -> str | None:
    """What a booth of this provider's slots gets while it is down, in the ingest's own terms."""
    if not h.is_down:
        return None
    retry = health_rule.refusal(h, now)
    return f"503 provider_unavailable, Retry-After {retry} s" if retry else "503 provider_unavailable after one probe call"


async def keys_configured(db, cfg) -> dict[str, bool]:
    view = live_settings.public_view(await live_settings.load(db, cfg), cfg)
    return {p: bool(view["provider_keys"].get(p, {}).get("is_configured")) for p in CATALOGUE}


async def overview(ctx) -> list[dict]:
    """The Providers page: every provider's state, read from the database now."""
    now = ctx.clock.now()
    health = {v["provider"]: v for v in await provider_health.board_view(ctx, list(CATALOGUE))}
    keys = await keys_configured(ctx.db, ctx.cfg)
    usage = await quotas.usage(ctx.db, ctx.cfg, now)
    using = _slots_of(await slots.list_all(ctx.db))
    out = []
    for pid, provider in CATALOGUE.items():
        h = health[pid]
        day = usage[pid]["day"]
        minute = usage[pid]["minute"]
        out.append({
            "id": pid, "name": provider.name, "up": h["up"], "state": h["state"],
            "down_since": h["down_since"], "changed_at": h["changed_at"], "why": h["last_problem"] if not h["up"] else None,
            "next_probe": h["retry_at"] if not h["up"] else None, "probe_running": h["probe_running"],
            "failures": h["consecutive_failures"], "last_error": h["last_problem"], "last_error_at": h["last_failure_at"],
            "key_configured": keys[pid], "slots": using[pid],
            "requests_today": day["used"], "quota_day": day["limit"],
            "quota_left": None if day["limit"] is None else max(0, day["limit"] - day["used"]),
            "requests_this_minute": minute["used"], "quota_minute": minute["limit"],
            "meanwhile": _meanwhile(ctx.health.get(pid), now) if not h["up"] else None,
        })
    return out


async def down_now(ctx) -> list[dict]:
    """The providers down right now, from this process's copy (no statement): the banner of every
    page. Each with the slots whose booths are refused meanwhile and what they get."""
    now = ctx.clock.now()
    down = [ctx.health.get(p) for p in CATALOGUE if ctx.health.get(p).is_down]
    if not down:
        return []
    using = _slots_of(await slots.list_all(ctx.db))
    return [{"id": h.provider_id, "name": CATALOGUE[h.provider_id].name, "since": h.down_since,
             "why": h.last_problem, "next_probe": h.retry_at, "slots": using[h.provider_id],
             "meanwhile": _meanwhile(h, now)} for h in down]


async def key_missing(db, cfg, provider_id: str | None) -> bool:
    """A slot of this provider cannot work: no API key in the settings nor the config."""
    if provider_id not in CATALOGUE:
        return False
    return not (await keys_configured(db, cfg))[provider_id]
