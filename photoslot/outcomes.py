"""How a job's outcome is answered to DSLR Remote Pro (docs/API.md "The ingest"), in one table."""
from __future__ import annotations

# failure_reason stored on the job → (HTTP status, failure_reason in the ingest's JSON)
FAILURE_ANSWERS: dict[str, tuple[int, str]] = {
    "timeout": (504, "timeout"),
    "provider_error": (502, "provider_error"),
    "provider_refused": (502, "provider_refused"),
    "invalid_result": (502, "invalid_result"),
    "quota_exhausted": (503, "quota_exhausted"),
    "provider_unavailable": (503, "provider_unavailable"),
    "cancelled": (503, "cancelled"),
    "admin_cancelled": (503, "admin_cancelled"),
    "client_gone": (499, "client_gone"),
    "internal_error": (500, "internal_error"),
}


def status_for_reason(reason: str) -> str:
    """The job state a failure reason ends in."""
    if reason == "timeout":
        return "timeout"
    if reason in ("cancelled", "admin_cancelled", "client_gone"):
        return "cancelled"
    return "failed"


def answer_for(reason: str) -> tuple[int, str]:
    return FAILURE_ANSWERS.get(reason, (500, "internal_error"))


def ingest_answer(job: dict) -> tuple[int, str]:
    """(HTTP status, JSON failure_reason) for a finalized, unsuccessful job.

    A provider that is down (or has no API key) is stored as `provider_unavailable`; rows written
    before that reason existed hold `provider_error` with answer_status 503 and are answered the same.
    """
    reason = job.get("failure_reason") or "internal_error"
    status, label = answer_for(reason)
    if reason == "provider_error" and job.get("answer_status") == 503:
        return 503, "provider_unavailable"
    return status, label
