"""The provider health rule, pure: consecutive failed calls take a provider down; after a cool-down
one probe call decides whether it is back.

    up ──(down_after_failures consecutive failed calls)──▶ down (retry_at = now + cool-down)
    up ──(one answer that no call can work: no quota, spent tariff …, with its reason)──▶ down
    down, before retry_at: no call goes out; new shots are refused 503 provider_unavailable
    down, from retry_at: one job may take the probe (a lease, so a dead prober is replaced)
    probe (or any call) succeeds ──▶ up;  the probe fails ──▶ down again, a new cool-down

A failed call is one that says nothing about the photo and everything about the provider: a
connection error, a call timeout, an HTTP 5xx, a 429 (the provider's limit, not our quota). A call
cut off by the job's deadline is a call timeout only when it had a fair chance (`timed_out`): sent
with at least half the job's window still ahead. The

state lives in PostgreSQL (photoslot/provider_health.py applies these functions under a row lock);
here are only the transitions, so they are tested without a database.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass

UP, DOWN = "up", "down"
FAIR_SHARE_OF_WINDOW = 0.5  # a call sent with less of the job's window ahead says nothing when cut off


def timed_out(seconds_ahead: float, window_seconds: float) -> bool:
    """Whether a call cut off by the job's deadline counts as the provider's failure: it was sent
    with `seconds_ahead` of the job's `window_seconds` left. One sent late — the job waited in the
    queue, the database was away, earlier tries took the time — had no fair chance to answer, and
    five such calls (a PostgreSQL restart strands a whole queue) must not take a provider down.
    A hanging provider still is: its calls sent early in their windows time out too."""
    return seconds_ahead >= FAIR_SHARE_OF_WINDOW * window_seconds


@dataclass(frozen=True)
class Rule:
    down_after_failures: int = 5
    cooldown_seconds: float = 15.0
    probe_lease_seconds: float = 60.0  # a probe not reported back by then may be taken again

    @classmethod
    def from_config(cls, cfg, provider: str) -> "Rule":
        return cls(down_after_failures=max(1, int(cfg.get(f"providers.{provider}.down_after_failures"))),
                   cooldown_seconds=max(0.0, float(cfg.get(f"providers.{provider}.down_cooldown_seconds"))),
                   probe_lease_seconds=float(cfg.get("ingest.sync_response_bounds")[1]) + 5)


@dataclass(frozen=True)
class Health:
    provider_id: str
    state: str = UP
    failures: int = 0                    # consecutive failed calls (0 after any success)
    last_problem: str | None = None
    last_failure_at: dt.datetime | None = None
    down_since: dt.datetime | None = None
    retry_at: dt.datetime | None = None  # end of the cool-down: the probe may go from then on
    probe_job: str | None = None         # the job whose call is the probe, while it runs
    probe_until: dt.datetime | None = None
    changed_at: dt.datetime | None = None
    reason: str | None = None            # why it is down, in words, when an answer said so

    @property
    def is_down(self) -> bool:
        return self.state == DOWN


def failed(h: Health, rule: Rule, now: dt.datetime, problem: str, *, job_id: str | None = None,
           down_reason: str | None = None) -> Health:
    """One failed call. The threshold takes an up provider down; a failed probe restarts the cool-down;
    other calls failing while it is down (they were under way already) only count. A `down_reason`
    (an answer saying no call can work until someone acts) takes it down at once, with that reason."""
    h = dataclasses.replace(h, failures=h.failures + 1, last_problem=problem[:500], last_failure_at=now)
    if down_reason:
        h = dataclasses.replace(h, reason=down_reason[:500])
    if h.state == UP:
        if h.failures >= rule.down_after_failures or down_reason:
            return _down(h, rule, now, changed=True)
        return h
    if job_id is not None and job_id == h.probe_job:
        # The probe's own answer says why now: its reason, or none (an ordinary failed call).
        return _down(dataclasses.replace(h, reason=down_reason[:500] if down_reason else None), rule, now,
                     changed=False)
    return h


def succeeded(h: Health, now: dt.datetime) -> Health:
    """A call that reached a working provider (the answer may still be a refusal): it is up."""
    if h.state == UP and h.failures == 0 and h.reason is None:
        return h
    return Health(provider_id=h.provider_id, state=UP, failures=0, last_problem=h.last_problem,
                  last_failure_at=h.last_failure_at, changed_at=now if h.state != UP else h.changed_at)


def _down(h: Health, rule: Rule, now: dt.datetime, *, changed: bool) -> Health:
    return dataclasses.replace(h, state=DOWN, down_since=now if changed else h.down_since,
                               retry_at=now + dt.timedelta(seconds=rule.cooldown_seconds), probe_job=None,
                               probe_until=None, changed_at=now if changed else h.changed_at)


def probe_due(h: Health, now: dt.datetime) -> bool:
    """Down, the cool-down over, and no live probe: the next job of this provider may be the probe."""
    return (h.state == DOWN and h.retry_at is not None and now >= h.retry_at
            and (h.probe_job is None or h.probe_until is None or now >= h.probe_until))


def take_probe(h: Health, rule: Rule, now: dt.datetime, job_id: str) -> Health | None:
    """The probe's lease for `job_id`; None when no probe is due (another one runs, or it is too early)."""
    if not probe_due(h, now):
        return None
    return dataclasses.replace(h, probe_job=job_id, probe_until=now + dt.timedelta(seconds=rule.probe_lease_seconds))


def may_call(h: Health, now: dt.datetime, job_id: str | None = None) -> bool:
    """May a request of this job go to the provider now? Always when up; when down only the probe's."""
    if h.state == UP:
        return True
    return job_id is not None and job_id == h.probe_job and h.probe_until is not None and now < h.probe_until


def refusal(h: Health, now: dt.datetime) -> int | None:
    """For a new shot: None to admit it, else the Retry-After in whole seconds. Once the cool-down is
    over shots are admitted again: the first of them is the probe, the others wait for its outcome."""
    if h.state == UP or h.retry_at is None or now >= h.retry_at:
        return None
    return max(1, math.ceil((h.retry_at - now).total_seconds()))


def describe(h: Health, now: dt.datetime) -> str:
    """One line for a refused shot, a finalized job and the operator."""
    if h.state == UP:
        return f"{h.provider_id} is up"
    wait = (f"next try in {max(0.0, (h.retry_at - now).total_seconds()):.0f} s" if h.retry_at and now < h.retry_at
            else "a probe call decides")
    if h.reason:
        return f"{h.provider_id} is down: {h.reason}; {wait}"
    return f"{h.provider_id} is down after {h.failures} failed calls in a row (last: {h.last_problem}); {wait}"
