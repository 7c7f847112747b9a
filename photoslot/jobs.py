"""The job queue: enqueue, claim, heartbeat, finalize, release — and waiting for a job's end.

Exactly one side finalizes a job: every finalizing UPDATE is conditional on the job not being
finalized yet (see queries/jobs.sql), so a worker and a timing-out ingest can race safely. The loser
learns it from an empty RETURNING and cleans up its own files.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

from photoslot.errors import ValidationError
from photoslot.outcomes import (CONTRACT_REASONS, CONTRACT_STATUSES, FAILURE_ANSWERS, answer_for, contract_reason,
                                reasons_covered, status_for_reason)

log = logging.getLogger("photoslot.jobs")

NEW_CHANNEL = "photoslot_job_new"
NOTIFIED_POLL_SECONDS = 5.0  # the waiters' fallback poll while notifications flow (DoneWaiters.poll_forever)
DONE_CHANNEL = "photoslot_job_done"

# Every state a job can be in: pending → processing → one final state (is_finalized from then on;
# outcomes.status_for_reason says which final state a failure ends in).
STATES = ("pending", "processing", "succeeded", "timeout", "failed", "cancelled")


def new_job_id() -> uuid.UUID:
    return uuid.uuid4()


async def enqueue(db, *, job_id, slot: dict, now: dt.datetime, expires_at: dt.datetime, upload_path: str | None,
                  upload_mime: str | None, upload_size: int | None, metadata: dict, is_test: bool = False) -> None:
    """A new pending job. `is_test`: an admin's test shot, not a guest's (counted apart everywhere)."""
    await db.execute(
        "job_insert", id=job_id, slot_id=slot["id"], provider_id=slot["provider_id"],
        operation_id=slot["operation_id"], slot_settings=dict(slot["settings_json"] or {}),
        input_metadata=metadata, upload_path=upload_path, upload_mime=upload_mime,
        upload_size_bytes=upload_size, expires_at=expires_at, is_test=is_test, now=now,
    )


async def claim(db, *, provider_id: str, worker_id: str, now: dt.datetime, lease_seconds: float,
                max_parallel: int) -> dict | None:
    return await db.fetchone(
        "job_claim", provider_id=provider_id, worker_id=worker_id, now=now,
        lease_expires_at=now + dt.timedelta(seconds=lease_seconds), max_parallel=max_parallel,
    )


async def heartbeat(db, *, job_id, worker_id: str, now: dt.datetime, lease_seconds: float) -> bool:
    row = await db.fetchone("job_heartbeat", job_id=job_id, worker_id=worker_id,
                            lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
    return row is not None


async def release(db, *, job_id, worker_id: str, now: dt.datetime) -> bool:
    return await db.fetchone("job_release", job_id=job_id, worker_id=worker_id, now=now) is not None


async def record_provider(db, *, job_id, now, reference=None, response_id=None, tokens=None,
                          requests: int = 0, polls: int = 0, provider_ms: int | None = None) -> None:
    await db.execute("job_record_provider", job_id=job_id, now=now, reference=reference,
                     response_id=response_id, tokens=tokens, requests=requests, polls=polls,
                     provider_ms=provider_ms)


async def note_problem(db, *, job_id, detail: str) -> None:
    """What went wrong with the provider so far, on the running job; a timeout keeps it in its detail."""
    await db.execute("job_note_problem", job_id=job_id, detail=detail[:1000])


async def record_answer(db, *, job_id, answered_ms: int) -> None:
    await db.execute("job_record_answer", job_id=job_id, answered_ms=answered_ms)


async def finalize_success(db, media, *, job_id, now: dt.datetime, result_path: str, mime: str, size: int,
                           checksum: str, default_retention_hours: float, response_id: str | None = None,
                           tokens: int | None = None, provider_ms: int | None = None) -> dict | None:
    """Record the result; None when someone else finalized first (the caller discards its file).

    result_expires_at = finalized_at + the live retention setting (default from the config).
    """
    row = await db.fetchone(
        "job_finalize_success", job_id=job_id, now=now, result_file_path=result_path,
        result_mime_type=mime, result_size_bytes=size, result_checksum=checksum,
        default_retention_hours=default_retention_hours, response_id=response_id, tokens=tokens,
        provider_ms=provider_ms,
    )
    if row is not None:
        media.remove(row.pop("old_upload_path"))
    return row


async def finalize_failure(db, media, *, job_id, now: dt.datetime, reason: str, detail: str,
                           answer_status: int | None = None) -> dict | None:
    status = status_for_reason(reason)
    row = await db.fetchone(
        "job_finalize_failure", job_id=job_id, now=now, status=status, failure_reason=reason,
        failure_detail=(detail or "")[:2000], answer_status=answer_status or answer_for(reason)[0],
    )
    if row is not None:
        media.remove(row.pop("old_upload_path"))
    return row


async def get(db, job_id) -> dict | None:
    return await db.fetchone("job_get", job_id=job_id)


async def list_recent(db, *, slot_id=None, status=None, limit: int = 20,
                      created_from: dt.datetime | None = None) -> list[dict]:
    """`photoslot jobs`: the newest jobs, optionally only those created since `created_from`."""
    if created_from is None:
        return await db.fetchall("job_list", slot_id=slot_id, status=status, limit=limit)
    return await db.fetchall("job_list_since", slot_id=slot_id, status=status, limit=limit, created_from=created_from)


# ---------------------------------------------------------------- the admin view (GET /api/jobs)

ADMIN_SORTS = ("created_at", "expires_at")


def check_list_filters(*, status=None, contract_status=None, failure_reason=None, failure_code=None, page: int = 1,
                       page_size: int = 20, sort_by: str = "created_at", sort_order: str = "desc") -> None:
    """The admin job list's filters, paging and sort, each checked (a per-field ValidationError)."""
    errors = {}
    if status is not None and status not in STATES:
        errors["status"] = f"must be one of: {', '.join(STATES)}"
    if contract_status is not None and contract_status not in CONTRACT_STATUSES:
        errors["status"] = f"must be one of: {', '.join(CONTRACT_STATUSES)}"
    if failure_reason is not None and failure_reason not in CONTRACT_REASONS and failure_reason not in FAILURE_ANSWERS:
        errors["failure_reason"] = (f"must be one of: {', '.join(CONTRACT_REASONS)} "
                                    f"(or a finer one: {', '.join(r for r in FAILURE_ANSWERS if r not in CONTRACT_REASONS)})")
    if failure_code is not None and failure_code not in FAILURE_ANSWERS:
        errors["failure_code"] = f"must be one of: {', '.join(FAILURE_ANSWERS)}"
    if not isinstance(page, int) or page < 1:
        errors["page"] = "must be an integer ≥ 1"
    if not isinstance(page_size, int) or not 1 <= page_size <= 100:
        errors["page_size"] = "must be an integer from 1 to 100"
    if sort_by not in ADMIN_SORTS:
        errors["sort_by"] = f"must be one of: {', '.join(ADMIN_SORTS)}"
    if sort_order not in ("asc", "desc"):
        errors["sort_order"] = "must be asc or desc"
    if errors:
        raise ValidationError(errors)


