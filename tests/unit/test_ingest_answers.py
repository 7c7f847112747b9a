"""How the booth is answered: a job's outcome → HTTP status and failure_reason, and the JSON shape."""
from __future__ import annotations

import pytest

from photoslot import jobs, outcomes
from photoslot.server.ingest_answers import error_body, http_refusal


@pytest.mark.parametrize("reason, status, state", [
    ("timeout", 504, "timeout"),
    ("provider_error", 502, "failed"),
    ("provider_refused", 502, "failed"),
    ("invalid_result", 502, "failed"),
    ("quota_exhausted", 503, "failed"),
    ("internal_error", 500, "failed"),
    ("cancelled", 503, "cancelled"),
    ("client_gone", 499, "cancelled"),
])
def test_every_failure_reason_has_its_status_and_final_state(reason, status, state):
    assert outcomes.ingest_answer({"failure_reason": reason}) == (status, reason)
    assert outcomes.status_for_reason(reason) == state
    assert state in jobs.STATES


def test_a_provider_that_was_down_is_answered_as_provider_unavailable():
    assert outcomes.ingest_answer({"failure_reason": "provider_error", "answer_status": 503}) == \
        (503, "provider_unavailable")
    assert outcomes.ingest_answer({"failure_reason": "provider_error", "answer_status": 502}) == (502, "provider_error")


def test_an_unknown_or_missing_reason_is_an_internal_error():
    assert outcomes.ingest_answer({"failure_reason": "no-such-reason"}) == (500, "internal_error")
    assert outcomes.ingest_answer({}) == (500, "internal_error")


def test_error_body_says_timeout_only_for_the_504_and_names_the_job_once_it_exists():
    assert error_body("timeout", "no result", job_id="j1") == \
        {"status": "timeout", "failure_reason": "timeout", "details": "no result", "job_id": "j1"}
    assert error_body("queue_full", "3 waiting", retry_after=5) == \
        {"status": "error", "failure_reason": "queue_full", "details": "3 waiting", "retry_after": 5}
    assert set(error_body("invalid_password", "wrong")) == {"status", "failure_reason", "details"}


@pytest.mark.parametrize("status, reason, mentions_the_url", [
    (404, "slot_not_found", True),
    (405, "invalid_request", True),
    (400, "invalid_request", False),
    (413, "payload_too_large", False),
    (431, "invalid_request", False),
])
def test_aiohttps_own_refusals_get_an_ingest_reason(status, reason, mentions_the_url):
    got_reason, details = http_refusal(status, "Some Phrase")
    assert got_reason == reason
    assert ("POST /ingest/slot-001" in details) == mentions_the_url
