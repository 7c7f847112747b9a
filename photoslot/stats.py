"""Stats for admins and operations: outcomes, ingest time, timeout share, provider spend.

One implementation behind `GET /api/stats/{slot_id}`, `GET /api/stats/global` and `photoslot
stats`. Counts come from the hourly rollups of every ingest request, refused ones included
(photoslot/rollups.py, queries/stats.sql), kept `stats.rollup_retention_days` (400) — not from the
job rows, which the sweeper prunes after 30 days. Spend is Gemini token usage and Turbotext
attempts priced by the `pricing.*` config rates, because the operations team controls provider
costs. A slot's stats count from its last `reset_stats`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import re

from photoslot import audit, slots
from photoslot.db import DatabaseUnavailable
from photoslot.errors import ValidationError
from photoslot.providers import catalogue

COUNT_FIELDS = ("ingest_count", "success", "timeouts", "provider_errors", "cancelled", "internal_errors",
                "errors", "finalized", "gemini_tokens", "gemini_requests", "turbotext_attempts",
                # every request, refused ones included (the business's "answered 200" figure)
                "requests", "refused", "answered_200", "answered_504", "provider_unavailable",
                # admins' test shots, counted apart: in none of the figures above but the spend
                "test_shots", "test_shots_succeeded")
SLOT_GROUPS = ("hour", "day", "week")
GLOBAL_GROUPS = ("day", "week", "month")
GLOBAL_SORTS = ("period_start", "success", "errors", "ingest_count")
SLOT_MAX_DAYS = 31
GLOBAL_MAX_DAYS = 90

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """`30m`, `24h`, `7d`, `2w` → timedelta (the CLI's --since)."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValidationError({"since": f"expected a duration such as 30m, 24h, 7d, 2w; got {text!r}"})
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_time(value, field: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError({field: "must be an RFC 3339 time, e.g. 2024-05-01T00:00:00Z"}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    try:
        # in UTC: PostgreSQL refuses offsets beyond ±15:59 that Python parses (e.g. -23:59)
        return parsed.astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValidationError({field: "is out of range"}) from None


# Far enough out for any studio's history; beyond it, period arithmetic leaves the years Python and
# PostgreSQL share (a `to` in year 1 minus the default range does not exist).
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)


def _bounded(value, field: str) -> dt.datetime | None:
    parsed = parse_time(value, field)
    if parsed is not None and not EARLIEST <= parsed <= LATEST:
        raise ValidationError({field: f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"})
    return parsed


def window(now, from_, to, *, default: dt.timedelta, max_days: int) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a stats request: `to` defaults to now, `from` to `default` before it."""
    end = _bounded(to, "to") or now
    start = _bounded(from_, "from") or end - default
    if start >= end:
        raise ValidationError({"from": "must be before 'to'"})
    if end - start > dt.timedelta(days=max_days):
        raise ValidationError({"to": f"the range may span at most {max_days} days"})
    return start, end


def priced(row: dict, cfg) -> dict:
    """The counts of the stats API (docs/API.md) from one aggregate row, with timeout share and spend."""
    out = {k: int(row.get(k) or 0) for k in COUNT_FIELDS}
    out["in_progress"] = out["ingest_count"] - out["finalized"]
    for key in ("p50_ms", "p95_ms"):
        value = row.get(key)
        out[key] = int(round(value)) if value is not None else None
    out["timeout_share"] = round(out["timeouts"] / out["finalized"], 4) if out["finalized"] else 0.0
    for share, count in (("answered_200_share", "answered_200"), ("answered_504_share", "answered_504"),
                         ("provider_unavailable_share", "provider_unavailable")):
        out[share] = round(out[count] / out["requests"], 4) if out["requests"] else 0.0
    out["provider_calls"] = out["gemini_requests"] + out["turbotext_attempts"]
    gemini_rate = float(cfg.get("pricing.gemini_usd_per_1k_tokens"))
    turbotext_rate = float(cfg.get("pricing.turbotext_usd_per_request"))
    out["gemini_cost"] = round(out["gemini_tokens"] / 1000 * gemini_rate, 6)
    out["turbotext_cost"] = round(out["turbotext_attempts"] * turbotext_rate, 6)
    out["estimated_cost"] = round(out["gemini_cost"] + out["turbotext_cost"], 6)
    out["currency"] = cfg.get("pricing.currency")
    # the admin API contract's names for the same figures (docs/API.md, "The contract")
    out["total_runs"] = out["finalized"]
    avg = row.get("avg_ms")
    out["avg_response_ms"] = int(round(avg)) if avg is not None else None
    out["p95_response_ms"] = out["p95_ms"]
    out["error_rate_percent"] = round(100 * out["errors"] / out["finalized"], 2) if out["finalized"] else 0.0
    out["total_cost"] = out["estimated_cost"]
    return out


def check_provider(provider_id) -> None:
    if provider_id is not None and provider_id not in catalogue.CATALOGUE:
        raise ValidationError({"provider_id": f"must be one of: {', '.join(catalogue.CATALOGUE)}"})


async def _collect(ctx, *, slot_id, start, end, unit, reset_at=None, provider_id=None,
                   tz: str = "UTC") -> tuple[dict, list[dict]]:
    """(the whole window's figures, one entry per period): one query, the aggregate written once.
    Periods are days (hours, weeks …) of the zone `tz` (a PostgreSQL zone: studio_time.Zone.sql)."""
    check_provider(provider_id)
    with contextlib.suppress(DatabaseUnavailable):  # this process's refusals not written yet: now
        await ctx.refusals.flush(ctx.db)
    whole, *rows = await ctx.db.fetchall("stats", slot_id=slot_id, unit=unit, reset_at=reset_at,
                                         provider_id=provider_id, tz=tz, **{"from": start, "to": end})
    periods = [{"period_start": row["period_start"], "period_end": row["period_end"], **priced(row, ctx.cfg)}
               for row in rows]
    return priced(whole, ctx.cfg), periods


async def slot_stats(ctx, slot_id: str, *, from_=None, to=None, group_by: str | None = None,
                     provider_id: str | None = None, max_days: int = SLOT_MAX_DAYS, tz: str = "UTC") -> dict:
    """GET /api/stats/{slot_id}: counts since the slot's last reset, per period."""
    slot = await slots.get(ctx.db, slot_id)
    group_by = group_by or "hour"
    if group_by not in SLOT_GROUPS:
        raise ValidationError({"group_by": f"must be one of: {', '.join(SLOT_GROUPS)}"})
    start, end = window(ctx.clock.now(), from_, to, default=dt.timedelta(days=1), max_days=max_days)
    reset_at = slot["last_reset_at"]
    count_from = min(max(start, reset_at), end) if reset_at else start
    summary, periods = await _collect(ctx, slot_id=slot_id, start=start, end=end, unit=group_by,
                                      reset_at=reset_at, provider_id=provider_id, tz=tz)
    summary["title"] = slot["name"]
    summary["last_reset_at"] = reset_at
    summary["counted_from"] = count_from
    return {"slot_id": slot_id, "range": {"from": start, "to": end, "group_by": group_by},
            "summary": summary, "metrics": periods}


def check_global_query(*, group_by: str, sort_by: str, sort_order: str, page, page_size) -> None:
    """GET /api/stats/global's grouping, sort and paging, each checked (a per-field ValidationError)."""
    errors = {}
    if group_by not in GLOBAL_GROUPS:
        errors["group_by"] = f"must be one of: {', '.join(GLOBAL_GROUPS)}"
    if sort_by not in GLOBAL_SORTS:
        errors["sort_by"] = f"must be one of: {', '.join(GLOBAL_SORTS)}"
    if sort_order not in ("asc", "desc"):
        errors["sort_order"] = "must be asc or desc"
    if not isinstance(page, int) or page < 1:
        errors["page"] = "must be an integer ≥ 1"
    if not isinstance(page_size, int) or not 1 <= page_size <= 50:
        errors["page_size"] = "must be an integer from 1 to 50"
    if errors:
        raise ValidationError(errors)


async def global_stats(ctx, *, from_=None, to=None, group_by: str | None = None, page: int = 1,
                       page_size: int = 20, sort_by: str = "period_start", sort_order: str = "asc",
                       provider_id: str | None = None, slot_id: str | None = None,
                       max_days: int = GLOBAL_MAX_DAYS) -> dict:
    """GET /api/stats/global: every slot (or one provider's, or one slot's — all of its history in
    the window, whatever its last reset), per period, sortable and paged."""
    group_by = group_by or "day"
    check_global_query(group_by=group_by, sort_by=sort_by, sort_order=sort_order, page=page, page_size=page_size)
    if slot_id is not None:
        slots.check_slot_id(slot_id)
    start, end = window(ctx.clock.now(), from_, to, default=dt.timedelta(days=7), max_days=max_days)
    summary, periods = await _collect(ctx, slot_id=slot_id, start=start, end=end, unit=group_by,
                                      provider_id=provider_id)
    periods.sort(key=lambda p: (p[sort_by], p["period_start"]), reverse=sort_order == "desc")
    first = (page - 1) * page_size
    return {"range": {"from": start, "to": end, "group_by": group_by}, "summary": summary,
            "data": periods[first:first + page_size],
            "meta": {"page": page, "page_size": page_size, "total": len(periods),
                     "sort_by": sort_by, "sort_order": sort_order}}


def dated(answer: dict) -> dict:
    """GET /api/stats/global's periods as the admin API contract types them: dates (YYYY-MM-DD, UTC).
    Its periods are whole UTC days, weeks or months, so nothing is lost; `period_end` stays the
    first day after the period, as the date-time form's end is exclusive. The CLI keeps the times."""
    for period in answer["data"]:
        for key in ("period_start", "period_end"):
            period[key] = period[key].astimezone(dt.timezone.utc).date().isoformat()
    return answer


async def recent(ctx, *, slot_id: str | None, since: dt.timedelta, provider_id: str | None = None) -> dict:
    """`photoslot stats [--slot S] [--provider P] [--since DURATION]`: the same figures over the last
    `since`, as far back as the rollups are kept (the API's range limits are for its pages)."""
    now = ctx.clock.now()
    keep = int(float(ctx.cfg.get("stats.rollup_retention_days"))) + 1
    if slot_id is not None:
        group = "hour" if since <= dt.timedelta(days=2) else "day"
        return await slot_stats(ctx, slot_id, from_=now - since, to=now, group_by=group, provider_id=provider_id,
                                max_days=max(keep, SLOT_MAX_DAYS))
    group = "day" if since <= dt.timedelta(days=60) else "week" if since <= dt.timedelta(days=366) else "month"
    return await global_stats(ctx, from_=now - since, to=now, group_by=group, page_size=50, provider_id=provider_id,
                              max_days=max(keep, GLOBAL_MAX_DAYS))


async def reset_stats(ctx, slot_id: str, *, actor: str, source: str) -> dict:
    """POST /api/slots/{slot_id}/reset_stats: the slot's stats count from now on."""
    slots.check_slot_id(slot_id)
    row = await ctx.db.fetchone("slot_reset_stats", slot_id=slot_id, now=ctx.clock.now())
    await audit.record(ctx.db, ctx.clock, actor=actor, source=source, action="slot.reset_stats", target=slot_id,
                       details={"last_reset_at": row["last_reset_at"].isoformat()})
    return row


CHART_PERIODS = {"24h": (dt.timedelta(hours=24), "hour"), "7d": (dt.timedelta(days=7), "day"),
                 "30d": (dt.timedelta(days=30), "day")}


async def series(ctx, *, slot_id: str | None, period: str, tz: str = "UTC") -> dict:
    """GET /api/stats/series and the web admin's charts: one slot or all, over the last 24 h (per
    hour), 7 or 30 days (per day), counted from the slot's last reset — the same figures as above.
    `tz`: the zone whose hours and days the periods are (the pages: the studio's)."""
    if period not in CHART_PERIODS:
        raise ValidationError({"period": f"must be one of: {', '.join(CHART_PERIODS)}"})
    span, unit = CHART_PERIODS[period]
    now = ctx.clock.now()
    if slot_id is not None:
        return {**await slot_stats(ctx, slot_id, from_=now - span, to=now, group_by=unit, tz=tz), "period": period}
    summary, periods = await _collect(ctx, slot_id=None, start=now - span, end=now, unit=unit, tz=tz)
    return {"slot_id": None, "period": period, "range": {"from": now - span, "to": now, "group_by": unit},
            "summary": summary, "metrics": periods}
