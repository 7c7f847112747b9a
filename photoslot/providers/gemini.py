"""Google Gemini through the google-genai SDK's async client.

The SDK's own retries are switched off (attempts=1): our loop retries NO_IMAGE answers, 429 and
5xx with backoff, at most `providers.gemini.max_attempts` requests, and every attempt runs under
the job's deadline (asyncio.timeout), so nothing the SDK does can overrun it. 4xx other than 429
fail at once. Each call's outcome goes to the health hook (photoslot/health_rule.py).

How Google answers, and what this client makes of it (sources in docs/PROVIDERS.md):
* an error is `{"error": {"code", "message", "status", "details": [...]}}`; the SDK keeps the body in
  `APIError.details`. A 429 carries `google.rpc.RetryInfo` (`retryDelay: "31s"`): a retry that could
  not land inside the shot's window is not made — the booth is answered now. A 429 whose message says
  `limit: 0` is a project with no quota for the model at all (free tier, billing not enabled): the
  provider is taken down at once with that reason. The whole message goes into the job's detail.
* a refusal is `promptFeedback.blockReason` or a candidate's `finishReason` (IMAGE_SAFETY,
  PROHIBITED_CONTENT, IMAGE_OTHER …) with its `finishMessage`; a candidate with text and no image
  (finishReason STOP: "I can't edit this photo …") is tried once more, then refused with the model's text;
* `generationConfig.imageConfig` asks for the aspect ratio (by default the one nearest to the photo)
  and, on a model that offers it, the image size;
* the whole request must stay under 20 MiB (`max_request_bytes`): the worker reduces the images before
  the call when it would not (worker/attempt.py `_fit_request`).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import random
import re

import aiohttp
import aiohttp.helpers
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image, UnidentifiedImageError
from yarl import URL

from photoslot.providers import catalogue
from photoslot.providers.base import (NO_HOOK, HealthHook, PollHook, Problems, ProviderClient, ProviderFailure,
                                      ProviderInput, ProviderResult, ReferenceHook, RequestHook)

log = logging.getLogger("photoslot.providers.gemini")

# Finish reasons that are the model's refusal of this photo or prompt: asking again is billed and
# answered the same way (types.FinishReason; Google's image-generation page).
REFUSAL_FINISH = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
                  "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER"}
MIN_ATTEMPT_SECONDS = 0.2  # no point starting a call with less time than this left
MAX_REQUEST_BYTES = 20 * 1024 * 1024  # Google: "total request size less than 20MB", the whole JSON body
TEXT_ONLY_TRIES = 2  # a text answer instead of an image: one more try, then it is the model's refusal
MAX_TEXT_KEPT = 600  # characters of a model's text kept in a job's detail
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_RETRY_IN = re.compile(r"retry in ([0-9.]+)\s*(ms|s)\b", re.I)
_ZERO_LIMIT = re.compile(r"\blimit: 0\b")
_DELAY = re.compile(r"^([0-9.]+)s$")


class GeminiClient(ProviderClient):
    max_request_bytes = MAX_REQUEST_BYTES

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

    def model_for(self, data: ProviderInput) -> str:
        """The slot's model, else providers.gemini.model."""
        return data.params.get("model") or self.model

    def image_config(self, data: ProviderInput) -> types.ImageConfig:
        """imageConfig: the slot's aspect ratio or the one nearest to the photo; its image size when
        the model offers sizes (catalogue.GEMINI_IMAGE_MODELS)."""
        ratio = data.params.get("aspect_ratio")
        if not ratio:
            size = pixel_size(data.image)
            ratio = catalogue.nearest_aspect_ratio(*size) if size else None
        image_size = data.params.get("image_size")
        if image_size not in catalogue.image_sizes(self.model_for(data)):
            image_size = None
        return types.ImageConfig(aspect_ratio=ratio, image_size=image_size)

    def request_bytes(self, operation: str, data: ProviderInput) -> int:
        """An upper estimate of the generateContent body the SDK sends: each image in base64 (4/3 of
        its bytes), the prompt and the role lines JSON-escaped (at most 6 bytes a character), and the
        envelope. Compared with `max_request_bytes` before the call."""
        images = [data.image, *(blob for blob, _ in data.templates.values())]
        encoded = sum(4 * ((len(b) + 2) // 3) + 128 for b in images)
        text = len(data.prompt) * 6 + 1024  # the prompt, the role lines of build_contents
        return encoded + text + 2048

    async def run(self, operation: str, data: ProviderInput, *, deadline: float, on_request: RequestHook,
                  on_poll: PollHook = NO_HOOK, on_reference: ReferenceHook = NO_HOOK,
                  on_health: HealthHook = NO_HOOK) -> ProviderResult:
        contents = self.build_contents(operation, data)
        gen_config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            temperature=data.params.get("temperature"),
            seed=data.params.get("seed"),
            image_config=self.image_config(data),
            should_return_http_response=True,  # the raw JSON: _parse reads finishMessage from it
        )
        return await self._generate(contents, gen_config, model=self.model_for(data), deadline=deadline,
                                    on_request=on_request, on_health=on_health)

    async def _generate(self, contents, gen_config, *, model: str, deadline: float, on_request: RequestHook,
                        on_health: HealthHook = NO_HOOK) -> ProviderResult:
        loop = asyncio.get_running_loop()
        sdk = self._sdk()
        attempt = 0
        backoff = 0.5
        problems = Problems("gemini")
        tokens = 0  # summed over attempts: an answer without an image is billed too
        text_only = 0
        while True:
            remaining = deadline - loop.time()
            if remaining < MIN_ATTEMPT_SECONDS:
                raise asyncio.TimeoutError(f"deadline reached after {attempt} attempt(s); {problems.summary()}")
            attempt += 1
            await on_request()
            if deadline - loop.time() < MIN_ATTEMPT_SECONDS / 2:  # the accounting write ate the time left
                raise asyncio.TimeoutError(f"deadline reached after {attempt - 1} attempt(s); {problems.summary()}")
            wait, jitter = backoff, True  # Google's own RetryInfo delay, when it gives one, is kept exact
            try:
                # timeout_at the absolute deadline: time spent above never extends the call
                async with asyncio.timeout_at(deadline):
                    resp = await sdk.aio.models.generate_content(model=model, contents=contents, config=gen_config)
                answer = self._parse(resp, attempt)  # a body that is not JSON raises ValueError: a failed call
            except genai_errors.APIError as exc:
                failure = await self._api_error(exc, model, problems, on_health)
                if failure is not None:
                    raise failure from None
                delay = retry_delay(exc)
                if delay is not None:
                    if loop.time() + delay + MIN_ATTEMPT_SECONDS > deadline:
                        raise ProviderFailure(
                            "quota_exhausted", f"Gemini asks to wait {delay:g} s before the next request "
                            f"(RetryInfo), past this shot's window: answered now. {problems.summary()}", 503) from None
                    wait, jitter = delay, False
                log.info("gemini attempt %d: %s; retrying while the deadline and max_attempts allow",
                         attempt, problems.last)
            except TimeoutError:
                raise  # the job's deadline (asyncio.timeout); TimeoutError is an OSError, so first
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                # connection refused/reset, or a body that is not JSON
                problems.add(f"{exc.__class__.__name__}: {str(exc)[:200]}")
                await on_health(False, problems.last)
                log.info("gemini attempt %d failed: %s", attempt, problems.last)
            else:
                await on_health(True, None)
                result, used = answer
                tokens += used
                if isinstance(result, ProviderResult):
                    result.tokens = tokens or None
                    return result
                kind, problem = result
                problems.add(problem)
                if kind == "text":
                    text_only += 1
                    if text_only >= TEXT_ONLY_TRIES:
                        raise ProviderFailure("provider_refused", f"Gemini answered with text instead of an "
                                              f"image, {text_only} times: {problem}", 502)
                log.info("gemini attempt %d returned no image (%s); retrying", attempt, kind)
            if attempt >= self.max_attempts:
                raise ProviderFailure("provider_error", f"{problems.summary()} (max_attempts {self.max_attempts})", 502)
            delay = min(wait, max(0.0, deadline - loop.time() - MIN_ATTEMPT_SECONDS))
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()) if jitter else delay)
            backoff = min(backoff * 2, 4.0)

    @staticmethod
    async def _api_error(exc, model: str, problems: Problems, on_health: HealthHook) -> ProviderFailure | None:
        """What an HTTP error means: None to retry (429, 5xx — counted as failed calls), else the
        failure that ends the job now, with Google's whole message."""
        code = getattr(exc, "code", None) or 0
        status = getattr(exc, "status", None) or ""
        message = error_message(exc)
        said = f"HTTP {code} {status}: {message}".replace("  ", " ")
        if code == 429 and _ZERO_LIMIT.search(message or ""):
            reason = f"this key's project has no quota for {model} (billing not enabled?)"
            await on_health(False, said, down_reason=reason)
            return ProviderFailure("provider_unavailable", f"Gemini {said} — {reason}", 503)
        if code == 429 or code >= 500:
            problems.add(said)
            await on_health(False, said)
            return None
        low = (message or "").lower()
        if code == 400 and "location is not supported" in low:
            reason = f"Google does not serve the Gemini API where this studio is ({message})"
            await on_health(False, said, down_reason=reason)
            return ProviderFailure("provider_unavailable", f"Gemini {said} — {reason}", 503)
        await on_health(True, None)  # it answered: the provider is there, the request is not right
        if code in (401, 403) or "api key not valid" in low:
            # Not a reason to stop the provider: an admin who sets a working key wants the next shot to use it.
            return ProviderFailure("provider_error", f"Gemini {said} — it refuses the API key; set a working one "
                                   "with `photoslot settings provider-key gemini`", 502)
        if code == 404:
            return ProviderFailure("provider_error", f"Gemini knows no model {model!r} ({said}); choose one of "
                                   f"{', '.join(catalogue.GEMINI_IMAGE_MODELS)}", 502)
        return ProviderFailure("provider_error", f"Gemini {said}", 502)

    @staticmethod
    def _parse(resp, attempt: int) -> tuple[ProviderResult | tuple[str, str], int]:
        """(A result, or (kind, what was answered instead) for a retry: kind "text" (the model wrote
        instead of drawing) or "no_image"; the tokens billed for it). A refusal raises.

        Read from the response's JSON as Google documents it (GenerateContentResponse): the SDK is
        asked for the raw body (`should_return_http_response`) because its own conversion drops a
        candidate's `finishMessage` — the one sentence that says why an image was refused."""
        raw = getattr(getattr(resp, "sdk_http_response", None), "body", None)
        body = json.loads(raw) if raw else {}
        if not isinstance(body, dict):
            raise ValueError("generateContent answered JSON that is not an object")
        feedback = body.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            said = feedback.get("blockReasonMessage")
            raise ProviderFailure("provider_refused", f"Gemini blocked the request: {feedback['blockReason']}"
                                  + (f" — {said}" if said else ""), 502)
        tokens = int((body.get("usageMetadata") or {}).get("totalTokenCount") or 0)
        candidates = body.get("candidates") or []
        if not candidates or not isinstance(candidates[0], dict):
            return ("no_image", "no candidates"), tokens
        cand = candidates[0]
        finish = str(cand.get("finishReason") or "")
        finish_message = cand.get("finishMessage")
        texts = []
        for part in ((cand.get("content") or {}).get("parts") or []):
            if not isinstance(part, dict):
                continue
            blob = part.get("inlineData") or part.get("inline_data")
            if isinstance(blob, dict) and blob.get("data"):
                try:
                    image = base64.b64decode(blob["data"], validate=True)
                except (binascii.Error, ValueError):
                    image = base64.urlsafe_b64decode(blob["data"])
                return ProviderResult(image=image, mime=blob.get("mimeType") or blob.get("mime_type"),
                                      response_id=body.get("responseId"), tokens=tokens, attempts=attempt), tokens
            if isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"].strip())
        text = " ".join(t for t in texts if t)
        if len(text) > MAX_TEXT_KEPT:  # a model that writes pages: the detail keeps the beginning
            text = text[:MAX_TEXT_KEPT] + f"… ({len(text)} characters)"
        words = "; ".join(x for x in (f"finishMessage: {finish_message}" if finish_message else "",
                                      f"the model wrote: «{text}»" if text else "") if x)
        if finish in REFUSAL_FINISH:
            raise ProviderFailure("provider_refused", f"Gemini refused to make the image (finish reason {finish})"
                                  + (f": {words}" if words else ""), 502)
        if text and finish in ("STOP", ""):
            return ("text", f"finish reason {finish or 'unknown'}: {words}"), tokens
        return ("no_image", f"finish reason {finish or 'unknown'}" + (f": {words}" if words else "")), tokens