def failure_reasons_matching(failure_reason: str | None, failure_code: str | None) -> list[str] | None:
    """The stored reasons a job may have to pass both filters (None: no filter). A contract reason
    (`cancelled`, `provider_error`, `timeout`) stands for every finer reason it covers; any other
    value, and `failure_code`, match one stored reason exactly."""
    allowed: set[str] | None = None
    if failure_reason is not None:
        allowed = set(reasons_covered(failure_reason) if failure_reason in CONTRACT_REASONS else (failure_reason,))
    if failure_code is not None:
        allowed = {failure_code} if allowed is None else allowed & {failure_code}
    return None if allowed is None else sorted(allowed)


def api_list_filters(*, status=None, state=None, failure_reason=None, failure_code=None) -> dict:
    """GET /api/jobs's `status` and `state` → admin_list's keywords, each refusal named as the API
    names it. `status` is the contract's (pending/processing); one of photoslot's final states
    there is the earlier spelling of `state` and still means it (docs/API.md)."""
    errors = {}
    if state is not None and state not in STATES:
        errors["state"] = f"must be one of: {', '.join(STATES)}"
    out = {"failure_reason": failure_reason, "failure_code": failure_code, "contract_status": None}
    if status in CONTRACT_STATUSES:
        out["contract_status"] = status
    elif status in STATES:
        if state is not None and state != status:
            errors["status"] = f"{status!r} is the earlier spelling of state={status}, which contradicts state={state}"
        state = status
    elif status is not None:
        errors["status"] = (f"must be one of: {', '.join(CONTRACT_STATUSES)} (or, meaning state, one of: "
                            f"{', '.join(s for s in STATES if s not in CONTRACT_STATUSES)})")
    if errors:
        raise ValidationError(errors)
    return {**out, "status": state}


