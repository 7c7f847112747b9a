"""Hourly figures of every ingest request (the `ingest_rollups` table): what statistics read.

* A request that made a job is counted by the statement that finalizes the job (the trigger in
  migrations/0003_ingest_rollups.sql): no extra statement on any path.
* A request refused before a job existed (401, 404, 413, 415, 422, 429, 503 …) is counted here, in
  memory (`Tally`), and written in one statement per flush — every `stats.flush_seconds` (5 s), at
  a clean stop, and before this process reads statistics. A flood of refused requests therefore
  costs one INSERT per flush, whatever its size: the counter's keys are bounded (hour × 16 slot ids,
  unknown ids folded into `invalid` × the answers' reasons), so its memory is too. A process killed
  with `kill -9` loses at most one flush interval of refusal counts.
* The sweeper deletes rows older than `stats.rollup_retention_days` (400).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging

from photoslot import SLOT_IDS
from photoslot.db import DatabaseUnavailable
from photoslot.refusals import RecentRefusals
from photoslot.logs import event

log = logging.getLogger("photoslot.stats")

INVALID_SLOT = "invalid"


def hour_of(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


class Tally:
    """Refused requests counted in memory until the next flush."""

    def __init__(self) -> None:
        self._counts: collections.Counter[tuple] = collections.Counter()
        self._task: asyncio.Task | None = None
        self.recent = RecentRefusals()  # when, what the booth was told, from where (refusals.py)

    def add(self, *, at: dt.datetime, slot_id: str, provider_id: str | None, reason: str, status: int,
            is_test: bool = False, client: str | None = None, detail: str | None = None) -> None:
        slot = slot_id if slot_id in SLOT_IDS else INVALID_SLOT
        self._counts[(hour_of(at), slot, provider_id or "", reason, int(status), bool(is_test))] += 1
        self.recent.add(at=at, slot_id=slot, reason=reason, status=status, is_test=is_test, client=client,
                        detail=detail)

    def __len__(self) -> int:
        return len(self._counts)

    def total(self) -> int:
        return sum(self._counts.values())

    def drain(self) -> list[tuple]:
        rows = [(*key, n) for key, n in self._counts.items()]
        self._counts.clear()
        return rows

    def put_back(self, rows: list[tuple]) -> None:
        for *key, n in rows:
            self._counts[tuple(key)] += n

    async def flush(self, db) -> int:
        """Write what was counted (one statement, and one for the recent refusals' record); on an
        outage keep it for the next flush."""
        await self.recent.flush(db)
        rows = self.drain()
        if not rows:
            return 0
        try:
            await db.execute("rollups_add_refused", rows=[
                {"hour": r[0].isoformat(), "slot_id": r[1], "provider_id": r[2], "reason": r[3], "status": r[4],
                 "is_test": r[5], "n": r[6]} for r in rows])
        except BaseException:
            self.put_back(rows)
            raise
        return sum(r[-1] for r in rows)

    def start(self, db, interval: float) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(db, interval), name="photoslot-rollup-flush")

    async def _run(self, db, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush(db)
            except DatabaseUnavailable as exc:
                event(log, "rollup_flush_deferred", logging.WARNING, keys=len(self), error=exc.__class__.__name__)

    async def stop(self, db) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush(db)


async def prune(db, cfg, now: dt.datetime) -> int:
    days = float(cfg.get("stats.rollup_retention_days"))
    if days <= 0:
        return 0
    return await db.execute("rollups_prune", cutoff=hour_of(now - dt.timedelta(days=days)))
