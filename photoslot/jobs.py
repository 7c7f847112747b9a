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

from photoslot.outcomes import answer_for, status_for_reason

log = logging.getLogger("photoslot.jobs")

NEW_CHANNEL = "photoslot_job_new"
DONE_CHANNEL = "photoslot_job_done"


def new_job_id() -> uuid.UUID:
    return uuid.uuid4()


async def enqueue(db, *, job_id, slot: dict, now: dt.datetime, expires_at: dt.datetime, upload_path: str,
                  upload_mime: str, upload_size: int, metadata: dict) -> None:
    await db.execute(
        "job_insert", id=job_id, slot_id=slot["id"], provider_id=slot["provider_id"],
        operation_id=slot["operation_id"], slot_settings=dict(slot["settings_json"] or {}),
        input_metadata=metadata, upload_path=upload_path, upload_mime=upload_mime,
        upload_size_bytes=upload_size, expires_at=expires_at, now=now,
    )


async def claim(db, *, provider_id: str, worker_id: str, now: dt.datetime, lease_seconds: float,
                max_parallel: int) -> dict | None:
    async with db.transaction() as tx:
        await tx.fetchone("claim_lock", provider_id=provider_id)
        return await tx.fetchone(
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
                          requests: int = 0, polls: int = 0) -> None:
    await db.execute("job_record_provider", job_id=job_id, now=now, reference=reference,
                     response_id=response_id, tokens=tokens, requests=requests, polls=polls)


async def finalize_success(db, media, *, job_id, now: dt.datetime, result_path: str, mime: str, size: int,
                           checksum: str, retention_hours: float) -> dict | None:
    """Record the result; None when someone else finalized first (the caller discards its file)."""
    row = await db.fetchone(
        "job_finalize_success", job_id=job_id, now=now, result_file_path=result_path,
        result_mime_type=mime, result_size_bytes=size, result_checksum=checksum,
        result_expires_at=now + dt.timedelta(hours=retention_hours),
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


async def list_recent(db, *, slot_id=None, status=None, limit: int = 20) -> list[dict]:
    return await db.fetchall("job_list", slot_id=slot_id, status=status, limit=limit)


class DoneWaiters:
    """In-process registry of ingests waiting for their job; fed by LISTEN photoslot_job_done.

    The notification only says "look now"; the waiter always re-reads the job row, so a missed
    or duplicated notification is harmless (the ~1 s poll covers a lost one).
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def register(self, job_id) -> asyncio.Event:
        ev = asyncio.Event()
        self._events[str(job_id)] = ev
        return ev

    def unregister(self, job_id) -> None:
        self._events.pop(str(job_id), None)

    def notify(self, payload: str) -> None:
        ev = self._events.get(payload)
        if ev is not None:
            ev.set()

    def wake_all(self) -> None:
        for ev in self._events.values():
            ev.set()

    def __len__(self) -> int:
        return len(self._events)
