"""The provider health rule (photoslot/health_rule.py): down after N failed calls in a row, refused
during the cool-down, one probe after it, up on success, a new cool-down on a failed probe."""
from __future__ import annotations

import datetime as dt

from photoslot import health_rule as hr
from photoslot.providers.base import Problems, kind_of

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
RULE = hr.Rule(down_after_failures=3, cooldown_seconds=15, probe_lease_seconds=60)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def down_at_zero() -> hr.Health:
    h = hr.Health("gemini")
    for _ in range(3):
        h = hr.failed(h, RULE, T0, "HTTP 503")
    return h


def test_failures_below_the_threshold_keep_the_provider_up_and_a_success_forgets_them():
    h = hr.failed(hr.failed(hr.Health("gemini"), RULE, T0, "HTTP 503"), RULE, T0, "HTTP 503")
    assert h.state == hr.UP and h.failures == 2 and hr.refusal(h, T0) is None
    h = hr.succeeded(h, at(1))
    assert h.state == hr.UP and h.failures == 0
    h = hr.failed(hr.failed(h, RULE, at(2), "x"), RULE, at(2), "x")
    assert h.state == hr.UP  # not consecutive with the two before the success


def test_the_nth_consecutive_failure_takes_it_down_and_new_shots_are_refused_until_the_cool_down_ends():
    h = down_at_zero()
    assert h.state == hr.DOWN and h.down_since == T0 and h.retry_at == at(15) and h.changed_at == T0
    assert hr.refusal(h, at(0)) == 15
    assert hr.refusal(h, at(14.2)) == 1
    assert hr.refusal(h, at(15)) is None  # the cool-down is over: a shot may come and be the probe
    assert not hr.may_call(h, at(1), "job-1") and not hr.probe_due(h, at(14.9))


def test_after_the_cool_down_exactly_one_job_takes_the_probe_and_only_it_may_call():
    h = down_at_zero()
    assert hr.take_probe(h, RULE, at(10), "job-1") is None  # too early
    probing = hr.take_probe(h, RULE, at(15), "job-1")
    assert probing is not None and probing.probe_job == "job-1"
    assert hr.take_probe(probing, RULE, at(16), "job-2") is None  # one probe at a time
    assert hr.may_call(probing, at(16), "job-1") and not hr.may_call(probing, at(16), "job-2")
    # a prober that never reports back (its process died) is replaced after its lease
    assert hr.take_probe(probing, RULE, at(15 + 60), "job-2").probe_job == "job-2"


def test_a_successful_probe_brings_it_up_and_a_failed_one_restarts_the_cool_down():
    probing = hr.take_probe(down_at_zero(), RULE, at(15), "job-1")
    up = hr.succeeded(probing, at(16))
    assert up.state == hr.UP and up.failures == 0 and up.changed_at == at(16) and up.probe_job is None
    again = hr.failed(probing, RULE, at(16), "ConnectionRefusedError", job_id="job-1")
    assert again.state == hr.DOWN and again.retry_at == at(31) and again.probe_job is None
    assert again.down_since == T0 and again.changed_at == T0  # still the same outage
    assert hr.refusal(again, at(16)) == 15


def test_a_failure_of_a_call_already_under_way_while_down_only_counts():
    h = down_at_zero()
    later = hr.failed(h, RULE, at(5), "HTTP 503", job_id="job-9")
    assert later.retry_at == h.retry_at and later.failures == 4


def test_describe_names_the_count_the_last_problem_and_the_wait():
    text = hr.describe(down_at_zero(), at(5))
    assert "gemini is down after 3 failed calls" in text and "HTTP 503" in text and "next try in 10 s" in text
    assert hr.describe(hr.Health("turbotext"), T0) == "turbotext is up"


def test_problems_summarise_a_jobs_failed_calls_by_kind():
    p = Problems("gemini")
    for text in ["HTTP 503 UNAVAILABLE busy"] * 3 + ["ClientConnectorError: refused"]:
        p.add(text)
    assert p.summary() == "HTTP 503 × 3, ClientConnectorError × 1 from gemini, last: ClientConnectorError: refused"
    assert kind_of("HTTP 429 RESOURCE_EXHAUSTED") == "HTTP 429"


def test_an_answer_with_a_down_reason_takes_it_down_at_once_and_the_reason_is_said_in_words():
    reason = "this key's project has no quota for gemini-2.5-flash-image (billing not enabled?)"
    h = hr.failed(hr.Health("gemini"), RULE, T0, "HTTP 429 RESOURCE_EXHAUSTED: … limit: 0 …", down_reason=reason)
    assert h.state == hr.DOWN and h.failures == 1 and h.reason == reason and h.retry_at == at(15)
    assert hr.describe(h, at(5)) == f"gemini is down: {reason}; next try in 10 s"
    probe = hr.take_probe(h, RULE, at(15), "job-9")
    assert hr.failed(probe, RULE, at(16), "HTTP 429", job_id="job-9", down_reason=reason).reason == reason
    ordinary = hr.failed(probe, RULE, at(16), "HTTP 503", job_id="job-9")
    assert ordinary.state == hr.DOWN and ordinary.reason is None  # the probe said something else this time
    up = hr.succeeded(ordinary, at(20))
    assert up.state == hr.UP and up.reason is None


def test_a_deadline_cut_off_counts_against_the_provider_only_when_the_call_had_half_the_window():
    from photoslot.health_rule import timed_out
    assert timed_out(30.0, 48.0) and timed_out(24.0, 48.0)  # sent early: the provider had its chance
    assert not timed_out(23.9, 48.0)   # sent late: the window went to the queue or the database
    assert not timed_out(0.4, 48.0)
