"""Google Gemini through the google-genai SDK's async client.

The SDK's own retries are switched off (attempts=1): our loop retries NO_IMAGE answers, 429 and
5xx with backoff, at most `providers.gemini.max_attempts` requests, and every attempt runs under
the job's deadline (asyncio.timeout), so nothing the SDK does can overrun it. 4xx other than 429
fail at once. Each call's outcome goes to the health hook (photoslot/health_rule.py).
"""
from __future__ import annotations

import asyncio
import logging
import random

import aiohttp
import aiohttp.helpers
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from yarl import URL

from photoslot.providers.base import (NO_HOOK, HealthHook, PollHook, Problems, ProviderClient, ProviderFailure,
                                      ProviderInput, ProviderResult, ReferenceHook, RequestHook)

log = logging.getLogger("photoslot.providers.gemini")

REFUSAL_FINISH = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
                  "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
MIN_ATTEMPT_SECONDS = 0.2  # no point starting a call with less time than this left


class GeminiClient(ProviderClient):
    def __init__(self, cfg) -> None:
        pcfg = cfg.provider("gemini")
        super().__init__(pcfg["api_key"], pcfg.get("max_attempts", 3))
        self.model = pcfg["model"]
        self._client: genai.Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base_url = pcfg["base_url"]

    def key_changed(self) -> None:
        self._client = None  # the SDK client is bound to its key: the next call builds a new one

    def _sdk(self) -> genai.Client:
        if self._client is None:
            if not self.api_key:
                raise ProviderFailure("provider_unavailable", "Gemini API key is not configured "
                                      "(providers.gemini.api_key or GEMINI_API_KEY)", 503)
            options = types.HttpOptions(
                base_url=self._base_url or None,
                retry_options=types.HttpRetryOptions(attempts=1),
                aiohttp_client=self._http(),
            )
            self._client = genai.Client(api_key=self.api_key, http_options=options)
        return self._client

    def _http(self) -> aiohttp.ClientSession | None:
        """The SDK's HTTP session, ours: the SDK's own has trust_env=True, which makes aiohttp look
        for a ~/.netrc on a thread for every request. The environment's proxy for the endpoint
        (HTTPS_PROXY, NO_PROXY, …) is read once instead. None outside an event loop (the SDK
        then makes its own)."""
        if self._session is None or self._session.closed:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return None
            proxy = proxy_auth = None
            try:
                proxy, proxy_auth = aiohttp.helpers.get_env_proxy_for_url(
                    URL(self._base_url or "https://generativelanguage.googleapis.com"))
            except (LookupError, AttributeError, ValueError):
                pass  # no proxy for it in the environment
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False,
                                                  read_bufsize=2**22, proxy=proxy, proxy_auth=proxy_auth)
        return self._session

    async def close(self) -> None:
        if self._client is not None:
            try:
                await self._client.aio.aclose()
            except Exception:  # closing is best effort
                pass
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # Providers see images without their file names: tell the model which image plays which part.
    ROLE_WORDING = {
        "style_transfer": {"style": "the style reference: apply its look (colours, technique, mood) to the photo"},
        "identity_transfer": {"face": "the person whose face and identity must appear in the photo",
                              "style": "the style reference for the look of the result"},
    }

    def build_contents(self, operation: str, data: ProviderInput) -> list:
        """Photo first (the primary input), then the templates in catalogue order, then the prompt."""
        if operation == "image_edit":
            return [types.Part.from_bytes(data=data.image, mime_type=data.mime), data.prompt]
        wording = self.ROLE_WORDING.get(operation)
        if wording is None:
            raise ProviderFailure("internal_error", f"gemini operation {operation!r} is not implemented")
        parts = [types.Part.from_bytes(data=data.image, mime_type=data.mime)]
        lines = ["Image 1 is the photo to edit; keep its framing and size."]
        for role in ("face", "style"):
            if role in data.templates and role in wording:
                blob, mime = data.templates[role]
                parts.append(types.Part.from_bytes(data=blob, mime_type=mime))
                lines.append(f"Image {len(parts)} is {wording[role]}.")
        if len(parts) == 1:
            raise ProviderFailure("internal_error", f"gemini {operation} was called without its template")
        parts.append(" ".join(lines) + "\n" + data.prompt)
        return parts

    async def run(self, operation: str, data: ProviderInput, *, deadline: float, on_request: RequestHook,
                  on_poll: PollHook = NO_HOOK, on_reference: ReferenceHook = NO_HOOK,
                  on_health: HealthHook = NO_HOOK) -> ProviderResult:
        contents = self.build_contents(operation, data)
        gen_config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            temperature=data.params.get("temperature"),
            seed=data.params.get("seed"),
        )
        return await self._generate(contents, gen_config, deadline=deadline, on_request=on_request,
                                    on_health=on_health)

    async def _generate(self, contents, gen_config, *, deadline: float, on_request: RequestHook,
                        on_health: HealthHook = NO_HOOK) -> ProviderResult:
        loop = asyncio.get_running_loop()
        sdk = self._sdk()
        attempt = 0
        backoff = 0.5
        last_problem = "no attempt made"
        problems = Problems("gemini")
        tokens = 0  # summed over attempts: an answer without an image is billed too
        while True:
            remaining = deadline - loop.time()
            if remaining < MIN_ATTEMPT_SECONDS:
                raise asyncio.TimeoutError(f"deadline reached after {attempt} attempt(s); {problems.summary()}")
            attempt += 1
            await on_request()
            if deadline - loop.time() < MIN_ATTEMPT_SECONDS / 2:  # the accounting write ate the time left
                raise asyncio.TimeoutError(f"deadline reached after {attempt - 1} attempt(s); {problems.summary()}")
            try:
                # timeout_at the absolute deadline: time spent above never extends the call
                async with asyncio.timeout_at(deadline):
                    resp = await sdk.aio.models.generate_content(model=self.model, contents=contents, config=gen_config)
            except genai_errors.APIError as exc:
                code = getattr(exc, "code", None) or 0
                message = (getattr(exc, "message", None) or str(exc))[:300]
                if code == 429 or code >= 500:
                    last_problem = f"HTTP {code} {getattr(exc, 'status', '') or ''} {message}".strip()
                    problems.add(last_problem)
                    await on_health(False, last_problem)
                    log.info("gemini attempt %d: %s; retrying while the deadline and max_attempts allow",
                             attempt, last_problem)
                else:
                    await on_health(True, None)  # it answered: the provider is there, the request is not right
                    raise ProviderFailure("provider_error", f"Gemini HTTP {code}: {message}", 502) from None
            except TimeoutError:
                raise  # the job's deadline (asyncio.timeout); TimeoutError is an OSError, so first
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                # connection refused/reset, or a body that is not JSON
                last_problem = f"{exc.__class__.__name__}: {str(exc)[:200]}"
                problems.add(last_problem)
                await on_health(False, last_problem)
                log.info("gemini attempt %d failed: %s", attempt, last_problem)
            else:
                await on_health(True, None)
                usage = getattr(resp, "usage_metadata", None)
                tokens += (getattr(usage, "total_token_count", None) or 0) if usage else 0
                result = self._parse(resp, attempt)
                if isinstance(result, ProviderResult):
                    result.tokens = tokens or None
                    return result
                last_problem = result
                problems.add(result)
                log.info("gemini attempt %d returned no image (%s); retrying", attempt, result)
            if attempt >= self.max_attempts:
                raise ProviderFailure("provider_error", f"{problems.summary()} (max_attempts {self.max_attempts})", 502)
            delay = min(backoff, max(0.0, deadline - loop.time() - MIN_ATTEMPT_SECONDS))
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, 4.0)

    @staticmethod
    def _parse(resp, attempt: int) -> ProviderResult | str:
        """A result, or a short text saying why there is no image (retryable)."""
        feedback = getattr(resp, "prompt_feedback", None)
        if feedback is not None and getattr(feedback, "block_reason", None):
            reason = str(getattr(feedback.block_reason, "value", feedback.block_reason))
            raise ProviderFailure("provider_refused", f"Gemini blocked the request: {reason}", 502)
        usage = getattr(resp, "usage_metadata", None)
        tokens = getattr(usage, "total_token_count", None) if usage else None
        candidates = resp.candidates or []
        if not candidates:
            return "no candidates"
        cand = candidates[0]
        finish = str(getattr(cand.finish_reason, "value", cand.finish_reason) or "")
        parts = (cand.content.parts if cand.content and cand.content.parts else [])
        for part in parts:
            blob = getattr(part, "inline_data", None)
            if blob is not None and blob.data:
                return ProviderResult(image=blob.data, mime=blob.mime_type, response_id=getattr(resp, "response_id", None),
                                      tokens=tokens, attempts=attempt)
        if finish in REFUSAL_FINISH:
            raise ProviderFailure("provider_refused", f"Gemini refused to make the image (finish reason {finish})", 502)
        return f"finish reason {finish or 'unknown'}"
