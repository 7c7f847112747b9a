"""The worker pool: N asyncio tasks that claim jobs, run the provider, and finalize.

Wake-ups come from LISTEN photoslot_job_new (a ~1 s poll is the fallback). A job finalized
elsewhere (ingest timed out, client gone) is noticed through photoslot_job_done and its provider
call is cancelled at once; the heartbeat catches the same thing if a notification is missed.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import socket
import time
import uuid

from photoslot import jobs, media, metrics, public_media, quotas, templates
from photoslot.errors import NotFound
from photoslot.db import DatabaseUnavailable
from photoslot.logs import event
from photoslot.providers import catalogue
from photoslot.providers.base import ProviderFailure, ProviderInput
from photoslot.providers.registry import make_clients, use_stored_key

log = logging.getLogger("photoslot.worker")


class _FinalizedElsewhere(Exception):
    pass


class WorkerPool:
    def __init__(self, ctx, concurrency: int, *, name: str = "worker") -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.concurrency = concurrency
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{name}:{uuid.uuid4().hex[:6]}"
        self.clients = make_clients(ctx.cfg)
        self.lease = float(self.cfg.get("workers.lease_seconds"))
        self.heartbeat_every = float(self.cfg.get("workers.heartbeat_seconds"))
        self.poll = float(self.cfg.get("workers.poll_interval_seconds"))
        self._wake: list[asyncio.Event] = []
        self._idle: collections.deque[asyncio.Event] = collections.deque()  # workers waiting for work
        self._tasks: list[asyncio.Task] = []
        self._running: dict[str, asyncio.Task] = {}  # job id -> provider task
        self._finalizing: set[str] = set()  # jobs this pool is finalizing right now
        self._stopping = False
        if ctx.listener is not None:
            ctx.listener.subscribe(jobs.NEW_CHANNEL, lambda _payload: self._wake_one())
            ctx.listener.subscribe(jobs.DONE_CHANNEL, self._on_done)
            ctx.listener.on_reconnect(self._wake_all)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        for i in range(self.concurrency):
            ev = asyncio.Event()
            ev.set()
            self._wake.append(ev)
            self._tasks.append(asyncio.create_task(self._loop(i, ev), name=f"photoslot-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="photoslot-worker-ticker"))
        event(log, "workers_started", worker=self.worker_id, concurrency=self.concurrency)

    @property
    def busy(self) -> int:
        return len(self._running)

    async def stop(self, grace: float) -> None:
        """Stop claiming; let running jobs finish for `grace` seconds; hand the rest back to the queue."""
        self._stopping = True
        self._wake_all()
        if self._running:
            event(log, "workers_draining", worker=self.worker_id, running=len(self._running), grace_s=grace)
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self.clients.values():
            await client.close()
        event(log, "workers_stopped", worker=self.worker_id)

    def _wake_one(self) -> None:
        """One notification, one idle worker: waking all of them for every enqueued or finished job
        makes N workers race for one row (a claim-query storm when many deadlines end together)."""
        while self._idle:
            ev = self._idle.popleft()
            if not ev.is_set():
                ev.set()
                return

    def _wake_all(self) -> None:
        for ev in self._wake:
            ev.set()

    def _on_done(self, job_id: str) -> None:
        if job_id in self._finalizing:
            return  # our own finalization's notification: nothing to stop
        task = self._running.get(job_id)
        if task is not None and not task.done():
            task.cancel(msg="finalized-elsewhere")

    # ---------------------------------------------------------------- claim loop

    async def _loop(self, index: int, wake: asyncio.Event) -> None:
        providers = list(catalogue.CATALOGUE)
        while not self._stopping:
            wake.clear()
            job = None
            try:
                random.shuffle(providers)
                for provider_id in providers:
                    job = await jobs.claim(
                        self.ctx.db, provider_id=provider_id, worker_id=self.worker_id, now=self.ctx.clock.now(),
                        lease_seconds=self.lease, max_parallel=int(self.cfg.get(f"providers.{provider_id}.max_parallel")),
                    )
                    if job is not None:
                        break
            except DatabaseUnavailable as exc:
                event(log, "claim_failed", logging.WARNING, worker=self.worker_id, error=exc)
                await asyncio.sleep(1.0)
                continue
            if job is None:
                self._idle.append(wake)
                try:
                    await wake.wait()
                finally:
                    with contextlib.suppress(ValueError):
                        self._idle.remove(wake)
                continue
            self._wake_one()  # there may be more waiting: let one idle colleague look too
            await self._execute(job)

    async def _ticker(self) -> None:
        """The fallback for a missed NOTIFY (or poll-only mode): one idle worker looks every
        poll interval. One per process, not one per worker: 64 idle workers polling each second
        cost a noticeable share of a studio PC's CPU."""
        while not self._stopping:
            await asyncio.sleep(self.poll)
            self._wake_one()

    # ---------------------------------------------------------------- one job

    async def _execute(self, job: dict) -> None:
        job_id = str(job["id"])
        ctx = self.ctx
        now = ctx.clock.now()
        remaining = (job["expires_at"] - now).total_seconds()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + remaining
        event(log, "job_processing", job=job_id, slot=job["slot_id"], provider=job["provider_id"],
              operation=job["operation_id"], attempt=job["attempts"], worker=self.worker_id,
              queue_wait_ms=int((now - job["created_at"]).total_seconds() * 1000), remaining_ms=int(remaining * 1000))
        task = asyncio.create_task(self._run_provider(job, deadline))
        self._running[job_id] = task
        beat = asyncio.create_task(self._heartbeat(job_id, task))
        try:
            # asyncio.wait, not shield: the provider task being cancelled (job finalized elsewhere)
            # must not look like this loop being cancelled (pool stopping).
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # The pool is stopping past its grace period: stop the call and hand the job back.
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(Exception):
                if await jobs.release(ctx.db, job_id=job["id"], worker_id=self.worker_id, now=ctx.clock.now()):
                    event(log, "job_released", job=job_id, slot=job["slot_id"], worker=self.worker_id)
            raise
        finally:
            beat.cancel()
            self._running.pop(job_id, None)
            self._finalizing.discard(job_id)

    async def _heartbeat(self, job_id: str, task: asyncio.Task) -> None:
        while not task.done():
            await asyncio.sleep(self.heartbeat_every)
            try:
                alive = await jobs.heartbeat(self.ctx.db, job_id=job_id, worker_id=self.worker_id,
                                             now=self.ctx.clock.now(), lease_seconds=self.lease)
            except DatabaseUnavailable:
                continue
            if not alive and not task.done() and job_id not in self._finalizing:
                task.cancel(msg="finalized-elsewhere")

    async def _run_provider(self, job: dict, deadline: float) -> None:
        ctx = self.ctx
        job_id = job["id"]
        started = time.monotonic()
        fields = dict(job=str(job_id), slot=job["slot_id"], provider=job["provider_id"], attempt=job["attempts"])
        settings = job["slot_settings"] or {}
        requests = 0

        links: list[str] = []  # public links made for this job (Turbotext); closed before finalizing

        async def on_request() -> None:
            nonlocal requests
            # Quotas count every request, retries included; a spent one ends the job before sending.
            await quotas.take(ctx.db, self.cfg, job["provider_id"], ctx.clock.now())
            requests += 1
            await jobs.record_provider(ctx.db, job_id=job_id, now=ctx.clock.now(), requests=1)

        async def on_poll() -> None:
            await jobs.record_provider(ctx.db, job_id=job_id, now=ctx.clock.now(), polls=1)

        async def on_reference(reference: str) -> None:
            await jobs.record_provider(ctx.db, job_id=job_id, now=ctx.clock.now(), reference=reference)
            event(log, "job_queued_at_provider", **fields, queueid=reference)

        async def close_links() -> None:
            if links:
                links.clear()
                await public_media.expire_for_job(ctx, job_id)

        async def fail(reason: str, detail: str, answer_status: int | None = None) -> None:
            # Remove the upload before the finalizing UPDATE: its NOTIFY lets the ingest answer at
            # once, and the booth must never see an answer while the photo is still on disk.
            ctx.media.remove(job["upload_path"])
            with contextlib.suppress(DatabaseUnavailable):
                await close_links()
            self._finalizing.add(str(job_id))
            row = await jobs.finalize_failure(ctx.db, ctx.media, job_id=job_id, now=ctx.clock.now(), reason=reason,
                                              detail=detail, answer_status=answer_status)
            if row is None:
                event(log, "late_outcome_discarded", **fields, outcome=reason)
            else:
                event(log, "job_failed", logging.WARNING, **fields, reason=reason, detail=detail, requests=requests,
                      provider_ms=int((time.monotonic() - started) * 1000), **_provider_fields(row, job))

        try:
            client = self.clients.get(job["provider_id"])
            if client is None:
                await fail("internal_error", f"provider {job['provider_id']!r} is not available in this version")
                return
            await use_stored_key(client, ctx.db, ctx.cfg, job["provider_id"])
            image, mime = await asyncio.to_thread(media.prepare_for_provider, job["upload_path"], job["upload_mime"])
            data = ProviderInput(image=image, mime=mime, prompt=settings.get("prompt") or "",
                                 params=catalogue.effective_params(job["provider_id"], job["operation_id"],
                                                                   settings.get("params")))
            try:
                await self._attach_templates(job, data, settings, links)
            except NotFound as exc:
                await fail("internal_error", exc.message)
                return
            call_started = time.monotonic()
            result = await client.run(job["operation_id"], data, deadline=deadline, on_request=on_request,
                                      on_poll=on_poll, on_reference=on_reference)
            provider_ms = int((time.monotonic() - call_started) * 1000)
            metrics.safe(metrics.of(ctx).observe_provider, job["provider_id"], "ok", provider_ms / 1000, requests)
            try:
                body, out_mime = await asyncio.to_thread(media.encode_output, result.image,
                                                         settings.get("output_format", "jpeg"))
            except media.InvalidImage as exc:
                await fail("invalid_result", str(exc), 502)
                return
            path = ctx.media.result_path(job_id, out_mime)
            try:
                await asyncio.to_thread(path.write_bytes, body)
            except OSError as exc:  # media disk full / read-only: no partial result stays behind
                ctx.media.remove(path)
                await fail("internal_error", f"cannot store the result on the media disk: {exc.strerror or exc}", 503)
                return
            ctx.media.remove(job["upload_path"])  # before the UPDATE, as in fail() above
            await close_links()
            self._finalizing.add(str(job_id))
            row = await jobs.finalize_success(
                ctx.db, ctx.media, job_id=job_id, now=ctx.clock.now(), result_path=str(path), mime=out_mime,
                size=len(body), checksum=media.sha256_hex(body),
                default_retention_hours=float(ctx.cfg.get("results.retention_hours")),
                response_id=result.response_id, tokens=result.tokens, provider_ms=provider_ms)
            if row is None:
                ctx.media.remove(path)
                event(log, "late_result_discarded", **fields, provider_ms=provider_ms)
            else:
                event(log, "job_succeeded", **fields, provider_ms=provider_ms, requests=requests,
                      bytes=len(body), mime=out_mime, **_provider_fields(row, job))
        except ProviderFailure as exc:
            metrics.safe(metrics.of(ctx).observe_provider, job["provider_id"], exc.reason,
                         time.monotonic() - started, requests)
            await fail(exc.reason, exc.detail, exc.answer_status)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            metrics.safe(metrics.of(ctx).observe_provider, job["provider_id"], "timeout",
                         time.monotonic() - started, requests)
            # The ingest answers 504 at the deadline and finalizes; the sweeper is the backstop.
            event(log, "job_deadline_reached", **fields, requests=requests, last=str(exc) or "provider call cut off")
        except asyncio.CancelledError:
            event(log, "job_abandoned", **fields, requests=requests,
                  why="finalized elsewhere or worker stopping")
            raise
        except FileNotFoundError:
            event(log, "job_input_gone", logging.WARNING, **fields,
                  why="upload already removed (job finalized elsewhere)")
        except DatabaseUnavailable as exc:
            event(log, "job_db_unavailable", logging.ERROR, **fields, error=exc)
        except Exception as exc:  # a bug: finalize so the booth is answered, keep the traceback in the log
            log.exception("job %s crashed in the worker", job_id)
            with contextlib.suppress(Exception):
                await fail("internal_error", f"{exc.__class__.__name__} in worker")
        finally:
            if links:  # deadline, cancellation, lost database: links never outlive the attempt
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(close_links())

    async def _attach_templates(self, job: dict, data: ProviderInput, settings: dict, links: list[str]) -> None:
        """Templates of the job's snapshot: inline bytes, or public links for a provider that fetches
        by URL (then the upright photo gets a link too)."""
        ctx = self.ctx
        rows = await templates.load_for_job(ctx.db, settings)
        client = self.clients[job["provider_id"]]
        if getattr(client, "needs_public_links", False):
            made = await public_media.register(ctx, data=data.image, mime=data.mime, job_id=job["id"], kind="photo")
            links.append(made["id"])
            data.urls["photo"] = made["public_url"]
            for role, row in rows.items():
                try:
                    made = await public_media.register(ctx, path=row["file_path"], mime=row["mime"],
                                                       job_id=job["id"], kind="template")
                except FileNotFoundError:
                    raise NotFound(f"the {role!r} template file {row['id']} is missing from the media root") from None
                links.append(made["id"])
                data.urls[role] = made["public_url"]
            return
        for role, row in rows.items():
            try:
                data.templates[role] = await asyncio.to_thread(media.prepare_for_provider, row["file_path"], row["mime"])
            except FileNotFoundError:
                raise NotFound(f"the {role!r} template file {row['id']} is missing from the media root") from None


def _provider_fields(row: dict, job: dict) -> dict:
    """Log fields from the finalized row: Turbotext queueid, polls, time since the ingest arrived."""
    total = row.get("finalized_at") and job.get("created_at") and row["finalized_at"] - job["created_at"]
    return {"queueid": row.get("provider_job_reference"), "polls": row.get("poll_count"),
            "total_ms": int(total.total_seconds() * 1000) if total else None}
