"""Gemini ``models/{model}:generateContent`` wire protocol (Google AI / API-key flavour).

Every answer copies a documented or publicly reported one; docs/EMULATOR.md names the source of
each and marks what no public document shows as assumed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
import time
from typing import Any

from aiohttp import web

from . import transform
from .control import EmulatorState
from .keys import STATE_KEY

log = logging.getLogger("photoslot.emulator")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
#: The whole request, base64 images and all ("total request size less than 20MB", image-understanding page).
MAX_REQUEST_BYTES = 20 * 1024 * 1024
TOO_LARGE_MESSAGE = f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
LOCATION_MESSAGE = "User location is not supported for the API use."
#: The image models Google lists (models page), with their Model resource's token limits.
MODELS = {
    "gemini-2.5-flash-image": {"displayName": "Nano Banana", "inputTokenLimit": 32768, "outputTokenLimit": 32768},
    "gemini-3-pro-image-preview": {"displayName": "Nano Banana Pro", "inputTokenLimit": 65536,
                                   "outputTokenLimit": 32768},
}
ASPECT_RATIOS = tuple(transform.FLASH_IMAGE_SIZES)
RATE_LIMITS = "https://ai.google.dev/gemini-api/docs/rate-limits"
QUOTA_INTRO = ("You exceeded your current quota, please check your plan and billing details. For more information "
               f"on this error, head to: {RATE_LIMITS}. To monitor your current usage, head to: "
               "https://ai.dev/rate-limit. ")
IMAGE_SAFETY_MESSAGE = ("Unable to show the generated image. The image was filtered out because it violated Google's "
                        "Generative AI Prohibited Use policy. You will not be charged for blocked images. Try "
                        "rephrasing the prompt. If you think this was an error, send feedback.")
IMAGE_OTHER_MESSAGE = ("Unable to show the generated image. The model could not generate the image based on the "
                       "prompt provided. You will not be charged for blocked images. Try rephrasing the prompt. If "
                       "you think this was an error, send feedback.")
TEXT_ONLY_ANSWER = "I can't edit this photo the way you asked. I can help you describe the changes instead."
HTML_502 = ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 502 (Server Error)!!1</title>\n"
            "  <p><b>502.</b> <ins>That\u2019s an error.</ins>\n  <p>The server encountered a temporary error and "
            "could not complete your request.<p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>\n")
BAD_IMAGE_MESSAGE = (
    "Unable to process input image. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
OUTPUT_TOKENS = 1290
HUGE_BYTES = 30 * 1024 * 1024


def google_error(code: int, message: str | None = None, *, status: str | None = None,
                 details: list | None = None) -> web.Response:
    """Google's error body: {"error": {"code", "message", "status"[, "details"]}} (google.rpc.Status)."""
    status = status or _STATUS_NAMES.get(code, "INTERNAL" if code >= 500 else "FAILED_PRECONDITION")
    msg = message or _MESSAGES.get(code, f"Emulated error {code}.")
    error: dict[str, Any] = {"code": code, "message": msg, "status": status}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=code)