def enum_text(value) -> str:
    return str(getattr(value, "value", value) or "")


def error_body(exc) -> dict:
    """Google's `error` object from the SDK's APIError (its `details` hold the parsed JSON body)."""
    details = getattr(exc, "details", None)
    if isinstance(details, list) and len(details) == 1:
        details = details[0]
    if isinstance(details, dict):
        inner = details.get("error")
        return inner if isinstance(inner, dict) else details
    return {}


def error_message(exc) -> str:
    """The provider's whole message. An HTML error page (a proxy's, a load balancer's 502) is cut to
    its title and text: the detail is for a person, not a browser."""
    message = getattr(exc, "message", None) or error_body(exc).get("message") or str(exc)
    message = str(message).strip()
    if message.startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", message, re.S | re.I)
        text = re.sub(r"<[^>]+>", " ", message)
        text = re.sub(r"\s+", " ", text).strip()
        message = "HTML page: " + (title.group(1).strip() if title else text[:300])
    return message


def retry_delay(exc) -> float | None:
    """Seconds Google asks to wait: RetryInfo's `retryDelay` ("31s"), else "Please retry in 31.2s."."""
    for detail in error_body(exc).get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            m = _DELAY.match(str(detail.get("retryDelay", "")).strip())
            if m:
                return float(m.group(1))
    m = _RETRY_IN.search(error_message(exc))
    if m:
        value = float(m.group(1))
        return value / 1000 if m.group(2).lower() == "ms" else value
    return None


def pixel_size(data: bytes) -> tuple[int, int] | None:
    """The picture's width and height from its header (no decode)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
