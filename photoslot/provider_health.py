"""Provider health shared by every process: the rule of photoslot/health_rule.py, kept in PostgreSQL.

* Every process holds a copy of all providers' health (`HealthBoard`), loaded at start, refreshed
  when a change is announced (NOTIFY photoslot_provider_health) and by a cheap poll every few
  seconds as the fallback. The ingest decides from this copy — no SQL statement per shot — and a
  worker decides from it whether to claim a provider's jobs and whether a retry may go out.
* A change is made by whoever saw the call fail or succeed (`report`), under the provider row's
  lock: two workers failing at once count two failures, and the up → down transition happens once.
  The process that makes it ends every open job of the provider (`provider_unavailable`, their
  booths answered at once), announces it and raises the `provider_down:<provider>` alert.
* A success changes nothing while the provider is up with no failure counted, so the happy path
  costs no statement here.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging

from photoslot import alerts, health_rule
from photoslot.db import DatabaseUnavailable
from photoslot.health_rule import Health, Rule
from photoslot.logs import event

log = logging.getLogger("photoslot.providers.health")

CHANNEL = "photoslot_provider_health"
POLL_SECONDS = 2.0  # the fallback refresh when a notification is missed (or notifications are off)
FIELDS = [f.name for f in dataclasses.fields(Health)]
COLUMNS = {"reason": "down_reason"}  # Health field -> provider_health column, where they differ


def _from_row(row: dict) -> Health:
    return Health(**{k: row.get(COLUMNS.get(k, k)) for k in FIELDS})


@dataclasses.dataclass(frozen=True)
class QuotaLeft:
    """What the provider last said is left on the account (Turbotext's limits.foto_limit)."""
    remaining: int | None = None
    at: dt.datetime | None = None


class HealthBoard:
    """This process's copy of every provider's health."""

    def __init__(self) -> None:
        self._health: dict[str, Health] = {}
        self._quota: dict[str, QuotaLeft] = {}
        self._task: asyncio.Task | None = None
        self._refreshing: asyncio.Task | None = None

    def get(self, provider_id: str) -> Health:
        return self._health.get(provider_id) or Health(provider_id=provider_id)

    def refusal(self, provider_id: str, now: dt.datetime) -> tuple[int, str] | None:
        """(Retry-After seconds, details) when a new shot for this provider must be refused now."""
        h = self.get(provider_id)
        retry = health_rule.refusal(h, now)
        return None if retry is None else (retry, health_rule.describe(h, now))

    def may_call(self, provider_id: str, now: dt.datetime, job_id=None) -> bool:
        return health_rule.may_call(self.get(provider_id), now, None if job_id is None else str(job_id))

    def claimable(self, provider_id: str, now: dt.datetime) -> str | None:
        """Whether a worker may claim this provider's jobs: "yes", "probe" (claim one and try to take
        the probe), or None (down and cooling down, or its probe is running)."""
        h = self.get(provider_id)
        if h.state == health_rule.UP:
            return "yes"
        return "probe" if health_rule.probe_due(h, now) else None

    def put(self, h: Health) -> None:
        self._health[h.provider_id] = h

    def quota(self, provider_id: str) -> QuotaLeft:
        return self._quota.get(provider_id) or QuotaLeft()

    async def refresh(self, db) -> None:
        for row in await db.fetchall("provider_health_all"):
            self.put(_from_row(row))
            self._quota[row["provider_id"]] = QuotaLeft(row.get("quota_remaining"), row.get("quota_remaining_at"))

    def changed(self, db) -> None:
        """A NOTIFY said some provider's health changed: re-read (one query, coalesced)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._quiet_refresh(db))

    async def _quiet_refresh(self, db) -> None:
        with contextlib.suppress(DatabaseUnavailable):
            await self.refresh(db)

    def start(self, db, interval: float = POLL_SECONDS) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._poll(db, interval), name="photoslot-provider-health")

    async def stop(self) -> None:
        for task in (self._task, self._refreshing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._task = None

    async def _poll(self, db, interval: float) -> None:
        while True:
            await self._quiet_refresh(db)
            await asyncio.sleep(interval)


# ---------------------------------------------------------------- changes

async def report(ctx, provider_id: str, *, ok: bool, problem: str | None = None, job_id=None,
                 down_reason: str | None = None) -> Health:
    """One call's outcome for the provider's health (failed: a connection error, call timeout, 5xx, 429).
    `down_reason`: the answer says no call can work until someone acts — down at once, with it; the
    job that got that answer is left to fail with its own words, the others end now."""
    board: HealthBoard = ctx.health
    now = ctx.clock.now()
    job = str(job_id) if job_id is not None else None
    before = board.get(provider_id)
    if ok and before.state == health_rule.UP and before.failures == 0:
        return before  # the happy path: nothing to change, nothing to write
    rule = Rule.from_config(ctx.cfg, provider_id)
    ended: list[dict] = []
    async with ctx.db.transaction() as tx:
        current = await _locked(tx, provider_id, now)
        after = (health_rule.succeeded(current, now) if ok
                 else health_rule.failed(current, rule, now, problem or "unknown problem", job_id=job,
                                         down_reason=down_reason))
        if after == current:
            board.put(current)
            return current
        await _save(tx, after, now)
        went_down = current.state == health_rule.UP and after.state == health_rule.DOWN
        came_up = current.state == health_rule.DOWN and after.state == health_rule.UP
        probe_failed = after.is_down and current.is_down and after.retry_at != current.retry_at
        if went_down or probe_failed:  # the shots admitted for the probe waited on it: they end too
            ended = await tx.fetchall("jobs_end_provider_down", provider_id=provider_id, now=now,
                                      detail=health_rule.describe(after, now)[:2000],
                                      keep_job=job if down_reason else None)
        # Every change, failures counted included: a process whose copy still says "no failures"
        # would skip writing the success that must reset the count (the happy path's shortcut).
        await tx.execute("provider_health_announce", provider_id=provider_id)
    board.put(after)
    for row in ended:
        ctx.media.remove(row["old_upload_path"])
    if went_down:
        event(log, "provider_down", logging.ERROR, provider=provider_id, failures=after.failures,
              last=after.last_problem, reason=after.reason, retry_in_s=rule.cooldown_seconds, jobs_ended=len(ended))
        await _alert(ctx, after, now)
    elif came_up:
        event(log, "provider_up", logging.WARNING, provider=provider_id,
              down_s=round((now - current.down_since).total_seconds(), 1) if current.down_since else None)
        await _alert(ctx, after, now)
    elif probe_failed:
        event(log, "provider_probe_failed", logging.WARNING, provider=provider_id, last=after.last_problem,
              retry_in_s=rule.cooldown_seconds, jobs_ended=len(ended))
    return after


async def take_probe(ctx, provider_id: str, job_id) -> bool:
    """The probe's lease for this job, if one is due; False when another process took it or it is too early."""
    now = ctx.clock.now()
    rule = Rule.from_config(ctx.cfg, provider_id)
    async with ctx.db.transaction() as tx:
        current = await _locked(tx, provider_id, now)
        after = health_rule.take_probe(current, rule, now, str(job_id))
        if after is not None:
            await _save(tx, after, now)
            await tx.execute("provider_health_announce", provider_id=provider_id)
    ctx.health.put(after or current)
    if after is not None:
        event(log, "provider_probe", provider=provider_id, job=str(job_id))
    return after is not None


async def hand_back_probe(ctx, provider_id: str, job_id) -> bool:
    """The probe this job held, handed back without an outcome (queries/provider_health.sql
    `provider_probe_hand_back`); True when it held it."""
    row = await ctx.db.fetchone("provider_probe_hand_back", provider_id=provider_id, job_id=str(job_id),
                                now=ctx.clock.now())
    handed_back = bool(row and row["handed_back"])
    if handed_back:
        ctx.health.put(dataclasses.replace(ctx.health.get(provider_id), probe_job=None, probe_until=None))
        event(log, "provider_probe_handed_back", provider=provider_id, job=str(job_id))
    return handed_back


async def _save(tx, h: Health, now: dt.datetime) -> None:
    await tx.execute("provider_health_save", now=now, **dataclasses.asdict(h))


async def note_quota(ctx, provider_id: str, remaining: int) -> None:
    """Record what the provider said is left (one statement, only when it changed from this process's
    copy), and raise or clear the provider_quota_low alert at once when it crosses the threshold."""
    board: HealthBoard = ctx.health
    if board.quota(provider_id).remaining == remaining:
        return
    now = ctx.clock.now()
    await ctx.db.execute("provider_quota_note", provider_id=provider_id, remaining=remaining, now=now)
    board._quota[provider_id] = QuotaLeft(remaining, now)
    with contextlib.suppress(DatabaseUnavailable):
        await alerts.announce_if_changed(ctx, alerts.quota_low_check(ctx.cfg, provider_id, remaining), now=now)


async def _locked(tx, provider_id: str, now: dt.datetime) -> Health:
    await tx.execute("provider_health_ensure", provider_id=provider_id, now=now)
    return _from_row(await tx.fetchone("provider_health_lock", provider_id=provider_id))


async def _alert(ctx, h: Health, now: dt.datetime) -> None:
    """Announce the transition now (the sweeper would see it only at its next pass); the alert's
    state row makes sure it is announced once, whoever evaluates it next."""
    with contextlib.suppress(DatabaseUnavailable):
        await alerts.announce_if_changed(ctx, alerts.provider_down_check(h, now), now=now)


# ---------------------------------------------------------------- reading

def view(h: Health, now: dt.datetime, quota: QuotaLeft | None = None) -> dict:
    """One provider's health for `photoslot providers status`, GET /api/providers/health and /readyz.
    `reason`: why it is down in words (null while up); `quota_remaining`: what the provider last said
    is left on the account (null when it never said)."""
    quota = quota or QuotaLeft()
    return {"provider": h.provider_id, "state": h.state, "up": not h.is_down,
            "reason": (h.reason or f"{h.failures} failed calls in a row (last: {h.last_problem})") if h.is_down else None,
            "down_reason": h.reason if h.is_down else None,  # only an answer that named why (no quota, region …)
            "quota_remaining": quota.remaining, "quota_remaining_at": quota.at,
            "consecutive_failures": h.failures,
            "last_problem": h.last_problem, "last_failure_at": h.last_failure_at, "down_since": h.down_since,
            "retry_at": h.retry_at, "probe_running": bool(h.probe_job and h.probe_until and now < h.probe_until),
            "retry_after_s": health_rule.refusal(h, now), "changed_at": h.changed_at,
            "summary": health_rule.describe(h, now)}


async def board_view(ctx, providers) -> list[dict]:
    """Every provider's health read from the database now (the CLI has no running copy)."""
    rows = {r["provider_id"]: r for r in await ctx.db.fetchall("provider_health_all")}
    now = ctx.clock.now()
    out = []
    for p in providers:
        row = rows.get(p)
        h = _from_row(row) if row else Health(provider_id=p)
        quota = QuotaLeft(row.get("quota_remaining"), row.get("quota_remaining_at")) if row else None
        out.append(view(h, now, quota))
    return out
