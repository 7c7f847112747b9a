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


# ---------------------------------------------------------------- the contract's coarser view
#
# The admin API's contract knows a job's status as `pending` / `processing` only (finalization is
# `is_finalized`) and three failure reasons. Each of photoslot's final states maps to one of them,
# so every finer reason has exactly one coarse reason, and a filter by a coarse reason finds every
# job whose finer reason it covers (docs/API.md, "The contract's view of a job").

CONTRACT_STATUSES = ("pending", "processing")
CONTRACT_REASON_FOR_STATE = {"timeout": "timeout", "failed": "provider_error", "cancelled": "cancelled"}
CONTRACT_REASONS = tuple(CONTRACT_REASON_FOR_STATE.values())


def contract_reason(reason: str | None) -> str | None:
    """The contract's failure_reason for a stored (finer) one; None stays None (a success)."""
    return None if reason is None else CONTRACT_REASON_FOR_STATE[status_for_reason(reason)]


def reasons_covered(contract_value: str) -> tuple[str, ...]:
    """Every finer failure reason the contract's `contract_value` stands for."""
    return tuple(r for r in FAILURE_ANSWERS if contract_reason(r) == contract_value)


# What each answer means, in words an admin at the studio reads on the pages (translated there by
# the web admin's catalogue): refusals before a job (the ingest's own reasons) and a job's endings.
REASON_WORDS: dict[str, str] = {
    "succeeded": "the processed photo",
    "invalid_password": "wrong or missing ingest password",
    "too_many_attempts": "too many wrong passwords from this address: it must wait",
    "slot_not_found": "no such slot, or the slot is disabled or not configured",
    "payload_too_large": "the photo is too large",
    "unsupported_media_type": "the file is not a photo the provider takes (JPEG, PNG, WebP)",
    "invalid_image": "the photo is damaged or cut short",
    "invalid_request": "the booth sent a malformed request (no photo, or fields twice)",
    "queue_full": "too many photos waiting: the queue is full",
    "server_busy": "too many unidentified clients at once",
    "provider_unavailable": "the provider is down (or has no API key)",
    "quota_exhausted": "the provider's request quota is spent",
    "database_unavailable": "the database was not reachable",
    "storage_full": "the media disk is full",
    "storage_unavailable": "the media folder is not writable",
    "timeout": "no result within the response window",
    "provider_error": "the provider answered with an error",
    "provider_refused": "the provider refused the photo (safety filter)",
    "invalid_result": "the provider sent no usable image",
    "cancelled": "cancelled",
    "admin_cancelled": "cancelled by an admin",
    "client_gone": "the booth hung up before the answer",
    "internal_error": "an internal error (see the server log)",
}


def reason_words(reason: str | None) -> str:
    """The words for a reason code; an unknown code is shown as it is."""
    return REASON_WORDS.get(reason or "", reason or "")
