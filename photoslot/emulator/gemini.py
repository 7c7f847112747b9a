"""Gemini ``models/{model}:generateContent`` wire protocol (Google AI / API-key flavour)."""

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
BAD_IMAGE_MESSAGE = (
    "Unable to process input image. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
OUTPUT_TOKENS = 1290
HUGE_BYTES = 30 * 1024 * 1024


def google_error(code: int, message: str | None = None) -> web.Response:
    status = _STATUS_NAMES.get(code, "INTERNAL" if code >= 500 else "FAILED_PRECONDITION")
    msg = message or _MESSAGES.get(code, f"Emulated error {code}.")
    return web.json_response({"error": {"code": code, "message": msg, "status": status}}, status=code)


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse_body(raw: bytes) -> tuple[list[tuple[str, bytes]], list[str], list[str] | None]:
    """Return ([(mime, bytes)...], [texts...], responseModalities or None)."""
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
    if isinstance(gen, dict):
        modalities = gen.get("responseModalities", gen.get("response_modalities"))
    return images, texts, modalities


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
        return "invalid_key", google_error(400, INVALID_KEY_MESSAGE)

    raw = await request.read()
    try:
        images, texts, modalities = _parse_body(raw)
    except _BadRequest as exc:
        return "bad_request", google_error(400, exc.message)
    prompt = "\n".join(texts)
    entry["prompt"] = prompt
    if modalities is not None:
        entry["fields"]["responseModalities"] = modalities
    described = await asyncio.to_thread(
        lambda: [transform.describe(data, mime, "inline") for mime, data in images]
    )
    entry["images"] = described
    if not images:
        return "bad_request", google_error(
            400, "The emulator needs at least one inlineData image part to edit.")
    if any(d["width"] is None for d in described):
        return "bad_request", google_error(400, BAD_IMAGE_MESSAGE)

    outcome = await state.outcome_after_hangs("gemini")
    if state.closing:
        return "shutdown", google_error(503)

    knobs = state.knobs["gemini"]
    latency = state.latency("gemini")
    if latency:
        await asyncio.sleep(latency)

    prompt_tokens = 258 * len(images) + max(1, len(prompt) // 4)
    if outcome.startswith("fail:"):
        code = int(outcome.split(":", 1)[1])
        return f"http_{code}", google_error(code)
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
    try:
        output = await asyncio.to_thread(transform.transform, images[0][1], mime, knobs.output_size)
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
    outcome = "invalid_key" if expected is not None and given != expected else "ok"
    state.record({"provider": "gemini", "path": request.path, "method": "models.get", "model": model,
                  "outcome": outcome})
    log.info("gemini %s %s outcome=%s", request.method, request.path, outcome)
    if outcome == "invalid_key":
        return google_error(400, INVALID_KEY_MESSAGE)
    return web.json_response({
        "name": f"models/{model}",
        "version": "emulated",
        "displayName": f"{model} (photoslot emulator)",
        "description": "Stand-in served by photoslot emulate.",
        "inputTokenLimit": 32768,
        "outputTokenLimit": 32768,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    })
