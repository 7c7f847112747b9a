"""The one clock every deadline and TTL reads.

Production uses `SystemClock`. Tests inject a `ManualClock` and move it forward instead of
sleeping. SQL never calls `now()` for a rule that expires something: the time is passed in from
here, so a moved clock moves every rule at once.
"""
from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class ManualClock:
    """Real time plus an offset the test controls (so short real waits still pass)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset = dt.timedelta(seconds=offset_seconds)

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
