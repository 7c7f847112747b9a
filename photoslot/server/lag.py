"""How late the event loop is running right now.

The ingest promises an answer within T_sync_response of the request's *arrival*. When the loop
is busy (many uploads at once on a 2-core PC) two things slip by about the loop's lag: the
handler starts after the request arrived, and the deadline timer fires after it was due. Taking
the current lag off both keeps the 504 inside the window under load, while an idle server
(lag ≈ 0) answers at T − deadline_margin_ms exactly as before. The probe runs only while shots
are in flight (and a little after): an idle server is not woken 50 times a second.
"""
from __future__ import annotations

import asyncio
import contextlib


class LagMonitor:
    TICK = 0.02      # seconds between probes near a deadline, or while the loop is late
    CALM_TICK = 0.1  # otherwise: a shot waiting 2 s on its provider is not worth 100 wake-ups
    CALM_LAG = 0.005
    DECAY = 0.9      # per tick: a spike is forgotten within ~0.5 s of calm
    CAP = 0.25       # never react more than this early: the window must stay usable
    LINGER = 2.0     # probing goes on this long after the last shot; an idle server is not probed

    def __init__(self, busy=lambda: True, urgent=lambda: True) -> None:
        self._lag = 0.0
        self._task: asyncio.Task | None = None
        self._busy = busy  # whether shots are in flight (the ingest's count)
        self._urgent = urgent  # whether a waiting shot's window ends soon (the fine probe is needed)
        self._enabled = False

    @property
    def seconds(self) -> float:
        return min(self._lag, self.CAP)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        quiet_since = None
        while True:
            tick = self.TICK if self._lag > self.CALM_LAG or self._urgent() else self.CALM_TICK
            due = loop.time() + tick
            await asyncio.sleep(tick)
            now = loop.time()
            late = max(0.0, now - due)
            # keep the recent maximum: the deadline must survive the next spike, not the average
            self._lag = max(late, self._lag * self.DECAY ** (tick / self.TICK))
            if self._busy():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > self.LINGER:
                # 50 wake-ups a second cost an idle server about a percent of a core: stop until
                # the next shot (an idle loop has no lag to measure; the figure starts again at 0)
                self._lag = 0.0
                self._task = None
                return

    def start(self) -> None:
        """Allow probing; it runs while shots are in flight (wake() at each one's arrival)."""
        self._enabled = True
        self.wake()

    def wake(self) -> None:
        if self._enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="photoslot-loop-lag")

    async def stop(self) -> None:
        self._enabled = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
