"""How late the event loop is running right now.

The ingest promises an answer within T_sync_response of the request's *arrival*. When the loop
is busy (many uploads at once on a 2-core PC) two things slip by about the loop's lag: the
handler starts after the request arrived, and the deadline timer fires after it was due. Taking
the current lag off both keeps the 504 inside the window under load, while an idle server
(lag ≈ 0) answers at T − deadline_margin_ms exactly as before.
"""
from __future__ import annotations

import asyncio
import contextlib


class LagMonitor:
    TICK = 0.02      # seconds between probes
    DECAY = 0.9      # per tick: a spike is forgotten within ~0.5 s of calm
    CAP = 0.25       # never react more than this early: the window must stay usable

    def __init__(self) -> None:
        self._lag = 0.0
        self._task: asyncio.Task | None = None

    @property
    def seconds(self) -> float:
        return min(self._lag, self.CAP)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.TICK
            await asyncio.sleep(self.TICK)
            late = max(0.0, loop.time() - due)
            # keep the recent maximum: the deadline must survive the next spike, not the average
            self._lag = max(late, self._lag * self.DECAY)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="photoslot-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
