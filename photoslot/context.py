"""Everything a process needs, opened once: config, clock, database, media store, listener.

`serve`, `work`, the CLI and the tests all build one of these; nothing reaches for globals.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from dataclasses import dataclass, field

from photoslot import db as dbmod
from photoslot import jobs, public_address, rollups
from photoslot import settings as live_settings
from photoslot.provider_health import CHANNEL as HEALTH_CHANNEL
from photoslot.provider_health import HealthBoard
from photoslot.clock import SystemClock
from photoslot.media import MediaStore


def use_selector_loop_on_windows() -> None:
    """aiopg (psycopg2's async mode) needs the selector event loop; Windows defaults to proactor."""
    if sys.platform == "win32":
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())  # type: ignore[attr-defined]


@dataclass
class AppContext:
    cfg: object
    clock: object
    db: dbmod.Database
    media: MediaStore
    listener: dbmod.Listener | None = None
    waiters: jobs.DoneWaiters = field(default_factory=jobs.DoneWaiters)
    health: HealthBoard = field(default_factory=HealthBoard)  # every provider's health, this process's copy
    refusals: rollups.Tally = field(default_factory=rollups.Tally)  # refused ingests, counted until the next flush
    _address_poll: asyncio.Task | None = None
    # Bumped by NOTIFY photoslot_ingest_password (and a listener reconnect): the ingest's copy of the
    # password record is read again (passwords.IngestPasswordCheck).
    ingest_password_version: int = 0

    def ingest_password_changed(self, _payload: str = "") -> None:
        self.ingest_password_version += 1

    @classmethod
    async def open(cls, cfg, *, clock=None, dsn: str | None = None, listen: bool = False) -> "AppContext":
        # A long-running process (listen=True) has its embedded PostgreSQL watched: stopped even when it is killed.
        dsn = dsn or await asyncio.to_thread(functools.partial(dbmod.resolve_dsn, cfg, watch=listen))
        database = await dbmod.connect(dsn, pool_size=int(cfg.get("database.pool_size")),
                                       synchronous_commit=bool(cfg.get("database.synchronous_commit")))
        media = MediaStore(cfg.media_root)
        media.ensure()
        ctx = cls(cfg=cfg, clock=clock or SystemClock(), db=database, media=media)
        if hasattr(cfg, "served_base_url") and not cfg.get("server.public_base_url"):
            cfg.served_base_url = await live_settings.served_base_url(database)  # links follow `serve --port`
        if hasattr(cfg, "live_public_base_url"):
            await public_address.load(database, cfg)  # the public address saved on the Settings page
        if listen and cfg.get("workers.notify"):
            ctx.listener = dbmod.Listener(dsn)
            ctx.listener.subscribe(jobs.DONE_CHANNEL, ctx.waiters.notify)
            ctx.listener.on_reconnect(ctx.waiters.wake_all)
            ctx.listener.subscribe(HEALTH_CHANNEL, lambda _provider: ctx.health.changed(ctx.db))
            ctx.listener.on_reconnect(lambda: ctx.health.changed(ctx.db))
            ctx.listener.subscribe(public_address.CHANNEL, lambda _key: ctx._refresh_address())
            ctx.listener.on_reconnect(ctx._refresh_address)
            ctx.listener.subscribe(live_settings.PASSWORD_CHANNEL, ctx.ingest_password_changed)
            ctx.listener.on_reconnect(ctx.ingest_password_changed)
        return ctx

    async def start_listener(self) -> None:
        """The long-running processes' start: notifications, and the provider health copy (loaded
        now, then kept fresh by its notification and a cheap poll)."""
        if self.listener is not None:
            await self.listener.start()
        await self.health.refresh(self.db)
        self.health.start(self.db)
        self.refusals.start(self.db, float(self.cfg.get("stats.flush_seconds")))
        if self._address_poll is None and hasattr(self.cfg, "live_public_base_url"):
            self._address_poll = asyncio.create_task(public_address.keep_fresh(self), name="photoslot-public-address")

    def _refresh_address(self) -> None:
        """The public address changed (NOTIFY) or the listener reconnected: read it again."""
        asyncio.ensure_future(public_address.refresh(self))

    async def close(self, timeout: float = 5) -> None:
        """`timeout`: how long connections still in use may take to come back (a stop is bounded)."""
        await self.health.stop()
        if self._address_poll is not None:
            self._address_poll.cancel()
            with contextlib.suppress(BaseException):
                await self._address_poll
        await self.refusals.stop(self.db)  # the last refusals counted are written before the pool closes
        if self.listener is not None:
            await self.listener.stop()
        await self.db.close(timeout)
