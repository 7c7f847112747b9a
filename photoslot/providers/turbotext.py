"""Turbotext on aiohttp: create_queue → queueid → get_result polling → download the result.

Turbotext fetches its inputs by URL, so the worker hands this client public links (docs/PROVIDERS.md):
`data.urls["photo"]` and one per template role. Every request runs under the job's deadline;
polling stops there (asyncio.TimeoutError) or when the worker cancels the call because the job was
finalized elsewhere. Only create_queue is a billable request (`on_request`, quotas); polls are
counted separately (`on_poll`).

What Turbotext's photo-API pages document (turbotext.ru/photo_ai/docs/info, quoted in docs/PROVIDERS.md)
and this client follows:
* the final `do=get_result` answer puts the result link in the top-level `uploaded_image`
  (mix_images, deepfake_photo), or only as a path relative to the Turbotext host in `data.image[0]`
  (generate_image2image) — every form is accepted, in that order (and `data.uploaded_image`);
* deepfake_photo: `url` is the photo whose face is replaced (the guest's), `url_image_target` the
  photo with the face to put in (the template); `face_restore` is `True`/`False`;
* `data.forbidden_content: true` is the moderation's verdict: the image is never delivered;
* `limits.foto_limit` is what is left on the tariff;
* the error texts are Russian.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from urllib.parse import urljoin, urlsplit

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

# Turbotext answers in Russian and documents no list of its error texts, so a text is classified by
# word stems (Russian first, the English ones for a proxy or a future English answer). Each class
# decides the job's reason; the provider's own text always goes into the job's detail.
MODERATION_WORDS = ("модерац", "запрещ", "недопустим", "цензур", "непристойн", "18+", "эротик", "порно",
                    "moderation", "prohibited", "nsfw", "forbidden")
KEY_WORDS = ("ключ", "токен", "авториз", "api key", "apikey", "api-key", "unauthorized", "invalid token")
TARIFF_WORDS = ("лимит", "тариф", "баланс", "недостаточно", "закончил", "исчерпан", "оплат", "пополн",
                "limit", "balance", "insufficient")


def classify(text: str) -> str:
    """"moderation", "key", "tariff" or "other" for one of Turbotext's error texts."""
    low = text.lower()
    if any(w in low for w in MODERATION_WORDS):
        return "moderation"
    if any(w in low for w in KEY_WORDS):
        return "key"
    if any(w in low for w in TARIFF_WORDS):
        return "tariff"
    return "other"