def _help() -> dict:
    return {"@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS}]}


def quota_error(model: str, *, limit: int, retry_seconds: float, per: str = "Day", tier: str = "free") -> web.Response:
    """A 429 RESOURCE_EXHAUSTED as Google sends it: the metrics over their limit in the message, then
    "Please retry in N s.", and QuotaFailure + RetryInfo details. `limit: 0` is a project with no
    quota at all for the model (free tier, billing not enabled)."""
    metric = f"generativelanguage.googleapis.com/generate_content_{tier}_tier_requests"
    tokens = f"generativelanguage.googleapis.com/generate_content_{tier}_tier_input_token_count"
    suffix = "-FreeTier" if tier == "free" else ""
    lines = [f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}"]
    violations = [{"quotaMetric": metric, "quotaId": f"GenerateRequestsPer{per}PerProjectPerModel{suffix}",
                   "quotaDimensions": {"location": "global", "model": model}}]
    if limit == 0:
        lines.append(f"* Quota exceeded for metric: {tokens}, limit: 0, model: {model}")
        violations.append({"quotaMetric": tokens, "quotaId": f"GenerateContentInputTokensPerModelPerMinute{suffix}",
                           "quotaDimensions": {"location": "global", "model": model}})
    else:
        for v in violations:
            v["quotaValue"] = str(limit)
    message = QUOTA_INTRO + "\n" + "\n".join(lines) + f"\nPlease retry in {retry_seconds + 0.2:.1f}s."
    details = [_help(), {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{int(retry_seconds)}s"}]
    return google_error(429, message, status="RESOURCE_EXHAUSTED", details=details)


def invalid_key_error() -> web.Response:
    return google_error(400, INVALID_KEY_MESSAGE, status="INVALID_ARGUMENT", details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])


def unknown_model_error(model: str, version: str, method: str = "generateContent") -> web.Response:
    return google_error(404, f"models/{model} is not found for API version {version}, or is not supported for "
                             f"{method}. Call ListModels to see the list of available models and their supported "
                             "methods.", status="NOT_FOUND")


def _version(request: web.Request) -> str:
    return request.path.split("/", 2)[1]


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse_body(raw: bytes) -> tuple[list[tuple[str, bytes]], list[str], list[str] | None, dict]:
    """Return ([(mime, bytes)...], [texts...], responseModalities or None, imageConfig)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("Invalid JSON payload received. Expected an object.")
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise _BadRequest("* GenerateContentRequest.contents: contents is not specified")
    images: list[tuple[str, bytes]] = []
    texts: list[str] = []
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            raise _BadRequest("* GenerateContentRequest.contents.parts: parts must be a list")
        for part in parts:
            if not isinstance(part, dict):
                raise _BadRequest("Invalid JSON payload received. Part must be an object.")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = part.get("inlineData", part.get("inline_data"))
            if inline is not None:
                if not isinstance(inline, dict):
                    raise _BadRequest("Invalid JSON payload received. inlineData must be an object.")
                mime = inline.get("mimeType", inline.get("mime_type")) or ""
                data = inline.get("data")
                if not isinstance(data, str) or not data:
                    raise _BadRequest("* GenerateContentRequest.contents.parts.inline_data.data: "
                                      "data is empty")
                try:
                    if "-" in data or "_" in data:
                        decoded = base64.urlsafe_b64decode(data)
                    else:
                        decoded = base64.b64decode(data, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise _BadRequest("Invalid value at 'contents.parts.inline_data.data' "
                                      "(TYPE_BYTES), Base64 decoding failed") from exc
                images.append((mime, decoded))
    gen = body.get("generationConfig", body.get("generation_config")) or {}
    modalities = None
    image_config: dict = {}
    if isinstance(gen, dict):
        modalities = gen.get("responseModalities", gen.get("response_modalities"))
        raw_config = gen.get("imageConfig", gen.get("image_config")) or {}
        if isinstance(raw_config, dict):
            ratio = raw_config.get("aspectRatio", raw_config.get("aspect_ratio"))
            size = raw_config.get("imageSize", raw_config.get("image_size"))
            if ratio is not None:
                if ratio not in ASPECT_RATIOS:
                    raise _BadRequest(f"* GenerateContentRequest.generation_config.image_config.aspect_ratio: "
                                      f"unsupported aspect ratio {ratio!r}")
                image_config["aspectRatio"] = ratio
            if size is not None:
                if size not in transform.PRO_IMAGE_SIZES:
                    raise _BadRequest(f"* GenerateContentRequest.generation_config.image_config.image_size: "
                                      f"unsupported image size {size!r}")
                image_config["imageSize"] = size
    return images, texts, modalities, image_config


def _usage(prompt_tokens: int, candidate_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidate_tokens,
        "totalTokenCount": prompt_tokens + candidate_tokens,
    }


def _envelope(model: str, prompt_tokens: int, candidate_tokens: int, **fields: Any) -> dict:
    out = dict(fields)
    out["usageMetadata"] = _usage(prompt_tokens, candidate_tokens)
    out["modelVersion"] = model
    out["responseId"] = secrets.token_urlsafe(18)
    return out


def _image_response(model: str, prompt_tokens: int, mime: str, data: bytes,
                    with_text: bool) -> dict:
    parts: list[dict[str, Any]] = []
    if with_text:
        parts.append({"text": "Here is the edited image."})
    parts.append({"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}})
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    return _envelope(model, prompt_tokens, OUTPUT_TOKENS, candidates=[candidate])


async def _huge_response(request: web.Request, model: str, prompt_tokens: int) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json; charset=UTF-8"})
    await resp.prepare(request)
    await resp.write(b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "')
    chunk = b"A" * (1024 * 1024)
    for _ in range(HUGE_BYTES // len(chunk)):
        await resp.write(chunk)
    tail = _envelope(model, prompt_tokens, OUTPUT_TOKENS)
    await resp.write(
        b'"}]}, "finishReason": "STOP", "index": 0}], '
        + json.dumps(tail)[1:].encode("utf-8")
    )
    await resp.write_eof()
    return resp


async def generate_content(request: web.Request) -> web.StreamResponse:
    state: EmulatorState = request.app[STATE_KEY]
    stats = state.stats["gemini"]
    model = request.match_info["model"]
    started = time.monotonic()
    stats.requests += 1
    stats.enter()
    entry = state.record({
        "provider": "gemini",
        "path": request.path,
        "method": "generateContent",
        "model": model,
        "prompt": None,
        "fields": {},
        "images": [],
        "outcome": "pending",
    })
    outcome = "error"
    try:
        outcome, response = await _serve(request, state, entry, model)
        return response
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        stats.leave()
        entry["outcome"] = outcome
        state.count_outcome("gemini", outcome)
        log.info("gemini %s %s outcome=%s ms=%.1f", request.method, request.path, outcome,
                 (time.monotonic() - started) * 1000)


async def _serve(request: web.Request, state: EmulatorState, entry: dict,
                 model: str) -> tuple[str, web.StreamResponse]:
    expected = state.api_keys["gemini"]
    given = request.headers.get("x-goog-api-key") or request.query.get("key")
    if expected is not None and given != expected:
        return "invalid_key", invalid_key_error()
    if model not in MODELS:
        return "unknown_model", unknown_model_error(model, _version(request))

    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        return "too_large", google_error(400, TOO_LARGE_MESSAGE, status="INVALID_ARGUMENT")
    raw = await request.read()
    entry["request_bytes"] = len(raw)
    if len(raw) > MAX_REQUEST_BYTES:
        return "too_large", google_error(400, TOO_LARGE_MESSAGE, status="INVALID_ARGUMENT")
    try:
        images, texts, modalities, image_config = _parse_body(raw)
    except _BadRequest as exc:
        return "bad_request", google_error(400, exc.message)
    prompt = "\n".join(texts)
    entry["prompt"] = prompt
    if modalities is not None:
        entry["fields"]["responseModalities"] = modalities
    if image_config:
        entry["fields"]["imageConfig"] = image_config
    described = await asyncio.to_thread(
        lambda: [transform.describe(data, mime, "inline") for mime, data in images]
    )
    entry["images"] = described
    if not images:
        return "bad_request", google_error(
            400, "The emulator needs at least one inlineData image part to edit.")
    if any(d["width"] is None for d in described):
        return "bad_request", google_error(400, BAD_IMAGE_MESSAGE)

    knobs = state.knobs["gemini"]
    if knobs.no_quota:  # a key whose project has no quota for image models: every call, at once
        return "zero_quota", quota_error(model, limit=0, retry_seconds=31)
    outcome = await state.outcome_after_hangs("gemini")
    if state.closing:
        return "shutdown", google_error(503)

    latency = state.latency("gemini")
    if latency:
        await asyncio.sleep(latency)

    prompt_tokens = 258 * len(images) + max(1, len(prompt) // 4)
    if outcome.startswith("fail:"):
        code = int(outcome.split(":", 1)[1])
        return f"http_{code}", google_error(code)
    if outcome == "zero_quota":
        return "zero_quota", quota_error(model, limit=0, retry_seconds=31)
    if outcome.startswith("rate_limit"):
        seconds = float(outcome.split(":", 1)[1]) if ":" in outcome else 31.0
        return "rate_limit", quota_error(model, limit=500, retry_seconds=seconds, per="Minute", tier="paid")
    if outcome == "location":
        return "location", google_error(400, LOCATION_MESSAGE, status="FAILED_PRECONDITION")
    if outcome == "html_502":
        return "html_502", web.Response(status=502, text=HTML_502, content_type="text/html")
    if outcome == "unknown_model":  # a retired model: what a name Google dropped answers
        return "unknown_model", unknown_model_error(model, _version(request))
    if outcome in ("image_safety", "prohibited", "image_other"):
        finish = {"image_safety": "IMAGE_SAFETY", "prohibited": "PROHIBITED_CONTENT", "image_other": "IMAGE_OTHER"}
        candidate: dict[str, Any] = {"content": {"role": "model"}, "finishReason": finish[outcome], "index": 0}
        if outcome == "image_safety":
            candidate["finishMessage"] = IMAGE_SAFETY_MESSAGE
        elif outcome == "image_other":
            candidate["finishMessage"] = IMAGE_OTHER_MESSAGE
        return outcome, web.json_response(_envelope(model, prompt_tokens, 0, candidates=[candidate]))
    if outcome == "text_only":
        candidate = {"content": {"role": "model", "parts": [{"text": TEXT_ONLY_ANSWER}]}, "finishReason": "STOP",
                     "index": 0}
        return "text_only", web.json_response(_envelope(model, prompt_tokens, 20, candidates=[candidate]))
    if outcome == "safety":
        body = _envelope(model, prompt_tokens, 0, promptFeedback={"blockReason": "SAFETY"})
        body["usageMetadata"].pop("candidatesTokenCount")
        return "safety", web.json_response(body)
    if outcome == "no_image":
        candidate = {
            "content": {"role": "model", "parts": [
                {"text": "I'm unable to create an image from this request."}]},
            "finishReason": "NO_IMAGE",
            "index": 0,
        }
        return "no_image", web.json_response(
            _envelope(model, prompt_tokens, 12, candidates=[candidate]))
    if outcome == "huge":
        return "huge", await _huge_response(request, model, prompt_tokens)

    with_text = not modalities or any(str(m).upper() == "TEXT" for m in modalities)
    mime = knobs.output_mime
    if outcome == "not_image":
        body = _image_response(model, prompt_tokens, mime, b"this is not an image", with_text)
        return "not_image", web.json_response(body)

    if knobs.output_size == "echo":  # the photo back as sent: a stand-in that costs nothing
        body = _image_response(model, prompt_tokens, images[0][0], images[0][1], with_text)
        return "ok", web.json_response(body)
    first = described[0]
    size = None
    if knobs.output_size == "model":  # what this model answers for the asked (or the photo's) ratio and size
        size = transform.gemini_output_size(model, image_config.get("aspectRatio"), image_config.get("imageSize"),
                                            first["width"], first["height"])
    try:
        output = await asyncio.to_thread(transform.transform, images[0][1], mime, knobs.output_size, size=size)
    except transform.NotAnImage:
        return "bad_request", google_error(400, BAD_IMAGE_MESSAGE)
    body = _image_response(model, prompt_tokens, mime, output, with_text)
    if outcome == "truncated_json":
        raw_out = json.dumps(body).encode("utf-8")
        return "truncated_json", web.Response(
            body=raw_out[: len(raw_out) // 2], content_type="application/json")
    return "ok", web.json_response(body)


async def get_model(request: web.Request) -> web.Response:
    """`GET /{version}/models/{model}`: the model's metadata — Google's cheapest authenticated
    call, which `photoslot doctor` uses to prove a key works without generating (or paying for)
    an image. A wrong key gets the same 400 as generateContent; faults and latency do not apply."""
    state: EmulatorState = request.app[STATE_KEY]
    model = request.match_info["model"]
    expected = state.api_keys["gemini"]
    given = request.headers.get("x-goog-api-key") or request.query.get("key")
    outcome = ("invalid_key" if expected is not None and given != expected
               else "unknown_model" if model not in MODELS else "ok")
    state.record({"provider": "gemini", "path": request.path, "method": "models.get", "model": model,
                  "outcome": outcome})
    log.info("gemini %s %s outcome=%s", request.method, request.path, outcome)
    if outcome == "invalid_key":
        return invalid_key_error()
    if outcome == "unknown_model":
        return google_error(404, f"models/{model} is not found for API version {_version(request)}.",
                            status="NOT_FOUND")
    return web.json_response({
        "name": f"models/{model}",
        "version": "2.0",
        "description": "Stand-in served by photoslot emulate.",
        **MODELS[model],
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    })
