"""Prometheus metrics for GET /metrics (every name and its meaning: docs/OPERATIONS.md).

Two kinds of values:
- process-local instruments (ingest latency histogram, answers by status, provider call latency,
  errors and retries) recorded by the ingest handler and the worker pool of *this* process;
- cluster-wide values read from PostgreSQL (and the shared media root) at scrape time by a custom
  collector: jobs by state, queue depth, outcomes and provider effort over the alert window,
  quota used/left, media bytes, free disk, alert states. `work` processes on other hosts have no
  HTTP server, but their jobs are rows, so they are counted here too.

One `Metrics` per AppContext (its own registry), so several in one process (tests) never clash.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from photoslot import SLOT_IDS, alerts, quotas
from photoslot.alerts import PROVIDER_FAILURES, disk_usage
from photoslot.db import DatabaseUnavailable
from photoslot.providers import catalogue

log = logging.getLogger("photoslot.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Ingest answers: fast errors (ms) up to the 45–60 s response window.
INGEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 50, 55, 60, 75)
PROVIDER_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60)
SCRAPE_DB_TIMEOUT = 5.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.ingest_seconds = Histogram(
            "photoslot_ingest_duration_seconds", "Time from an ingest's arrival to its answer, by slot and outcome",
            ["slot", "outcome"], buckets=INGEST_BUCKETS, registry=r)
        self.ingest_answers = Counter(
            "photoslot_ingest_answers", "Ingest answers by HTTP status code", ["status"], registry=r)
        self.test_shots = Counter(
            "photoslot_test_shots", "Admins' test shots by slot and outcome (not in the ingest figures above)",
            ["slot", "outcome"], registry=r)
        self.provider_seconds = Histogram(
            "photoslot_provider_call_duration_seconds",
            "Provider call time in this process's workers (all retries of one job), by outcome",
            ["provider", "outcome"], buckets=PROVIDER_BUCKETS, registry=r)
        self.provider_errors = Counter(
            "photoslot_provider_errors", "Provider failures in this process's workers, by reason",
            ["provider", "reason"], registry=r)
        self.provider_retries = Counter(
            "photoslot_provider_retries", "Extra provider requests beyond the first, in this process's workers",
            ["provider"], registry=r)
        self.db_collector = DatabaseCollector()
        r.register(self.db_collector)

    # ------------------------------------------------------------ hooks for the ingest and the workers

    def observe_ingest(self, slot: str, outcome: str, status: int | None, seconds: float, *,
                       is_test: bool = False) -> None:
        slot_label = slot if slot in SLOT_IDS else "invalid"  # a hostile path must not mint label values
        if is_test:  # a rehearsal: its own counter, never in the booths' latency or answer figures
            self.test_shots.labels(slot_label, outcome).inc()
            return
        self.ingest_seconds.labels(slot_label, outcome).observe(seconds)
        self.ingest_answers.labels(str(status or 0)).inc()

    def observe_provider(self, provider: str, outcome: str, seconds: float, requests: int) -> None:
        self.provider_seconds.labels(provider, outcome).observe(seconds)
        if outcome != "ok":
            self.provider_errors.labels(provider, outcome).inc()
        if requests > 1:
            self.provider_retries.labels(provider).inc(requests - 1)

    # ------------------------------------------------------------ exposition

    async def render(self, ctx) -> bytes:
        self.db_collector.snapshot = await snapshot(ctx)
        return generate_latest(self.registry)


def of(ctx) -> Metrics:
    """The Metrics of this AppContext (created on first use)."""
    m = ctx.__dict__.get("_metrics")
    if m is None:
        m = Metrics()
        ctx.__dict__["_metrics"] = m
    return m


def safe(fn, *args, **kwargs) -> None:
    """Instrumentation never breaks the path it measures."""
    try:
        fn(*args, **kwargs)
    except Exception:  # pragma: no cover - defensive
        log.debug("metrics hook failed", exc_info=True)


# ---------------------------------------------------------------- scrape-time values

async def snapshot(ctx) -> dict:
    now = ctx.clock.now()
    snap: dict = {"now": now}
    snap["media"] = await asyncio.to_thread(media_usage, ctx.media)
    # this process's copy of the shared provider health (photoslot/provider_health.py): no query needed
    snap["providers_up"] = {p: 0 if ctx.health.get(p).is_down else 1 for p in catalogue.CATALOGUE}
    # read before this scrape's own queries take a connection: at rest it is 0
    snap["db_pool_in_use"] = getattr(ctx.db, "in_use", 0)
    # what each provider last said is left on the account (Turbotext's limits.foto_limit), same copy
    snap["quota_remaining"] = {p: ctx.health.quota(p).remaining for p in catalogue.CATALOGUE
                               if ctx.health.quota(p).remaining is not None}
    try:
        snap.update(await asyncio.wait_for(_db_values(ctx, now), timeout=SCRAPE_DB_TIMEOUT))
        snap["db_up"] = 1
    except (DatabaseUnavailable, asyncio.TimeoutError):
        snap["db_up"] = 0
    snap["window_minutes"] = float(ctx.cfg.get("alerts.window_minutes"))
    return snap


async def _db_values(ctx, now: dt.datetime) -> dict:
    db = ctx.db
    since = alerts.window_start(ctx.cfg, now)
    return {
        "jobs": await db.fetchall("ops_jobs_by_state"),
        "queue": await db.fetchall("ops_queue_depth", now=now),
        "window": await db.fetchall("ops_window_outcomes", since=since, now=now),
        "processing": await db.fetchall("ops_window_processing_seconds", since=since, now=now),
        "quotas": await quotas.usage(db, ctx.cfg, now),
        "alerts": await db.fetchall("ops_alert_states"),
    }


def media_usage(media) -> dict:
    out: dict = {"bytes": {}, "files": {}}
    for kind in ("uploads", "results", "templates"):
        total = count = 0
        folder: Path = getattr(media, kind)
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                            count += 1
                    except FileNotFoundError:
                        continue
        except FileNotFoundError:
            pass
        out["bytes"][kind] = total
        out["files"][kind] = count
    try:
        out["disk_total"], out["disk_used"], out["disk_free"] = disk_usage(media.root)
    except OSError:
        out["disk_total"] = out["disk_used"] = out["disk_free"] = 0
    return out


class DatabaseCollector:
    """Yields the values `snapshot()` read just before `generate_latest` runs."""

    def __init__(self) -> None:
        self.snapshot: dict = {}

    def describe(self):
        return []

    def collect(self):
        s = self.snapshot
        if not s:
            return
        up = GaugeMetricFamily("photoslot_database_up", "1 when the last scrape could read PostgreSQL")
        up.add_metric([], s.get("db_up", 0))
        yield up

        media = s["media"]
        mb = GaugeMetricFamily("photoslot_media_bytes", "Bytes stored under the media root, by kind", labels=["kind"])
        mf = GaugeMetricFamily("photoslot_media_files", "Files stored under the media root, by kind", labels=["kind"])
        for kind, value in media["bytes"].items():
            mb.add_metric([kind], value)
            mf.add_metric([kind], media["files"][kind])
        yield mb
        yield mf
        free = GaugeMetricFamily("photoslot_media_disk_free_bytes", "Free bytes on the media root's filesystem")
        free.add_metric([], media["disk_free"])
        yield free
        used = GaugeMetricFamily("photoslot_media_disk_used_ratio", "Used share (0–1) of the media root's filesystem")
        used.add_metric([], media["disk_used"] / media["disk_total"] if media["disk_total"] else 0)
        yield used

        pool = GaugeMetricFamily("photoslot_db_pool_in_use", "Database connections this process has handed out "
                                 "and not got back (0 at rest; one that stays up is a leak)")
        pool.add_metric([], s.get("db_pool_in_use", 0))
        yield pool

        pup = GaugeMetricFamily("photoslot_provider_up", "1 while the provider is up, 0 while it is down "
                                "(consecutive failed calls; shared by all processes)", labels=["provider"])
        for provider, value in sorted(s.get("providers_up", {}).items()):
            pup.add_metric([provider], value)
        yield pup

        qrem = GaugeMetricFamily("photoslot_provider_quota_remaining", "What the provider last said is left on "
                                 "the account (Turbotext: photos left on the tariff, limits.foto_limit)",
                                 labels=["provider"])
        for provider, value in sorted(s.get("quota_remaining", {}).items()):
            qrem.add_metric([provider], value)
        yield qrem

        if not s.get("db_up"):
            return

        jobs = GaugeMetricFamily("photoslot_jobs", "Job rows by state and failure reason (all processes)",
                                 labels=["state", "reason"])
        for r in s["jobs"]:
            jobs.add_metric([r["status"], r["reason"]], r["n"])
        yield jobs

        depth = GaugeMetricFamily("photoslot_queue_depth", "Open jobs per provider (pending = waiting for a worker)",
                                  labels=["provider", "state"])
        oldest = GaugeMetricFamily("photoslot_queue_oldest_pending_seconds",
                                   "Age of the oldest job still waiting for a worker", labels=["provider"])
        for r in s["queue"]:
            depth.add_metric([r["provider_id"], "pending"], r["pending"])
            depth.add_metric([r["provider_id"], "processing"], r["processing"])
            oldest.add_metric([r["provider_id"]], float(r["oldest_pending_seconds"] or 0))
        yield depth
        yield oldest

        minutes = s["window_minutes"]
        wj = GaugeMetricFamily("photoslot_window_jobs", f"Jobs finished in the last {minutes:g} min, by provider and outcome",
                               labels=["provider", "outcome"])
        wreq = GaugeMetricFamily("photoslot_window_provider_requests",
                                 f"Provider requests of jobs finished in the last {minutes:g} min", labels=["provider"])
        wret = GaugeMetricFamily("photoslot_window_provider_retries",
                                 f"Provider requests beyond the first per job, last {minutes:g} min", labels=["provider"])
        werr = GaugeMetricFamily("photoslot_window_provider_errors",
                                 f"Jobs failed on the provider's side in the last {minutes:g} min", labels=["provider", "reason"])
        total = timeouts = 0
        reqs: dict[str, int] = {}
        rets: dict[str, int] = {}
        for r in s["window"]:
            outcome = "succeeded" if r["status"] == "succeeded" else (r["reason"] or r["status"])
            wj.add_metric([r["provider_id"], outcome], r["n"])
            reqs[r["provider_id"]] = reqs.get(r["provider_id"], 0) + int(r["requests"])
            rets[r["provider_id"]] = rets.get(r["provider_id"], 0) + int(r["retries"])
            if r["reason"] in PROVIDER_FAILURES:
                werr.add_metric([r["provider_id"], r["reason"]], r["n"])
            total += r["n"]
            timeouts += r["n"] if r["reason"] == "timeout" else 0
        for p, v in reqs.items():
            wreq.add_metric([p], v)
        for p, v in rets.items():
            wret.add_metric([p], v)
        yield wj
        yield wreq
        yield wret
        yield werr
        ratio = GaugeMetricFamily("photoslot_timeout_ratio",
                                  f"Share of jobs finished as timeout in the last {minutes:g} min (0 when none finished)")
        ratio.add_metric([], timeouts / total if total else 0.0)
        yield ratio

        proc = GaugeMetricFamily("photoslot_window_processing_seconds",
                                 f"Claim-to-result time of successful jobs in the last {minutes:g} min (all hosts)",
                                 labels=["provider", "quantile"])
        for r in s["processing"]:
            proc.add_metric([r["provider_id"], "0.5"], float(r["p50"] or 0))
            proc.add_metric([r["provider_id"], "0.95"], float(r["p95"] or 0))
        yield proc

        used = GaugeMetricFamily("photoslot_quota_used", "Provider requests spent in the current period",
                                 labels=["provider", "period"])
        limit = GaugeMetricFamily("photoslot_quota_limit", "Configured provider request limit per period",
                                  labels=["provider", "period"])
        left = GaugeMetricFamily("photoslot_quota_left", "Provider requests left in the current period",
                                 labels=["provider", "period"])
        for provider, windows in sorted(s["quotas"].items()):
            for period, w in sorted(windows.items()):
                used.add_metric([provider, period], w["used"])
                if w["limit"]:
                    limit.add_metric([provider, period], w["limit"])
                    left.add_metric([provider, period], max(0, w["limit"] - w["used"]))
        yield used
        yield limit
        yield left

        active = GaugeMetricFamily("photoslot_alert_active", "1 while the alert is firing (shared by all processes)",
                                   labels=["alert", "severity"])
        value = GaugeMetricFamily("photoslot_alert_value", "The value the alert last compared with its threshold",
                                  labels=["alert"])
        for r in s["alerts"]:
            active.add_metric([r["name"], r["severity"]], 1 if r["active"] else 0)
            if r["value"] is not None:
                value.add_metric([r["name"]], r["value"])
        yield active
        yield value