async def admin_list(db, *, slot_id=None, status=None, contract_status=None, is_finalized=None, failure_reason=None,
                     failure_code=None, is_test: bool | None = None, page: int = 1, page_size: int = 20,
                     sort_by: str = "created_at", sort_order: str = "desc", created_from: dt.datetime | None = None,
                     created_to: dt.datetime | None = None) -> tuple[list, int]:
    """One page of jobs and the total matching; the filters are checked first (check_list_filters).

    `status`: photoslot's state (one of STATES); `contract_status`: the contract's `pending` /
    `processing` (a finalized job keeps the last of the two it reached, contract_status()).
    `failure_reason` / `failure_code`: see failure_reasons_matching. `is_test`: admins' test shots
    only (True) or booth shots only (False). `created_from` / `created_to`: created in [from, to)."""
    check_list_filters(status=status, contract_status=contract_status, failure_reason=failure_reason,
                       failure_code=failure_code, page=page, page_size=page_size, sort_by=sort_by,
                       sort_order=sort_order)
    if created_from is not None and created_to is not None and created_from >= created_to:
        raise ValidationError({"from": "must be before 'to'"})
    filters = dict(slot_id=slot_id, status=status, contract_status=contract_status, is_finalized=is_finalized,
                   failure_reasons=failure_reasons_matching(failure_reason, failure_code), is_test=is_test,
                   created_from=created_from, created_to=created_to)
    # a page past the end is empty, however far: PostgreSQL's OFFSET stops at bigint
    rows = await db.fetchall("admin_jobs_page", **filters, sort_by=sort_by, descending=sort_order == "desc",
                             limit=page_size, offset=min((page - 1) * page_size, 2 ** 63 - 1))
    total = (await db.fetchone("admin_jobs_count", **filters))["total"]
    return rows, total


def _ms(a, b):
    """Milliseconds from a to b, never below 0: a claim stamped by a host whose clock runs behind
    the ingest's is no negative wait."""
    return max(0, int((b - a).total_seconds() * 1000)) if a is not None and b is not None else None


def job_object(job: dict, cfg) -> dict:
    """photoslot's own view of a job (the web admin's pages): its state in `status`, its finer
    reason in `failure_reason`, provider accounting and the download link. The admin API answers
    api_object, which puts the contract's coarser values in those two fields."""
    out = {k: job.get(k) for k in (
        "id", "slot_id", "status", "is_finalized", "failure_reason", "failure_detail", "provider_id",
        "operation_id", "provider_job_reference", "attempts", "result_file_path", "result_mime_type",
        "result_size_bytes", "result_checksum", "result_expires_at", "expires_at", "created_at", "updated_at",
        "finalized_at", "started_at", "answer_status", "provider_requests", "provider_tokens", "poll_count",
        "is_test")}
    out["id"] = str(job["id"])
    out["download_url"] = (f"{cfg.public_base_url()}/public/results/{job['id']}"
                           if job["status"] == "succeeded" else None)
    return out


def admin_view(job: dict, cfg, now: dt.datetime) -> dict:
    """JobAdminView: the job, its deadline as seen now, and where its time went."""
    end = job["finalized_at"] or now
    return {
        "job": job_object(job, cfg),
        "deadline": {"expires_at": job["expires_at"],
                     "remaining_ms": _ms(now, job["expires_at"]),
                     "is_expired": now >= job["expires_at"]},
        # a job that never left the queue waited until now (or until it was finalized)
        "metrics": {"queue_wait_ms": _ms(job["created_at"], job["started_at"] or end),
                    "processing_ms": _ms(job["started_at"], end) if job["started_at"] else None,
                    "total_elapsed_ms": _ms(job["created_at"], end)},
    }


