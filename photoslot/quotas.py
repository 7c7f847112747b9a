"""Provider request quotas (requests_per_minute / requests_per_day), counted in PostgreSQL.

Every provider request is counted, retries included, by every process against one shared row per
(provider, window), so the limit holds across `serve` and any number of `work` processes. Windows
are fixed: the minute, and the day as the provider counts it — midnight to midnight in
`providers.<p>.quota_time_zone` (Google's daily quota resets at midnight Pacific time, so Gemini's
default is America/Los_Angeles; Turbotext documents no day, so UTC) — both read from the injected
clock and stored as the UTC instant they start.

Two uses:
- ingest asks `exhausted_among()` (the counts come with its admission query) before it accepts a photo: a spent quota answers 503
  `quota_exhausted` at once with Retry-After, and no doomed job is queued;
- the worker calls `take_request()` (take() and the job's request count in one round trip) right
  before each request; a quota spent meanwhile (jobs already
  queued) ends the job as failed/`quota_exhausted`, which the jobs list shows.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
import zoneinfo
from dataclasses import dataclass

from photoslot.providers.base import ProviderFailure
from photoslot.providers.catalogue import CATALOGUE

WINDOWS = ("minute", "day")


@dataclass
class Exhausted:
    provider_id: str
    window: str          # "minute" | "day"
    used: int
    limit: int
    retry_after: int     # seconds until the window resets

    @property
    def detail(self) -> str:
        per = "per minute" if self.window == "minute" else "per day"
        return (f"{self.provider_id} quota of {self.limit} requests {per} is spent; "
                f"retry in {self.retry_after} s")


def limits(cfg, provider_id: str) -> dict[str, int | None]:
    pcfg = cfg.provider(provider_id)
    out = {}
    for window in WINDOWS:
        value = pcfg.get(f"requests_per_{window}")
        out[window] = int(value) if value is not None else None
    return out


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(name)


def zone(cfg, provider_id: str) -> dt.tzinfo:
    """The time zone whose midnight starts the provider's quota day."""
    return _zone(str(cfg.get(f"providers.{provider_id}.quota_time_zone") or "UTC"))


def window_starts(now: dt.datetime, tz: dt.tzinfo = dt.timezone.utc) -> dict[str, dt.datetime]:
    """The minute and the day `now` falls in, the day counted in `tz`; both as UTC instants."""
    utc = now.astimezone(dt.timezone.utc)
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return {"minute": utc.replace(second=0, microsecond=0),
            "day": _local_instant(midnight, tz).astimezone(dt.timezone.utc)}


def _local_instant(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant a wall-clock time in `tz` names (the earlier one when a DST change repeats it)."""
    return wall.replace(tzinfo=tz, fold=0)


def day_end(now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The next midnight in `tz` after `now` (a DST day is 23 or 25 hours long)."""
    local = now.astimezone(tz)
    tomorrow = (local.replace(tzinfo=None) + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return _local_instant(tomorrow, tz).astimezone(dt.timezone.utc)


def provider_window_starts(cfg, provider_id: str, now: dt.datetime) -> dict[str, dt.datetime]:
    return window_starts(now, zone(cfg, provider_id))


def day_starts(cfg, now: dt.datetime) -> dict[str, str]:
    """Each provider's current day start (ISO), for the ingest's admission query, which reads the
    quota of whichever provider the slot uses."""
    return {p: provider_window_starts(cfg, p, now)["day"].isoformat() for p in CATALOGUE}


def _retry_after(window: str, now: dt.datetime, tz: dt.tzinfo = dt.timezone.utc) -> int:
    if window == "minute":
        end = window_starts(now)["minute"] + dt.timedelta(minutes=1)
    else:
        end = day_end(now, tz)
    return max(1, math.ceil((end - now).total_seconds()))


async def counts(db, provider_id: str, now: dt.datetime, cfg=None) -> dict[str, int]:
    starts = window_starts(now, zone(cfg, provider_id) if cfg is not None else dt.timezone.utc)
    rows = await db.fetchall("quota_counts", provider_id=provider_id, minute=starts["minute"], day=starts["day"])
    found = {r["window_kind"]: r["requests"] for r in rows}
    return {w: int(found.get(w, 0)) for w in WINDOWS}


async def exhausted(db, cfg, provider_id: str, now: dt.datetime) -> Exhausted | None:
    """The first spent window of this provider, or None. Read-only; no round trip without limits."""
    if all(v is None for v in limits(cfg, provider_id).values()):
        return None
    return exhausted_among(cfg, provider_id, await counts(db, provider_id, now, cfg), now)


def exhausted_among(cfg, provider_id: str, used: dict, now: dt.datetime) -> Exhausted | None:
    """The first spent window given the requests counted so far ({window: requests}, as the ingest's
    admission query reads them in the same round trip as the slot)."""
    lim = limits(cfg, provider_id)
    for window in ("day", "minute"):  # the day's reset is the one that matters when both are spent
        n = int(used.get(window) or 0)
        if lim[window] is not None and n >= lim[window]:
            return Exhausted(provider_id, window, n, lim[window], _retry_after(window, now, zone(cfg, provider_id)))
    return None


async def take(db, cfg, provider_id: str, now: dt.datetime) -> None:
    """Count one request in both windows, or raise ProviderFailure(quota_exhausted) counting none."""
    lim = limits(cfg, provider_id)
    tz = zone(cfg, provider_id)
    starts = window_starts(now, tz)
    async with db.transaction() as tx:
        for window in WINDOWS:
            row = await tx.fetchone("quota_take", provider_id=provider_id, kind=window, start=starts[window],
                                    limit=lim[window])
            if row is None:
                spent = Exhausted(provider_id, window, lim[window], lim[window], _retry_after(window, now, tz))
                # Leaving the block with an exception rolls the other window's count back.
                raise ProviderFailure("quota_exhausted", spent.detail, 503)


async def take_request(db, cfg, provider_id: str, now: dt.datetime, job_id) -> None:
    """take() and the job's provider_requests + 1 in one round trip; raises like take(), counting
    nothing, when a window is spent."""
    lim = limits(cfg, provider_id)
    tz = zone(cfg, provider_id)
    starts = window_starts(now, tz)
    row = await db.fetchone("quota_take_request", provider_id=provider_id, job_id=job_id, now=now,
                            minute=starts["minute"], minute_limit=lim["minute"], day=starts["day"],
                            day_limit=lim["day"])
    window = row["spent"] if row else None
    if window is not None:
        spent = Exhausted(provider_id, window, lim[window], lim[window], _retry_after(window, now, tz))
        raise ProviderFailure("quota_exhausted", spent.detail, 503)


async def usage(db, cfg, now: dt.datetime) -> dict[str, dict]:
    """Per provider and window: requests used and the limit (for `stats`, metrics, alerts); each
    provider's day as it counts it."""
    minute = window_starts(now)["minute"]
    rows = await db.fetchall("quota_counts_all", minute=minute, days=list(day_starts(cfg, now).values()))
    out = {}
    for pid in CATALOGUE:
        day = provider_window_starts(cfg, pid, now)["day"]
        found = {r["window_kind"]: int(r["requests"]) for r in rows if r["provider_id"] == pid
                 and (r["window_kind"] == "minute" or r["window_start"] == day)}
        out[pid] = {w: {"used": found.get(w, 0), "limit": limits(cfg, pid)[w]} for w in WINDOWS}
    return out


async def prune(db, now: dt.datetime) -> int:
    """Drop windows older than two days (the day window needs yesterday's row at most)."""
    return await db.execute("quota_prune", cutoff=now - dt.timedelta(days=2))
