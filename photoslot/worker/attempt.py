"""One claimed job on one worker: prepare the input, call the provider, store the result, finalize.

Stages, each a method: `_prepare` (the key from the live settings, the upright photo, the
catalogue's parameters, the templates — as bytes, or as public links for a provider that fetches
by URL), `_call` (the provider, under the job's absolute deadline), `_store` (the result file),
`_succeed` / `fail` (the finalizing UPDATE). Whatever happens, the job's public links are closed
before it is finalized and never outlive the attempt (docs/ARCHITECTURE.md "Finalization").
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from photoslot import jobs, media, metrics, provider_health, public_media, quotas, templates
from photoslot import settings as live_settings
from photoslot.db import DatabaseUnavailable
from photoslot.errors import NotFound
from photoslot.logs import event
from photoslot.providers import catalogue
from photoslot.health_rule import describe, timed_out
from photoslot.providers.base import Problems, ProviderClient, ProviderFailure, ProviderInput, ProviderResult

log = logging.getLogger("photoslot.worker")

CALL_TIMEOUT_SLACK = 1.0  # a call still open this close to the deadline when the job ends counts as timed out
_reports: set[asyncio.Task] = set()  # health reports made while the attempt itself is being cancelled


_NOT_READ = object()


def _in_background(coro) -> None:
    """A report that must run to its end even while the attempt is being cancelled."""
    task = asyncio.ensure_future(coro)
    _reports.add(task)
    task.add_done_callback(_reports.discard)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class Attempt:
    def __init__(self, ctx, client: ProviderClient | None, job: dict, *, finalizing: set[str]) -> None:
        self.ctx = ctx
        self.client = client
        self.stored_key = job.pop("provider_key_stored", _NOT_READ)  # sealed; kept off the job's dict
        self.job = job
        self.job_id = job["id"]
        self.settings = job["slot_settings"] or {}
        self.finalizing = finalizing  # the pool's: its own finalization's NOTIFY must not cancel the job
        self.started = time.monotonic()
        self.requests = 0
        self.links: list[str] = []  # public links made for this job (Turbotext); closed before finalizing
        self.problems = Problems(job["provider_id"])  # the failed calls, for the job's failure_detail
        self.in_call = False  # a request is out and its outcome not reported yet
        self.reported = False  # an outcome of this job's calls went into the provider's health
        self.sent_at = 0.0    # loop time the last request went out
        self.deadline = float("inf")
        self.fields = dict(job=str(job["id"]), slot=job["slot_id"], provider=job["provider_id"],
                           attempt=job["attempts"])

    async def run(self, deadline: float) -> None:
        """The whole attempt; `deadline` is the job's expires_at in event-loop time. Nothing but a
        cancellation leaves it: the pool waits for it without reading its outcome."""
        try:
            await self._run(deadline)
        except DatabaseUnavailable as exc:
            # lost while reporting a failure, a timeout or a crash (the handlers below talk to the
            # database too): the lease runs out and the job is claimed again or ended by the sweeper
            event(log, "job_db_unavailable", logging.ERROR, **self.fields, error=exc)
        finally:
            if not self.reported and self.ctx.health.get(self.job["provider_id"]).probe_job == str(self.job_id):
                # the probe ends with no word on the provider: free for the next job now (a task:
                # this may be a cancellation)
                _in_background(provider_health.hand_back_probe(self.ctx, self.job["provider_id"], self.job_id))

    async def _run(self, deadline: float) -> None:
        job = self.job
        self.deadline = deadline
        try:
            data = await self._prepare()
            if data is None:
                return
            result, provider_ms = await self._call(data, deadline)
            stored = await self._store(result)
            if stored is not None:
                await self._succeed(result, provider_ms, *stored)
        except ProviderFailure as exc:
            self._observe(exc.reason, time.monotonic() - self.started)
            await self.fail(exc.reason, exc.detail, exc.answer_status)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            self._observe("timeout", time.monotonic() - self.started)
            if self._call_timed_out():
                await self._on_health(False, "no answer before the job's deadline")
            # The ingest answers 504 at the deadline and finalizes; the sweeper is the backstop.
            event(log, "job_deadline_reached", **self.fields, requests=self.requests,
                  last=str(exc) or "provider call cut off")
        except asyncio.CancelledError:
            if asyncio.get_running_loop().time() >= self.deadline - CALL_TIMEOUT_SLACK and self._call_timed_out():
                # The ingest ended the job at its deadline with our call still open: a call timeout.
                self.reported = True
                _in_background(self._on_health(False, "no answer before the job's deadline"))
            event(log, "job_abandoned", **self.fields, requests=self.requests,
                  why="finalized elsewhere or worker stopping")
            raise
        except FileNotFoundError:
            event(log, "job_input_gone", logging.WARNING, **self.fields,
                  why="upload already removed (job finalized elsewhere)")
        except DatabaseUnavailable as exc:
            event(log, "job_db_unavailable", logging.ERROR, **self.fields, error=exc)
        except Exception as exc:  # a bug: finalize so the booth is answered, keep the traceback in the log
            log.exception("job %s crashed in the worker", job["id"])
            with contextlib.suppress(Exception):
                await self.fail("internal_error", f"{exc.__class__.__name__} in worker")
        finally:
            if self.links:  # deadline, cancellation, lost database: links never outlive the attempt
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(self._close_links())

    # ---------------------------------------------------------------- stages

    async def _prepare(self) -> ProviderInput | None:
        """The provider's input; None when the job could not start (it is finalized then)."""
        ctx, job = self.ctx, self.job
        if self.client is None:
            await self.fail("internal_error", f"provider {job['provider_id']!r} is not available in this version")
            return None
        # A key set over the admin API wins over the config file's, from the next job on, in every process.
        if self.stored_key is _NOT_READ:
            self.client.use_key(await live_settings.provider_api_key(ctx.db, ctx.cfg, job["provider_id"]))
        else:  # read by the claim, in its own round trip
            self.client.use_key(live_settings.provider_api_key_from(ctx.cfg, job["provider_id"], self.stored_key))
        image, mime = await media.off_loop(media.prepare_for_provider, job["upload_path"], job["upload_mime"],
                                           ctx.cfg.get(f"providers.{job['provider_id']}.max_input_megapixels"))
        data = ProviderInput(image=image, mime=mime, prompt=self.settings.get("prompt") or "",
                             params=catalogue.effective_params(job["provider_id"], job["operation_id"],
                                                               self.settings.get("params")))
        try:
            await self._attach_templates(data)
        except NotFound as exc:
            await self.fail("internal_error", exc.message)
            return None
        await self._fit_request(data)
        return data

    async def _fit_request(self, data: ProviderInput) -> None:
        """A provider that takes the images inside one request of bounded size (Gemini: 20 MiB, base64
        and all) gets them reduced just enough to fit — the largest first, re-encoded, then smaller —
        instead of a 400 for size after the booth's photo was accepted."""
        limit = self.client.max_request_bytes
        if limit is None:
            return
        operation = self.job["operation_id"]
        before = self.client.request_bytes(operation, data)
        rounds = 0
        while (size := self.client.request_bytes(operation, data)) > limit and rounds < 8:
            rounds += 1
            images = {"photo": (data.image, data.mime), **data.templates}
            role, (blob, mime) = max(images.items(), key=lambda kv: len(kv[1][0]))
            # base64 makes 3 bytes 4: shed the excess, a margin besides
            target = max(64 * 1024, len(blob) - (size - limit) * 3 // 4 - 256 * 1024)
            smaller, new_mime = await media.off_loop(media.shrink_to, blob, mime, target)
            if role == "photo":
                data.image, data.mime = smaller, new_mime
            else:
                data.templates[role] = (smaller, new_mime)
            event(log, "provider_input_reduced", **self.fields, role=role, bytes_before=len(blob),
                  bytes_after=len(smaller), request_limit=limit)
        if rounds:
            event(log, "provider_request_fitted", **self.fields, request_bytes_before=before,
                  request_bytes_after=self.client.request_bytes(operation, data), request_limit=limit)

    async def _attach_templates(self, data: ProviderInput) -> None:
        """Templates of the job's snapshot: inline bytes, or public links for a provider that fetches
        by URL (then the upright photo gets a link too)."""
        rows = await templates.load_for_job(self.ctx.db, self.settings)
        if self.client.needs_public_links:
            data.urls["photo"] = await self._link(data=data.image, mime=data.mime, kind="photo")
            for role, row in rows.items():
                try:
                    data.urls[role] = await self._link(path=row["file_path"], mime=row["mime"], kind="template")
                except FileNotFoundError:
                    raise _template_missing(role, row) from None
            return
        for role, row in rows.items():
            try:
                data.templates[role] = await media.off_loop(
                    media.prepare_for_provider, row["file_path"], row["mime"],
                    self.ctx.cfg.get(f"providers.{self.job['provider_id']}.max_input_megapixels"))
            except FileNotFoundError:
                raise _template_missing(role, row) from None

    async def _link(self, **what) -> str:
        made = await public_media.register(self.ctx, job_id=self.job_id, **what)
        self.links.append(made["id"])
        return made["public_url"]

    async def _call(self, data: ProviderInput, deadline: float) -> tuple[ProviderResult, int]:
        call_started = time.monotonic()
        result = await self.client.run(self.job["operation_id"], data, deadline=deadline, on_request=self._on_request,
                                       on_poll=self._on_poll, on_reference=self._on_reference,
                                       on_health=self._on_health)
        provider_ms = int((time.monotonic() - call_started) * 1000)
        self._observe("ok", provider_ms / 1000)
        if result.quota_remaining is not None:  # what the provider says is left on the account
            with contextlib.suppress(DatabaseUnavailable):
                await provider_health.note_quota(self.ctx, self.job["provider_id"], result.quota_remaining)
        return result, provider_ms

    async def _store(self, result: ProviderResult):
        """(path, bytes, mime) of the result written under results/; None when it failed the job."""
        ctx = self.ctx
        try:
            body, out_mime = await media.off_loop(media.encode_output, result.image,
                                                  self.settings.get("output_format"), self.job["upload_mime"])
        except media.InvalidImage as exc:
            await self.fail("invalid_result", str(exc), 502)
            return None
        path = ctx.media.result_path(self.job_id, out_mime)
        try:
            await asyncio.to_thread(path.write_bytes, body)
        except OSError as exc:  # media disk full / read-only: no partial result stays behind
            ctx.media.remove(path)
            await self.fail("internal_error", f"cannot store the result on the media disk: {exc.strerror or exc}", 503)
            return None
        return path, body, out_mime

    async def _succeed(self, result: ProviderResult, provider_ms: int, path, body: bytes, out_mime: str) -> None:
        ctx, job = self.ctx, self.job
        ctx.media.remove(job["upload_path"])  # before the UPDATE, as in fail()
        await self._close_links()
        self.finalizing.add(str(self.job_id))
        checksum = media.sha256_hex(body)
        row = None
        ctx.waiters.expect(self.job_id)
        try:
            row = await jobs.finalize_success(
                ctx.db, ctx.media, job_id=self.job_id, now=ctx.clock.now(), result_path=str(path), mime=out_mime,
                size=len(body), checksum=checksum,
                default_retention_hours=float(ctx.cfg.get("results.retention_hours")),
                response_id=result.response_id, tokens=result.tokens, provider_ms=provider_ms)
        finally:  # an ingest of this process answers from the row and these bytes, with no re-read
            ctx.waiters.settle(self.job_id, row, body)
        if row is None:
            ctx.media.remove(path)
            event(log, "late_result_discarded", **self.fields, provider_ms=provider_ms)
        else:
            event(log, "job_succeeded", **self.fields, provider_ms=provider_ms, requests=self.requests,
                  bytes=len(body), mime=out_mime, **_provider_fields(row, job))

    async def fail(self, reason: str, detail: str, answer_status: int | None = None) -> None:
        ctx = self.ctx
        # Remove the upload before the finalizing UPDATE: its NOTIFY lets the ingest answer at
        # once, and the booth must never see an answer while the photo is still on disk.
        ctx.media.remove(self.job["upload_path"])
        with contextlib.suppress(DatabaseUnavailable):
            await self._close_links()
        self.finalizing.add(str(self.job_id))
        row = None
        ctx.waiters.expect(self.job_id)
        try:
            row = await jobs.finalize_failure(ctx.db, ctx.media, job_id=self.job_id, now=ctx.clock.now(),
                                              reason=reason, detail=detail, answer_status=answer_status)
        finally:
            ctx.waiters.settle(self.job_id, row)
        if row is None:
            event(log, "late_outcome_discarded", **self.fields, outcome=reason)
        else:
            event(log, "job_failed", logging.WARNING, **self.fields, reason=reason, detail=detail,
                  requests=self.requests, provider_ms=int((time.monotonic() - self.started) * 1000),
                  **_provider_fields(row, self.job))

    # ---------------------------------------------------------------- the provider's hooks

    async def _on_request(self) -> None:
        ctx = self.ctx
        provider = self.job["provider_id"]
        if not ctx.health.may_call(provider, ctx.clock.now(), self.job_id):
            # Down (another job's calls, maybe in another process, took it down): no more requests;
            # a retry would only wait out the booth's window.
            raise ProviderFailure("provider_unavailable", describe(ctx.health.get(provider), ctx.clock.now()), 503)
        # Quotas count every request, retries included; a spent one ends the job before sending.
        # Counted on the job in the same round trip (quotas.take_request).
        await quotas.take_request(ctx.db, ctx.cfg, self.job["provider_id"], ctx.clock.now(), self.job_id)
        self.requests += 1
        self.in_call = True
        self.sent_at = asyncio.get_running_loop().time()

    def _call_timed_out(self) -> bool:
        """A request still open at the deadline, sent early enough to count as the provider's failure
        (health_rule.timed_out); one sent late counts for nothing."""
        window = (self.job["expires_at"] - self.job["created_at"]).total_seconds()
        return self.in_call and timed_out(self.deadline - self.sent_at, window)

    async def _on_health(self, ok: bool, problem: str | None, *, down_reason: str | None = None) -> None:
        """A call's outcome: into the provider's shared health, and (a failure) into the job's detail
        so far, which a timeout keeps ("HTTP 503 × 17 from gemini, last: …"). A `down_reason` takes the
        provider down at once with it (providers/base.py HealthHook)."""
        self.in_call = False
        self.reported = True
        ctx = self.ctx
        if not ok:
            self.problems.add(problem or "unknown problem")
            with contextlib.suppress(DatabaseUnavailable):
                await jobs.note_problem(ctx.db, job_id=self.job_id, detail=self.problems.summary())
        # Shielded: the report that takes the provider down ends this very job, whose notification
        # cancels this attempt — the transition's alert and clean-up must still run to their end.
        report = asyncio.ensure_future(provider_health.report(ctx, self.job["provider_id"], ok=ok, problem=problem,
                                                              job_id=self.job_id, down_reason=down_reason))
        _reports.add(report)
        report.add_done_callback(_reports.discard)
        report.add_done_callback(lambda t: t.cancelled() or t.exception())
        with contextlib.suppress(DatabaseUnavailable):
            await asyncio.shield(report)

    async def _on_poll(self) -> None:
        await jobs.record_provider(self.ctx.db, job_id=self.job_id, now=self.ctx.clock.now(), polls=1)

    async def _on_reference(self, reference: str) -> None:
        await jobs.record_provider(self.ctx.db, job_id=self.job_id, now=self.ctx.clock.now(), reference=reference)
        event(log, "job_queued_at_provider", **self.fields, queueid=reference)

    async def _close_links(self) -> None:
        if self.links:
            self.links.clear()
            await public_media.expire_for_job(self.ctx, self.job_id)

    def _observe(self, outcome: str, seconds: float) -> None:
        metrics.safe(metrics.of(self.ctx).observe_provider, self.job["provider_id"], outcome, seconds, self.requests)


def _template_missing(role: str, row: dict) -> NotFound:
    return NotFound(f"the {role!r} template file {row['id']} is missing from the media root")


def _provider_fields(row: dict, job: dict) -> dict:
    """Log fields from the finalized row: Turbotext queueid, polls, time since the ingest arrived."""
    total = row.get("finalized_at") and job.get("created_at") and row["finalized_at"] - job["created_at"]
    return {"queueid": row.get("provider_job_reference"), "polls": row.get("poll_count"),
            "total_ms": int(total.total_seconds() * 1000) if total else None}