# ---------------------------------------------------------------- the API's view (the contract's)

def contract_status(job: dict) -> str:
    """The contract's `status`: `pending` or `processing`, finalized or not — a finalized job keeps
    the last of the two it reached (`processing` once a worker claimed it)."""
    if job["status"] in CONTRACT_STATUSES:
        return job["status"]
    return "processing" if job.get("started_at") is not None else "pending"


def api_object(job: dict, cfg) -> dict:
    """The Job object of the admin API: the contract's `status` and `failure_reason`, with
    photoslot's finer state and reason beside them in `state` and `failure_code`."""
    return {**job_object(job, cfg), "status": contract_status(job), "state": job["status"],
            "failure_reason": contract_reason(job["failure_reason"]), "failure_code": job["failure_reason"]}


def api_view(job: dict, cfg, now: dt.datetime) -> dict:
    """JobAdminView as the admin API answers it (api_object for the job)."""
    return {**admin_view(job, cfg, now), "job": api_object(job, cfg)}


class DoneWaiters:
    """In-process registry of ingests waiting for their job; fed by LISTEN photoslot_job_done, and
    directly by a worker of the same process (deliver: the finalized row and result, no re-read).

    The notification only says "look now"; the waiter then re-reads the job row, so a missed
    or duplicated notification is harmless (poll_forever, one query per second for all waiters of
    the process, covers a lost one).
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._delivered: dict[str, tuple[dict, bytes | None]] = {}
        self._expected: set[str] = set()  # being finalized by a worker of this process (expect/settle)

    def register(self, job_id) -> asyncio.Event:
        ev = asyncio.Event()
        self._events[str(job_id)] = ev
        return ev

    def unregister(self, job_id) -> None:
        self._events.pop(str(job_id), None)
        self._delivered.pop(str(job_id), None)

    def expect(self, job_id) -> None:
        """A worker of this process is about to finalize the job: its notification is not waited
        for (it can arrive before the worker has the row); settle() hands the row over instead."""
        self._expected.add(str(job_id))

    def settle(self, job_id, row: dict | None = None, body: bytes | None = None) -> None:
        """After expect(), whatever happened: the finalized row (and the result's bytes) go to the
        waiting ingest, which then answers without re-reading either; without a row (someone else
        finalized first, or the database failed) the ingest is woken to read the job itself."""
        key = str(job_id)
        self._expected.discard(key)
        if row is not None and key in self._events:
            self._delivered[key] = (row, body)
        self._wake(key)

    def delivered(self, job_id) -> tuple[dict, bytes | None] | None:
        return self._delivered.pop(str(job_id), None)

    def notify(self, payload: str) -> None:
        if payload not in self._expected:  # else settle() wakes the ingest, with the row
            self._wake(payload)

    def _wake(self, key: str) -> None:
        ev = self._events.get(key)
        if ev is not None:
            ev.set()

    def wake_all(self) -> None:
        for ev in self._events.values():
            ev.set()

    def __len__(self) -> int:
        return len(self._events)

    async def poll_once(self, db) -> None:
        """The fallback for missed notifications (and all of poll-only mode): one query for every
        waiting ingest of this process, instead of one query per ingest per second."""
        if not self._events:
            return
        for row in await db.fetchall("jobs_finalized_among", ids=list(self._events)):
            self._wake(str(row["id"]))

    async def poll_forever(self, db, interval: float, listener=None) -> None:
        """With a connected listener, notifications (and a worker's own hand-over) wake every
        waiter; a reconnect wakes them all: the poll then only runs every NOTIFIED_POLL_SECONDS."""
        while True:
            connected = listener is not None and listener.connected.is_set()
            await asyncio.sleep(max(interval, NOTIFIED_POLL_SECONDS) if connected else interval)
            try:
                await self.poll_once(db)
            except Exception as exc:  # an outage: waiters answer at their deadline anyway
                log.warning("event=waiter_poll_failed error=%s", exc.__class__.__name__)
