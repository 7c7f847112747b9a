"""The worker pool: N asyncio tasks that claim jobs and run each as an Attempt (worker/attempt.py).

Wake-ups come from LISTEN photoslot_job_new (a ~1 s poll is the fallback). A job finalized
elsewhere (ingest timed out, client gone) is noticed through photoslot_job_done and its provider
call is cancelled CANCEL_DELAY later (the 504s of windows ending together go out first); the
heartbeat catches the same thing if a notification is missed.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import socket
import uuid

from photoslot import jobs, provider_health
from photoslot.db import DatabaseUnavailable
from photoslot.logs import event
from photoslot.providers import catalogue
from photoslot.providers.registry import make_clients
from photoslot.worker.attempt import Attempt

log = logging.getLogger("photoslot.worker")

CANCEL_DELAY = 0.2  # seconds between a job finalized elsewhere and its provider call being stopped


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
        self._hints: dict[asyncio.Event, str | None] = {}  # the provider a notification named, per woken worker
        # Wake-ups that came while every worker was busy: the next worker to finish takes one
        # instead of waiting (a lost wake-up would leave a job to the 1 s ticker).
        # (at most one per provider — _claiming — and one blind look: it cannot grow)
        self._pending: collections.deque[str | None] = collections.deque()
        # One notified claim per provider at a time (_on_new/_claimed): when 50 windows end together,
        # their 50 "a slot is free" notifications cost one empty claim, not 50 at the same instant.
        self._seq: collections.Counter[str] = collections.Counter()   # notifications so far
        self._owed: collections.Counter[str] = collections.Counter()  # notifications no claim has answered
        self._claiming: set[str] = set()  # providers with a notified claim queued or running
        self._tasks: list[asyncio.Task] = []
        self._running: dict[str, asyncio.Task] = {}  # job id -> provider task
        self._finalizing: set[str] = set()  # jobs this pool is finalizing right now
        self._stopping = False
        if ctx.listener is not None:
            ctx.listener.subscribe(jobs.NEW_CHANNEL, self._on_new)
            ctx.listener.subscribe(jobs.DONE_CHANNEL, self._on_done)
            ctx.listener.on_reconnect(self._wake_all)
            # a provider back up (or a probe due) has jobs waiting that no job-new notification announces
            ctx.listener.subscribe(provider_health.CHANNEL, lambda _provider: self._wake_one())

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        for i in range(self.concurrency):
            ev = asyncio.Event()
            ev.set()
            self._wake.append(ev)
            self._tasks.append(asyncio.create_task(self._loop(i, ev), name=f"photoslot-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="photoslot-worker-ticker"))
        event(log, "workers_started", worker=self.worker_id, concurrency=self.concurrency)

    async def stop(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """Stop claiming; let running jobs finish for `grace` seconds (or until `hurry` is set); hand
        the rest back to the queue. Bounded by its caller (runtime.py runs it as a step of the stop)."""
        self._stopping = True
        self._wake_all()
        if self._running and grace > 0:
            event(log, "workers_draining", worker=self.worker_id, running=len(self._running), grace_s=grace)
            loop = asyncio.get_running_loop()
            end = loop.time() + grace
            hurried = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
            try:
                while self._running and not (hurried is not None and hurried.done()):
                    remaining = end - loop.time()
                    if remaining <= 0:
                        break
                    await asyncio.wait({*self._running.values(), *([hurried] if hurried else [])},
                                       timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if hurried is not None:
                    hurried.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self.clients.values():
            await client.close()
        event(log, "workers_stopped", worker=self.worker_id)

    def busy(self) -> list[asyncio.Task]:
        """The pool's tasks that have not ended (a stop that is cut off names them)."""
        return [t for t in self._tasks if not t.done()]

    def _wake_one(self, provider_id: str | None = None) -> None:
        """One notification, one idle worker: waking all of them for every enqueued or finished job
        makes N workers race for one row (a claim-query storm when many deadlines end together).
        A notification names its provider: the worker claims that one only (one statement)."""
        while self._idle:
            ev = self._idle.popleft()
            if not ev.is_set():
                self._hints[ev] = provider_id
                ev.set()
                return
        if provider_id is not None or None not in self._pending:
            self._pending.append(provider_id)

    def _on_new(self, provider_id: str) -> None:
        if provider_id not in catalogue.CATALOGUE:
            self._wake_one()
            return
        self._seq[provider_id] += 1
        self._owed[provider_id] += 1
        if provider_id not in self._claiming:
            self._claiming.add(provider_id)
            self._wake_one(provider_id)

    def _claimed(self, provider_id: str, job: dict | None, seq_at_start: int) -> None:
        """A notified claim is done: a job answers one notification; none answers every notification
        that came before the claim looked (the queue had nothing more for them). Those that came
        meanwhile get the next claim."""
        if job is not None:
            self._owed[provider_id] = max(0, self._owed[provider_id] - 1)
        else:
            self._owed[provider_id] = min(self._owed[provider_id], self._seq[provider_id] - seq_at_start)
        if self._owed[provider_id] > 0:
            self._wake_one(provider_id)
        else:
            self._claiming.discard(provider_id)

    def _wake_all(self) -> None:
        for ev in self._wake:
            ev.set()

    def _on_done(self, job_id: str) -> None:
        if job_id in self._finalizing:
            return  # our own finalization's notification: nothing to stop
        if job_id in self._running:
            # Stopped a moment later, not at once: the notification comes when an ingest gave up at
            # its window's end, and when many windows end together their 504s must leave first —
            # tearing down the provider calls (and reporting them to the provider health) can wait.
            asyncio.get_running_loop().call_later(CANCEL_DELAY, self._cancel_finalized, job_id)

    def _cancel_finalized(self, job_id: str) -> None:
        task = self._running.get(job_id)
        if task is not None and not task.done():
            task.cancel(msg="finalized-elsewhere")

    # ---------------------------------------------------------------- claim loop

    async def _loop(self, index: int, wake: asyncio.Event) -> None:
        every = list(catalogue.CATALOGUE)
        hint: str | None = None  # None: look at every provider (start, ticker, reconnect)
        while not self._stopping:
            wake.clear()
            job = None
            try:
                if hint:
                    seq = self._seq[hint]
                    job = await self._claim(hint)
                    self._claimed(hint, job, seq)
                else:
                    for provider_id in random.sample(every, len(every)):
                        job = await self._claim(provider_id)
                        if job is not None:
                            break
            except DatabaseUnavailable as exc:
                event(log, "claim_failed", logging.WARNING, worker=self.worker_id, error=exc)
                await asyncio.sleep(1.0)
                continue
            if job is not None:
                if hint is None:
                    self._wake_one()  # a blind look found work: there may be more, let a colleague look too
                await self._execute(job)
                # No claim of our own now: every finished job notifies (a provider slot is free), and
                # that notification wakes the one worker that claims the next job, if there is one.
            if self._pending:
                hint = self._pending.popleft()
                continue
            self._idle.append(wake)
            try:
                await wake.wait()
            finally:
                with contextlib.suppress(ValueError):
                    self._idle.remove(wake)
            hint = self._hints.pop(wake, None)

    async def _claim(self, provider_id: str) -> dict | None:
        """A job of this provider — unless it is down (photoslot/health_rule.py): then none while it
        cools down, and after that only the one job that wins the probe; a job claimed and then
        beaten to the probe by another process goes back to the queue."""
        ctx = self.ctx
        mode = ctx.health.claimable(provider_id, ctx.clock.now())
        if mode is None:
            return None
        job = await jobs.claim(ctx.db, provider_id=provider_id, worker_id=self.worker_id, now=ctx.clock.now(),
                               lease_seconds=self.lease,
                               max_parallel=int(self.cfg.get(f"providers.{provider_id}.max_parallel")))
        if job is None or mode == "yes":
            return job
        if await provider_health.take_probe(ctx, provider_id, job["id"]):
            return job
        await jobs.release(ctx.db, job_id=job["id"], worker_id=self.worker_id, now=ctx.clock.now())
        return None

    async def _ticker(self) -> None:
        """The fallback for a missed NOTIFY (or poll-only mode): one idle worker looks every
        poll interval. One per process, not one per worker: 64 idle workers polling each second
        cost a noticeable share of a studio PC's CPU."""
        while not self._stopping:
            await asyncio.sleep(self._tick_interval())
            self._wake_one()

    def _tick_interval(self) -> float:
        """poll_interval_seconds without notifications (or while the listener is reconnecting).
        With them, every job's arrival and end wake a worker already, and a reconnect wakes them
        all: the blind look is then only for a job whose worker died (its lease runs out
        unannounced), and half a lease is soon enough for that — an idle server is not woken
        for a claim (one statement per provider) every second."""
        listener = self.ctx.listener
        if listener is None or not listener.connected.is_set():
            return self.poll
        return max(self.poll, self.lease / 2)

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
        attempt = Attempt(ctx, self.clients.get(job["provider_id"]), job, finalizing=self._finalizing)
        task = asyncio.create_task(attempt.run(deadline))
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