def truthy(value) -> bool:
    """Turbotext's flags arrive as JSON booleans, numbers or PHP-ish strings ("True", "1", "false")."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


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
            # As documented: `url` is the person whose face is replaced — the guest in the booth's
            # photo — and `url_image_target` the face put in, the template's.
            form = {"url": data.urls["photo"], "url_image_target": data.urls["face"]}
            if p.get("face_restore") is not None:
                form["face_restore"] = "True" if p["face_restore"] else "False"  # documented: True/False
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
        image_url, remaining = await self._poll(http, endpoint, queueid, deadline=deadline, on_poll=on_poll,
                                                on_health=on_health)
        image, mime = await self._download(http, image_url, deadline=deadline)
        return ProviderResult(image=image, mime=mime, response_id=None, tokens=None, attempts=attempts,
                              quota_remaining=remaining)

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
                    # Not retried: a garbled answer may still have queued (and billed) the job.
                    raise await self._refusal(body, status, "create_queue", on_health)
                elif body.get("success") and body.get("queueid") is not None:
                    await on_health(True, None)
                    return str(body["queueid"]), attempt
                else:
                    raise await self._refusal(body, status, "create_queue", on_health)
            if attempt >= self.max_attempts:
                raise ProviderFailure("provider_error", f"{problems.summary()} (create_queue, max_attempts "
                                      f"{self.max_attempts})", 502)
            log.info("turbotext create_queue attempt %d: %s; retrying while the deadline and max_attempts allow",
                     attempt, problems.last)
            delay = min(backoff, max(0.0, deadline - loop.time() - MIN_ATTEMPT_SECONDS))
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, 4.0)

    async def _poll(self, http, endpoint: str, queueid: str, *, deadline: float, on_poll: PollHook,
                    on_health: HealthHook = NO_HOOK) -> tuple[str, int | None]:
        """(the result's URL, the photos left on the tariff when the answer says so)."""
        loop = asyncio.get_running_loop()
        polls = 0
        last = "no answer yet"
        where = f"queue {queueid}"
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
            if status != 200:
                # A 4xx will not change by asking again: answer the booth now, not at the window's end.
                raise await self._refusal(body, status, f"{where}, get_result", on_health)
            if not isinstance(body, dict):
                last = "unreadable answer"
                continue
            if body.get("action") == "reconnect":
                last = "reconnect"
                continue
            if not body.get("success"):
                raise await self._refusal(body, status, where, on_health)
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            if truthy(data.get("forbidden_content")) or truthy(body.get("forbidden_content")):
                raise ProviderFailure("provider_refused", f"Turbotext's moderation flagged the result of {where} "
                                      "(forbidden_content: true); it is not delivered", 502)
            url = self.result_location(body)
            if url is None:
                raise ProviderFailure("invalid_result", f"Turbotext {where} answered success without a result link "
                                      "(no uploaded_image, no data.image)", 502)
            return url, quota_left(body)

    def result_location(self, body: dict) -> str | None:
        """The result's absolute URL: top-level `uploaded_image`, then `data.uploaded_image`, then
        `data.image[0]`; a path is relative to the Turbotext host (providers.turbotext.base_url)."""
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        images = data.get("image")
        first = images[0] if isinstance(images, list) and images else images
        for candidate in (body.get("uploaded_image"), data.get("uploaded_image"), first):
            if not isinstance(candidate, str) or not candidate.strip():
                continue
            text = candidate.strip()
            parts = urlsplit(text)
            if parts.scheme in ("http", "https") and parts.netloc:
                return text
            if not parts.scheme and " " not in text:  # "image/generate_image2image_id12_0.png"
                return urljoin(self.base_url + "/", text)
        return None

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
    async def _refusal(body, status: int, where: str, on_health: HealthHook) -> ProviderFailure:
        """The failure for an answer that says no (success false, a 4xx), the provider's own text kept.
        A spent tariff stops every shot until someone tops it up: the provider goes down at once with
        that reason; anything else says Turbotext is there."""
        error = body.get("error") if isinstance(body, dict) else None
        text = str(error).strip()[:1000] if error else ""
        said = f"«{text}»" if text else ("no error text" if status == 200 else "an answer without JSON")
        http_part = f" HTTP {status}" if status != 200 else ""
        kind = "key" if status in (401, 403) else classify(text)
        if kind == "tariff":
            reason = f"the Turbotext tariff has no photos left ({said}); top up the account"
            await on_health(False, reason, down_reason=reason)
            return ProviderFailure("quota_exhausted", f"Turbotext{http_part} ({where}): {reason}", 503)
        await on_health(True, None)
        if kind == "key":  # not a reason to stop the provider: the next shot uses a key set meanwhile
            return ProviderFailure("provider_error", f"Turbotext{http_part} ({where}) refuses the API key: {said}; "
                                   "set a working one with `photoslot settings provider-key turbotext`", 502)
        if kind == "moderation":
            return ProviderFailure("provider_refused", f"Turbotext refused the photo ({where}, moderation): {said}", 502)
        return ProviderFailure("provider_error", f"Turbotext{http_part} ({where}): {said}", 502)


def quota_left(body: dict) -> int | None:
    """`limits.foto_limit` of a final answer (photos left on the tariff), when it is there."""
    for holder in (body, body.get("data") if isinstance(body.get("data"), dict) else {}):
        limits = holder.get("limits")
        if isinstance(limits, dict) and limits.get("foto_limit") is not None:
            try:
                return int(limits["foto_limit"])
            except (TypeError, ValueError):
                return None
    return None
