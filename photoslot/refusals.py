"""Recent refused requests — what a booth got and when — for the Statistics page's "Last failures".

The rollups (rollups.py) count refusals per hour; an admin looking for a failing booth also needs
*when* it was last refused, what it was told and from which address. Refusals are the most common
event-day fault (a booth with yesterday's password, a wrong slot URL, a provider down), and also
what a password-guessing flood produces by the thousand, so the record is built to stay small:

* in memory, one entry per slot × reason × status × test shot — the same bounded keys as the
  rollups' counter (unknown slot ids are `invalid`): a flood of 100,000 wrong passwords from
  10,000 addresses is one entry, its count, its first and last time and the last 5 addresses;
* written with the rollups' flush (`stats.flush_seconds`), one statement for all entries — never a
  statement per refused request — into `recent_refusals`, one row per key: an episode, restarted
  when the key was quiet for `EPISODE_GAP`;
* pruned by the sweeper `KEEP` after the episode's last refusal.
"""
from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass, field

from photoslot import SLOT_IDS

INVALID_SLOT = "invalid"
MAX_CLIENTS = 5       # addresses kept per entry (the newest)
MAX_DETAIL = 300
EPISODE_GAP = dt.timedelta(hours=1)  # quiet this long: the next refusal starts a new episode (SQL too)
KEEP = dt.timedelta(days=31)


@dataclass
class Entry:
    first_at: dt.datetime
    last_at: dt.datetime
    requests: int = 0
    clients: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_CLIENTS))
    detail: str | None = None


class RecentRefusals:
    """Refusals since the last flush, by key (bounded: see the module's note)."""

    def __init__(self) -> None:
        self._entries: dict[tuple, Entry] = {}

    def add(self, *, at: dt.datetime, slot_id: str, reason: str, status: int, is_test: bool = False,
            client: str | None = None, detail: str | None = None) -> None:
        key = (slot_id if slot_id in SLOT_IDS else INVALID_SLOT, reason, int(status), bool(is_test))
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Entry(first_at=at, last_at=at)
        entry.first_at, entry.last_at = min(entry.first_at, at), max(entry.last_at, at)
        entry.requests += 1
        if client:
            client = client[:64]
            if client in entry.clients:
                entry.clients.remove(client)
            entry.clients.append(client)
        if detail:
            entry.detail = detail[:MAX_DETAIL]

    def __len__(self) -> int:
        return len(self._entries)

    def drain(self) -> list[dict]:
        rows = [{"slot_id": k[0], "reason": k[1], "status": k[2], "is_test": k[3], "first_at": e.first_at.isoformat(),
                 "last_at": e.last_at.isoformat(), "n": e.requests, "clients": list(reversed(e.clients)),
                 "detail": e.detail} for k, e in self._entries.items()]
        self._entries.clear()
        return rows

    def put_back(self, rows: list[dict]) -> None:
        for r in rows:
            key = (r["slot_id"], r["reason"], r["status"], r["is_test"])
            first, last = dt.datetime.fromisoformat(r["first_at"]), dt.datetime.fromisoformat(r["last_at"])
            entry = self._entries.setdefault(key, Entry(first_at=first, last_at=last))
            entry.first_at, entry.last_at = min(entry.first_at, first), max(entry.last_at, last)
            entry.requests += r["n"]
            for client in reversed(r["clients"]):
                if client not in entry.clients:
                    entry.clients.appendleft(client)
            entry.detail = entry.detail or r["detail"]

    async def flush(self, db) -> int:
        """One statement for every entry; on an outage they are kept for the next flush."""
        rows = self.drain()
        if not rows:
            return 0
        try:
            await db.execute("refusals_remember", rows=rows)
        except BaseException:
            self.put_back(rows)
            raise
        return len(rows)


async def prune(db, now: dt.datetime) -> int:
    return await db.execute("refusals_prune", cutoff=now - KEEP)
