"""Alerts (docs/OPERATIONS.md): evaluated on every sweeper pass, announced once when they start and once
when they clear.

An announcement is a WARNING/ERROR log line, the `photoslot_alert_active` gauge in /metrics (read
from the `alert_state` table, so every process shows the same), and — when `alerts.webhook_url`
is set — a JSON POST to it. The state lives in PostgreSQL and a transition is a conditional
UPDATE, so two processes evaluating at the same moment announce it once. Webhook delivery runs
in the background with a timeout: a slow or dead receiver is logged and never holds up the sweeper.

Alerts:
- `timeout_ratio`: share of jobs finished as `timeout` over `alerts.window_minutes` above
  `alerts.timeout_ratio` (with at least `alerts.min_jobs` finished jobs in the window);
- `queue_depth`: pending jobs at or above `ingest.max_pending_jobs` (ingest is answering 429);
- `media_disk`: the media root's filesystem fuller than `alerts.media_disk_used_percent`;
- `provider_failing:<provider>`: the last `alerts.provider_failures` jobs of a provider in the
  window all failed on the provider's side (provider_error, quota_exhausted, invalid_result);
- `provider_down:<provider>`: the provider is down (photoslot/health_rule.py); announced the moment
  a process makes the transition (`announce_if_changed`), checked again on every pass;
- `quota:<provider>`: today's requests (the provider's day, `providers.<p>.quota_time_zone`, counted
  by photoslot.quotas across processes) at or above `alerts.quota_used_percent` of
  `providers.<provider>.requests_per_day`;
- `provider_quota_low:<provider>`: what the provider itself last said is left on the account
  (Turbotext's `limits.foto_limit`) at or below `alerts.provider_quota_remaining`; announced the
  moment a worker records it (`provider_health.note_quota`), checked again on every pass.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import shutil
import socket
from dataclasses import dataclass

import aiohttp

from photoslot import health_rule, quotas
from photoslot.clock import rfc3339
from photoslot.logs import event

log = logging.getLogger("photoslot.alerts")

PROVIDER_FAILURES = ("provider_error", "quota_exhausted", "invalid_result")

_deliveries: set[asyncio.Task] = set()


@dataclass
class Check:
    name: str
    active: bool
    value: float
    threshold: float
    severity: str  # "warning" | "error"
    message: str


def window_start(cfg, now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(minutes=float(cfg.get("alerts.window_minutes")))


def disk_usage(path) -> tuple[int, int, int]:
    """(total, used, free) bytes of the filesystem holding `path`."""
    u = shutil.disk_usage(path)
    return u.total, u.total - u.free, u.free


async def checks(ctx, now: dt.datetime) -> list[Check]:
    cfg = ctx.cfg
    db = ctx.db
    since = window_start(cfg, now)
    out: list[Check] = []

    # timeout share
    rows = await db.fetchall("ops_window_outcomes", since=since, now=now)
    total = sum(r["n"] for r in rows)
    timeouts = sum(r["n"] for r in rows if r["reason"] == "timeout")
    ratio = timeouts / total if total else 0.0
    limit = float(cfg.get("alerts.timeout_ratio"))
    enough = total >= int(cfg.get("alerts.min_jobs"))
    out.append(Check("timeout_ratio", enough and ratio > limit, round(ratio, 4), limit, "error",
                     f"{timeouts} of {total} jobs timed out in the last {cfg.get('alerts.window_minutes')} min "
                     f"({ratio:.1%}, limit {limit:.1%})"))

    # queue depth
    depth = await db.fetchall("ops_queue_depth", now=now)
    pending = sum(r["pending"] for r in depth)
    qlimit = int(cfg.get("ingest.max_pending_jobs"))
    out.append(Check("queue_depth", pending >= qlimit, pending, qlimit, "error",
                     f"{pending} jobs waiting (limit {qlimit}); new ingests are answered 429"))

    # media disk
    total_b, used_b, _free = await asyncio.to_thread(disk_usage, ctx.media.root)
    used_pct = 100.0 * used_b / total_b if total_b else 0.0
    dlimit = float(cfg.get("alerts.media_disk_used_percent"))
    out.append(Check("media_disk", used_pct > dlimit, round(used_pct, 2), dlimit, "error",
                     f"media filesystem {used_pct:.1f}% used (limit {dlimit:.0f}%) at {ctx.media.root}"))

    # provider failing repeatedly
    n = max(1, int(cfg.get("alerts.provider_failures")))
    recent = await db.fetchall("ops_provider_recent_outcomes", since=since, n=n)
    by_provider: dict[str, list[str]] = {}
    for r in recent:
        by_provider.setdefault(r["provider_id"], []).append(r["reason"])
    for provider in sorted(set(by_provider) | set((cfg.get("providers") or {}).keys())):
        reasons = by_provider.get(provider, [])
        failing = len(reasons) >= n and all(x in PROVIDER_FAILURES for x in reasons)
        streak = 0
        for x in reasons:
            if x not in PROVIDER_FAILURES:
                break
            streak += 1
        last = reasons[0] if reasons else "none"
        out.append(Check(f"provider_failing:{provider}", failing, streak, n, "error",
                         f"{provider}: the last {streak} jobs failed on the provider's side (latest: {last})"))

    # provider down (the health rule's state, shared through the provider_health table)
    health = {r["provider_id"]: r for r in await db.fetchall("provider_health_all")}
    for provider in sorted(set(health) | set((cfg.get("providers") or {}).keys())):
        row = health.get(provider)
        h = health_rule.Health(**{k: row.get("down_reason" if k == "reason" else k) for k in HEALTH_FIELDS}) \
            if row else health_rule.Health(provider_id=provider)
        out.append(provider_down_check(h, now))

    # what the provider says is left on the account (Turbotext's tariff), as last reported
    for row in health.values():
        if row.get("quota_remaining") is not None:
            out.append(quota_low_check(cfg, row["provider_id"], int(row["quota_remaining"])))

    # quota nearly spent (the daily window; a spent minute window heals by itself within a minute)
    qpct = float(cfg.get("alerts.quota_used_percent"))
    for provider, windows in sorted((await quotas.usage(db, cfg, now)).items()):
        day = windows["day"]
        if not day["limit"]:
            continue
        pct = 100.0 * day["used"] / day["limit"]
        out.append(Check(f"quota:{provider}", pct >= qpct, round(pct, 2), qpct, "warning",
                         f"{provider}: {day['used']} of {day['limit']} daily requests used "
                         f"({pct:.0f}%, alert at {qpct:.0f}%)"))
    return out


HEALTH_FIELDS = frozenset(f.name for f in dataclasses.fields(health_rule.Health))


def quota_low_check(cfg, provider: str, remaining: int) -> Check:
    floor = int(cfg.get("alerts.provider_quota_remaining"))
    return Check(f"provider_quota_low:{provider}", remaining <= floor, remaining, floor, "warning",
                 f"{provider} says {remaining} photo(s) are left on the account (alert at {floor} or fewer); "
                 "top it up before the event runs dry")


def provider_down_check(h: health_rule.Health, now: dt.datetime) -> Check:
    return Check(f"provider_down:{h.provider_id}", h.is_down, h.failures if h.is_down else 0, 1, "error",
                 health_rule.describe(h, now))


async def announce_if_changed(ctx, c: Check, *, now: dt.datetime) -> dict | None:
    """One alert's state, evaluated now rather than at the next sweeper pass; announced (log +
    webhook) only by the process whose conditional UPDATE made the transition."""
    row = await ctx.db.fetchone("ops_alert_transition", name=c.name, active=c.active, severity=c.severity,
                                value=float(c.value), threshold=float(c.threshold), message=c.message, now=now)
    if row is None or (row["created"] and not row["active"]):
        return None
    return _announce(ctx, c, now)


async def evaluate(ctx, *, now: dt.datetime) -> list[dict]:
    """Evaluate every alert; announce (log + webhook) each one this process moved to a new state."""
    changed = []
    for c in await checks(ctx, now):
        row = await ctx.db.fetchone("ops_alert_transition", name=c.name, active=c.active, severity=c.severity,
                                    value=float(c.value), threshold=float(c.threshold), message=c.message, now=now)
        if row is None:
            await ctx.db.execute("ops_alert_touch", name=c.name, value=float(c.value), threshold=float(c.threshold),
                                 now=now)
            continue
        if row["created"] and not row["active"]:
            continue  # first sight of a quiet alert: nothing started, nothing to announce
        changed.append(_announce(ctx, c, now))
    return changed


def _announce(ctx, c: Check, now: dt.datetime) -> dict:
    state = "firing" if c.active else "resolved"
    if c.active:
        level = logging.ERROR if c.severity == "error" else logging.WARNING
    else:
        level = logging.WARNING
    event(log, "alert", level, alert=c.name, state=state, value=c.value, threshold=c.threshold, message=c.message)
    payload = {
        "alert": c.name, "state": state, "severity": c.severity, "value": c.value, "threshold": c.threshold,
        "message": c.message, "at": rfc3339(now), "host": socket.gethostname(),
        "public_base_url": ctx.cfg.public_base_url(),
    }
    url = ctx.cfg.get("alerts.webhook_url")
    if url:
        task = asyncio.create_task(_deliver(url, payload, float(ctx.cfg.get("alerts.webhook_timeout_seconds"))),
                                   name=f"alert-webhook-{c.name}")
        _deliveries.add(task)
        task.add_done_callback(_deliveries.discard)
    return payload


async def _deliver(url: str, payload: dict, timeout: float) -> None:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.post(url, json=payload) as resp:
                if resp.status >= 300:
                    event(log, "alert_webhook_failed", logging.WARNING, alert=payload["alert"], state=payload["state"],
                          status=resp.status)
                    return
        event(log, "alert_webhook_delivered", alert=payload["alert"], state=payload["state"])
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a dead receiver is reported, never raised into the sweeper
        event(log, "alert_webhook_failed", logging.WARNING, alert=payload["alert"], state=payload["state"],
              error=exc.__class__.__name__)


async def drain(timeout: float = 10.0) -> None:
    """Wait for webhook deliveries still in flight (a one-shot `photoslot sweep` before it exits)."""
    if _deliveries:
        await asyncio.wait(set(_deliveries), timeout=timeout)
