"""Turbotext on aiohttp: create_queue → queueid → get_result polling → download uploaded_image.

Turbotext fetches its inputs by URL, so the worker hands this client public links (docs/PROVIDERS.md):
`data.urls["photo"]` and one per template role. Every request runs under the job's deadline;
polling stops there (asyncio.TimeoutError) or when the worker cancels the call because the job was
finalized elsewhere. Only create_queue is a billable request (`on_request`, quotas); polls are
counted separately (`on_poll`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import random

import aiohttp

from photoslot.providers.base import (NO_HOOK, HealthHook, PollHook, Problems, ProviderClient, ProviderFailure,
                                      ProviderInput, ProviderResult, ReferenceHook, RequestHook)

log = logging.getLogger("photoslot.providers.turbotext")

DEFAULT_BASE_URL = "https://www.turbotext.ru"
METHODS = {
    "image_edit": "generate_image2image",
    "style_transfer": "mix_images",
    "identity_transfer": "deepfake_photo",
}
MAX_RESULT_BYTES = 50 * 1024 * 1024
MIN_ATTEMPT_SECONDS = 0.2
# Turbotext's error texts that mean "your content was refused", not "something broke".
REFUSAL_WORDS = ("moderation", "prohibited", "nsfw", "forbidden content")


class TurbotextClient(ProviderClient):
    needs_public_links = True

    def __init__(self, cfg) -> None:
        pcfg = cfg.provider("turbotext")
        super().__init__(pcfg["api_key"], pcfg.get("max_attempts", 3))
        self.base_url = (pcfg["base_url"] or DEFAULT_BASE_URL).rstrip("/")
        self.poll_interval = float(pcfg["poll_interval_seconds"])
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if not self.api_key:
            raise ProviderFailure("provider_unavailable", "Turbotext API key is not configured "
                                  "(providers.turbotext.api_key or TURBOTEXT_API_KEY)", 503)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def form_for(operation: str, data: ProviderInput) -> dict[str, str]:
        """The create_queue form for one operation (docs/PROVIDERS.md); the photo is always the primary input."""
        p = data.params
        if operation == "image_edit":
            form = {"url": data.urls["photo"], "content": data.prompt}
            for key in ("strength", "seed", "scale", "negative_prompt", "original_language", "user_id"):
                if p.get(key) is not None:
                    form[key] = str(p[key])
        elif operation == "style_transfer":
            form = {"url_image_target": data.urls["photo"], "url": data.urls["style"]}
            if data.prompt:
                form["content"] = data.prompt
        elif operation == "identity_transfer":
            form = {"url": data.urls["face"], "url_image_target": data.urls["photo"]}
            if p.get("face_restore") is not None:
                # Turbotext's API is PHP: the string "false" would be truthy there, "0" is not.
                form["face_restore"] = "1" if p["face_restore"] else "0"
        else:
            raise ProviderFailure("internal_error", f"turbotext operation {operation!r} is not implemented")
        return form

    async def run(self, operation: str, data: ProviderInput, *, deadline: float, on_request: RequestHook,
                  on_poll: PollHook = NO_HOOK, on_reference: ReferenceHook = NO_HOOK,
                  on_health: HealthHook = NO_HOOK) -> ProviderResult:
        method = METHODS.get(operation)
        if method is None:
            raise ProviderFailure("internal_error", f"turbotext operation {operation!r} is not implemented")
        form = self.form_for(operation, data)
        http = self._http()
        endpoint = f"{self.base_url}/api_ai/{method}"
        queueid, attempts = await self._create_queue(http, endpoint, form, deadline=deadline, on_request=on_request,
                                                     on_health=on_health)
        await on_reference(queueid)
        image_url = await self._poll(http, endpoint, queueid, deadline=deadline, on_poll=on_poll, on_health=on_health)
        image, mime = await self._download(http, image_url, deadline=deadline)
        return ProviderResult(image=image, mime=mime, response_id=None, tokens=None, attempts=attempts)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def _post(self, http, endpoint: str, form: dict, *, deadline: float) -> tuple[int, object]:
        """(HTTP status, parsed JSON or None when the body is not JSON)."""
        async with asyncio.timeout_at(deadline):  # the job's absolute deadline
            async with http.post(endpoint, data=form, headers=self._headers()) as resp:
                raw = await resp.read()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                return resp.status, body

    async def _create_queue(self, http, endpoint: str, form: dict, *, deadline: float,
                            on_request: RequestHook, on_health: HealthHook = NO_HOOK) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        attempt = 0
        backoff = 0.5
        problems = Problems("turbotext")
        while True:
            if deadline - loop.time() < MIN_ATTEMPT_SECONDS:
                raise asyncio.TimeoutError(f"deadline reached before Turbotext queued the job; {problems.summary()}")
            attempt += 1
            await on_request()
            try:
                status, body = await self._post(http, endpoint, {"do": "create_queue", **form}, deadline=deadline)
            except (aiohttp.ClientError, OSError) as exc:
                problems.add(f"{exc.__class__.__name__}: {str(exc)[:200]}")
                await on_health(False, problems.last)
            else:
                if status == 429 or status >= 500:
                    problems.add(f"HTTP {status}")
                    await on_health(False, problems.last)
                elif status != 200 or not isinstance(body, dict):
                    await on_health(True, None)
                    # Not retried: a garbled answer may still have queued (and billed) the job.
                    error = body.get("error") if isinstance(body, dict) else None
                    raise ProviderFailure("provider_error", f"Turbotext create_queue HTTP {status}: "
                                          f"{error or 'unreadable answer'}", 502)
                elif body.get("success") and body.get("queueid") is not None:
                    await on_health(True, None)
                    return str(body["queueid"]), attempt
                else:
                    await on_health(True, None)
                    raise self._failure(body.get("error"), "create_queue")
            if attempt >= self.max_attempts:
                raise ProviderFailure("provider_error", f"{problems.summary()} (create_queue, max_attempts "
                                      f"{self.max_attempts})", 502)
            log.info("turbotext create_queue attempt %d: %s; retrying while the deadline and max_attempts allow",
                     attempt, problems.last)
            delay = min(backoff, max(0.0, deadline - loop.time() - MIN_ATTEMPT_SECONDS))
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, 4.0)

    async def _poll(self, http, endpoint: str, queueid: str, *, deadline: float, on_poll: PollHook,
                    on_health: HealthHook = NO_HOOK) -> str:
        loop = asyncio.get_running_loop()
        polls = 0
        last = "no answer yet"
        while True:
            remaining = deadline - loop.time()
            if remaining <= self.poll_interval + MIN_ATTEMPT_SECONDS / 2:
                # Not enough time for another poll and a download: stop here, the ingest answers 504.
                if remaining > 0:
                    await asyncio.sleep(remaining)
                raise asyncio.TimeoutError(f"Turbotext queue {queueid} not done after {polls} poll(s); last: {last}")
            await asyncio.sleep(self.poll_interval)
            polls += 1
            await on_poll()
            try:
                status, body = await self._post(http, endpoint, {"do": "get_result", "queueid": queueid},
                                                deadline=deadline)
            except (aiohttp.ClientError, OSError) as exc:
                last = f"{exc.__class__.__name__}"
                await on_health(False, f"get_result: {last}")
                continue
            if status == 429 or status >= 500:
                last = f"HTTP {status}"
                await on_health(False, f"{last} (get_result)")
                continue  # a poll is free to repeat; the job is still queued on their side
            if status != 200 or not isinstance(body, dict):
                last = f"HTTP {status}" if status != 200 else "unreadable answer"
                continue
            if body.get("action") == "reconnect":
                last = "reconnect"
                continue
            if body.get("success"):
                data = body.get("data") or {}
                url = data.get("uploaded_image") if isinstance(data, dict) else None
                if not url:
                    raise ProviderFailure("invalid_result", f"Turbotext queue {queueid} answered without an image", 502)
                return str(url)
            raise self._failure(body.get("error"), f"queue {queueid}")

    async def _download(self, http, url: str, *, deadline: float) -> tuple[bytes, str | None]:
        async with asyncio.timeout_at(deadline):  # the job's absolute deadline
            # No Authorization header: the result link is public and may live on another host.
            try:
                async with http.get(url) as resp:
                    if resp.status != 200:
                        raise ProviderFailure("provider_error", f"Turbotext result download HTTP {resp.status}", 502)
                    buf = bytearray()
                    async for chunk in resp.content.iter_chunked(256 * 1024):
                        buf += chunk
                        if len(buf) > MAX_RESULT_BYTES:
                            raise ProviderFailure("invalid_result", "Turbotext result is larger than "
                                                  f"{MAX_RESULT_BYTES // (1024 * 1024)} MB", 502)
                    mime = resp.headers.get("Content-Type", "").split(";")[0].strip() or None
                    return bytes(buf), mime
            except (aiohttp.ClientError, OSError) as exc:
                raise ProviderFailure("provider_error", f"Turbotext result download failed: "
                                      f"{exc.__class__.__name__}", 502) from None

    @staticmethod
    def _failure(error, where: str) -> ProviderFailure:
        text = str(error or "no error text")[:500]
        if any(word in text.lower() for word in REFUSAL_WORDS):
            return ProviderFailure("provider_refused", f"Turbotext refused the image ({where}): {text}", 502)
        return ProviderFailure("provider_error", f"Turbotext ({where}): {text}", 502)
