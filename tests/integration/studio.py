"""An in-process studio for integration tests: the real aiohttp app, worker pool and database,
on a loopback port, with an injected clock. Nothing of ours is replaced."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid

import aiohttp
from aiohttp import web

from photoslot import jobs, media
from photoslot import settings as live_settings
from photoslot import slots
from photoslot.clock import ManualClock
from photoslot.context import AppContext
from photoslot.server.app import build_app
from photoslot.server.connection_guard import make_runner
from photoslot.worker.pool import WorkerPool
from tests.conftest import FIXTURES, INGEST_PASSWORD, free_port


class Studio:
    def __init__(self, cfg, dsn: str, *, workers: int = 4) -> None:
        self.cfg = cfg
        self.dsn = dsn
        self.workers = workers
        self.clock = ManualClock()
        self.shutdown = asyncio.Event()

    async def __aenter__(self) -> "Studio":
        self.ctx = await AppContext.open(self.cfg, clock=self.clock, dsn=self.dsn, listen=True)
        self.pool = WorkerPool(self.ctx, self.workers, name="test") if self.workers else None
        await self.ctx.start_listener()
        self.app = build_app(self.ctx, shutdown=self.shutdown)
        self.runner = make_runner(self.app, self.cfg)  # as `serve` runs it: connection guard included
        await self.runner.setup()
        port = free_port()
        self.site = web.TCPSite(self.runner, "127.0.0.1", port)
        await self.site.start()
        self.base_url = f"http://127.0.0.1:{port}"
        if not self.cfg.get("server.public_base_url"):  # public links (Turbotext) must reach this studio
            self.cfg.set("server.public_base_url", self.base_url)
        if self.pool:
            self.pool.start()
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        if self.pool:
            await self.pool.stop(grace=0)
        await self.runner.cleanup()
        await self.ctx.close()

    async def set_password(self, password: str = INGEST_PASSWORD) -> None:
        await live_settings.update(self.ctx.db, self.cfg, self.clock, actor="test", source="test",
                                   ingest_password=password)

    async def configure(self, slot_id: str = "slot-001", prompt: str = "turn the photo sepia", **settings) -> dict:
        return await slots.configure(self.ctx.db, self.clock, slot_id, actor="test", source="test",
                                     provider_id="gemini", operation_id="image_edit",
                                     settings_json={"prompt": prompt, **settings})

    async def ingest(self, slot_id: str, data: bytes | None, *, password: str | None = INGEST_PASSWORD,
                     field: str = "fileToUpload", content_type: str = "image/jpeg", extra: dict | None = None,
                     timeout: float = 30):
        form = aiohttp.FormData()
        if password is not None:
            form.add_field("password", password)
        for k, v in (extra or {}).items():
            form.add_field(k, v)
        if data is not None:
            form.add_field(field, data, filename="IMG_0001.JPG", content_type=content_type)
        async with self.http.post(f"{self.base_url}/ingest/{slot_id}", data=form,
                                  timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.read()
            return resp.status, dict(resp.headers), body

    async def queue_job(self, slot_id: str = "slot-001", *, created_ago: float = 0.0, window: float = 30.0,
                        photo: str = "small_photo.png", data: bytes | None = None,
                        slot: dict | None = None) -> uuid.UUID:
        """A job queued the way an ingest queues it — the upload on disk under its sniffed type, the
        row by jobs.enqueue with the slot's snapshot — but with no ingest waiting for its answer.
        `created_ago` and `window` place it in time on the studio clock; `slot` overrides the
        snapshot (a provider the slot is not configured with)."""
        data = (FIXTURES / photo).read_bytes() if data is None else data
        mime = media.sniff_mime(data[:16])
        job_id = jobs.new_job_id()
        upload = self.ctx.media.upload_path(job_id, mime)
        upload.write_bytes(data)
        created = self.clock.now() - dt.timedelta(seconds=created_ago)
        slot = slot or await self.ctx.db.fetchone("ingest_context", slot_id=slot_id)
        await jobs.enqueue(self.ctx.db, job_id=job_id, slot=slot, now=created,
                           expires_at=created + dt.timedelta(seconds=window), upload_path=str(upload),
                           upload_mime=mime, upload_size=len(data), metadata={})
        return job_id

    async def job(self, job_id) -> dict:
        return await self.ctx.db.fetchone("job_get", job_id=job_id)

    async def wait_job(self, job_id, predicate, timeout: float = 10) -> dict:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            job = await self.job(job_id)
            if predicate(job) or loop.time() > end:
                return job
            await asyncio.sleep(0.05)

    def files(self, kind: str) -> list:
        folder = getattr(self.ctx.media, kind)
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@contextlib.asynccontextmanager
async def studio(cfg, dsn, **kw):
    async with Studio(cfg, dsn, **kw) as s:
        yield s
