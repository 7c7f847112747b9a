"""`photoslot doctor --live`: one real, minimal call per configured provider — what only a real call
can tell before the event (docs/PROVIDERS.md, "Before the first event, with real keys"):

* Gemini: `generateContent` on a tiny image with each model an enabled slot uses — proves billing,
  the quota for that model, the region and the model's name (the offline key check reads the model's
  metadata, which needs none of them);
* Turbotext: one `generate_image2image` of a tiny photo through a real public link — proves the key,
  the tariff, and that Turbotext's servers reach `server.public_base_url` (the running `serve`
  answers the link).

It costs money: one small image per Gemini model, one photo attempt of the Turbotext tariff. Every
raw answer is stored under `<data_dir>/doctor/`, image data and keys redacted, for a bug report.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import time
from pathlib import Path

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from photoslot import public_address, public_media
from photoslot.clock import SystemClock
from photoslot.context import AppContext
from photoslot.media import MediaStore
from photoslot.providers import catalogue
from photoslot.providers.base import NO_HOOK, Problems, ProviderFailure
from photoslot.providers.gemini import GeminiClient
from photoslot.providers.turbotext import METHODS, TurbotextClient, classify, quota_left

GEMINI_TIMEOUT = 90.0
TURBOTEXT_TIMEOUT = 120.0
COST_NOTE = ("doctor --live makes one real call per provider: Gemini draws one small image per model in use "
             "(billed at that model's price), Turbotext spends one photo of the tariff. The raw answers, "
             "redacted, are kept in {folder}.")
DOWNLOAD_WORDS = ("загруз", "скача", "ссылк", "download", "fetch")


def folder(cfg) -> Path:
    return cfg.data_dir / "doctor"


def test_image(size: tuple[int, int], fmt: str) -> bytes:
    """A small picture to send: a colour gradient (a flat one may be answered as 'nothing to edit')."""
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([(x * 255 // w, y * 255 // h, 128) for y in range(h) for x in range(w)])
    out = io.BytesIO()
    im.save(out, fmt, quality=90) if fmt == "JPEG" else im.save(out, fmt)
    return out.getvalue()


def redact(value, secrets: tuple[str, ...] = ()):
    """A copy fit for a bug report: base64 image data replaced by its length, keys removed."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("data", "bytesBase64Encoded") and isinstance(v, str) and len(v) > 64:
                out[k] = f"<{len(v)} characters of base64 image data removed>"
            else:
                out[k] = redact(v, secrets)
        return out
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "<key removed>")
    return value


def store(cfg, name: str, record: dict, secrets: tuple[str, ...]) -> Path:
    """Write one provider's exchange, redacted; returns the file."""
    target = folder(cfg)
    target.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = target / f"{stamp}-{name}.json"
    path.write_text(json.dumps(redact(record, secrets), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return path


# ---------------------------------------------------------------- Gemini

async def gemini(cfg, key: str, model: str, check, fail) -> object:
    """One generateContent of a tiny image with `model`; the check's verdict."""
    name = f"live gemini {model}"
    client = genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=cfg.get("providers.gemini.base_url") or None, retry_options=types.HttpRetryOptions(attempts=1)))
    config = types.GenerateContentConfig(response_modalities=["IMAGE"], should_return_http_response=True)
    record: dict = {"provider": "gemini", "model": model, "request": {
        "method": "generateContent", "base_url": cfg.get("providers.gemini.base_url") or "Google's endpoint",
        "contents": ["a 64×64 PNG", "Return this picture as it is."], "responseModalities": ["IMAGE"]}}
    started = time.monotonic()
    try:
        resp = await asyncio.wait_for(client.aio.models.generate_content(
            model=model, contents=[types.Part.from_bytes(data=test_image((64, 64), "PNG"), mime_type="image/png"),
                                   "Return this picture as it is."], config=config), GEMINI_TIMEOUT)
    except genai_errors.APIError as exc:
        record["answer"] = {"http_status": exc.code, "body": exc.details}
        failure = await GeminiClient._api_error(exc, model, Problems("gemini"), NO_HOOK)
        path = store(cfg, f"gemini-{model}", record, (key,))
        detail = failure.detail if failure is not None else f"Gemini HTTP {exc.code}: {exc.message}"
        return fail(name, f"{detail} (answer kept in {path})", gemini_fix(exc.code, detail, model))
    except asyncio.TimeoutError:
        return fail(name, f"no answer within {GEMINI_TIMEOUT:.0f} s", "check the network to Google and retry")
    except Exception as exc:  # connection refused, DNS, TLS
        return fail(name, f"cannot reach Gemini: {exc.__class__.__name__}: {str(exc)[:200]}",
                    "check providers.gemini.base_url and this PC's internet connection")
    finally:
        try:
            await client.aio.aclose()
        except Exception:  # closing is best effort
            pass
    seconds = time.monotonic() - started
    raw = resp.sdk_http_response.body if resp.sdk_http_response else None
    record["answer"] = {"http_status": 200, "body": json.loads(raw) if raw else None}
    path = store(cfg, f"gemini-{model}", record, (key,))
    try:
        result, _tokens = GeminiClient._parse(resp, 1)
    except ProviderFailure as exc:  # billing, quota, region and model all worked: the model said no
        return check(name, f"{model} answered in {seconds:.1f} s but refused the test picture ({exc.detail}); "
                           f"billing, quota, region and model work (answer kept in {path})")
    if isinstance(result, tuple):
        return check(name, f"{model} answered in {seconds:.1f} s without an image ({result[1]}); billing, quota, "
                           f"region and model work (answer kept in {path})")
    try:
        with Image.open(io.BytesIO(result.image)) as im:
            size = f"{im.width}×{im.height}"
    except OSError:
        size = "an unreadable"
    return check(name, f"{model} drew a {size} image in {seconds:.1f} s: billing, quota, region and model work "
                       f"(answer kept in {path})")


def gemini_fix(code: int, detail: str, model: str) -> str:
    if "no quota for" in detail:
        return ("enable billing on the Google Cloud project of this key (AI Studio → API keys → the project → "
                "Set up billing), or use a key from a project with image quota; usage: https://ai.dev/rate-limit")
    if "does not serve the Gemini API" in detail:
        return "run photoslot where Google serves the Gemini API, or use Turbotext slots"
    if code == 404:
        return f"set the slot's model (or providers.gemini.model) to one of {', '.join(catalogue.GEMINI_IMAGE_MODELS)}"
    if "API key" in detail:
        return "set a working key: `photoslot settings provider-key gemini`"
    if code == 429:
        return "the rate limit is spent right now: retry in a minute; a daily one resets at midnight Pacific"
    return "read Google's message above; the raw answer is in the file named"


# ---------------------------------------------------------------- Turbotext

async def turbotext(cfg, database, key: str, check, fail) -> object:
    """One generate_image2image of a tiny photo through a real public link; the check's verdict."""
    name = "live turbotext"
    await public_address.load(database, cfg)  # the link is built on the address in force (Settings page too)
    client = TurbotextClient(cfg)
    client.use_key(key)
    ctx = AppContext(cfg=cfg, clock=SystemClock(), db=database, media=MediaStore(cfg.media_root))
    ctx.media.ensure()
    link = await public_media.register(ctx, data=test_image((512, 384), "JPEG"), mime="image/jpeg", kind="doctor")
    url = link["public_url"]
    record: dict = {"provider": "turbotext", "request": {"method": METHODS["image_edit"], "url": url,
                                                          "content": "a photo", "strength": "10"}, "answers": []}
    try:
        problem = await served(url)
        if problem:
            return fail(name, f"this photoslot does not serve its public link {url}: {problem}",
                        "start `photoslot serve` with this config (Turbotext fetches the photo from it) and "
                        "check the Public address (Settings page, or server.public_base_url)")
        return await _turbotext_call(cfg, client, url, record, key, name, check, fail)
    finally:
        await public_media.expire(ctx, link["id"])
        await client.close()


async def served(url: str) -> str | None:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(url) as resp:
                return None if resp.status == 200 else f"HTTP {resp.status}"
    except Exception as exc:  # refused, DNS, TLS
        return f"{exc.__class__.__name__}: {str(exc)[:200]}"


async def _turbotext_call(cfg, client, url, record, key, name, check, fail):
    endpoint = f"{client.base_url}/api_ai/{METHODS['image_edit']}"
    started = time.monotonic()
    deadline = asyncio.get_running_loop().time() + TURBOTEXT_TIMEOUT
    form = {"do": "create_queue", "url": url, "content": "a photo", "strength": "10"}
    http = client._http()
    try:
        status, body = await client._post(http, endpoint, form, deadline=deadline)
        record["answers"].append({"do": "create_queue", "http_status": status, "body": body})
        if status != 200 or not isinstance(body, dict) or not body.get("success"):
            return _turbotext_refused(cfg, record, key, name, fail, status, body)
        queueid = str(body["queueid"])
        while True:
            await asyncio.sleep(client.poll_interval)
            status, body = await client._post(http, endpoint, {"do": "get_result", "queueid": queueid},
                                              deadline=deadline)
            if isinstance(body, dict) and body.get("action") == "reconnect":
                continue
            record["answers"].append({"do": "get_result", "http_status": status, "body": body})
            break
    except (asyncio.TimeoutError, TimeoutError):
        path = store(cfg, "turbotext", record, (key,))
        return fail(name, f"Turbotext did not finish the test photo within {TURBOTEXT_TIMEOUT:.0f} s "
                          f"(answers kept in {path})", "retry later; if it persists ask Turbotext's support")
    except (aiohttp.ClientError, OSError) as exc:
        return fail(name, f"cannot reach Turbotext at {endpoint}: {exc.__class__.__name__}",
                    "check providers.turbotext.base_url and this PC's internet connection")
    if status != 200 or not isinstance(body, dict) or not body.get("success"):
        return _turbotext_refused(cfg, record, key, name, fail, status, body)
    path = store(cfg, "turbotext", record, (key,))
    left = quota_left(body)
    located = client.result_location(body)
    tariff = f"; {left} photo(s) left on the tariff" if left is not None else ""
    if located is None:
        return fail(name, f"Turbotext answered success without a result link (answers kept in {path})",
                    "send the kept answer to Turbotext's support")
    return check(name, f"Turbotext fetched the test photo from {url} and answered in "
                       f"{time.monotonic() - started:.1f} s{tariff} (answers kept in {path})")


def _turbotext_refused(cfg, record, key, name, fail, status, body):
    path = store(cfg, "turbotext", record, (key,))
    text = str(body.get("error") or "") if isinstance(body, dict) else ""
    said = f"«{text}»" if text else f"HTTP {status}"
    kind = "key" if status in (401, 403) else classify(text)
    if kind == "key":
        return fail(name, f"Turbotext refuses the key: {said} (answers kept in {path})",
                    "set a working key: `photoslot settings provider-key turbotext`")
    if kind == "tariff":
        return fail(name, f"the Turbotext tariff has no photos left: {said} (answers kept in {path})",
                    "top up the Turbotext account")
    if any(w in text.lower() for w in DOWNLOAD_WORDS):
        return fail(name, f"Turbotext could not fetch the test photo from the public link: {said} "
                          f"(answers kept in {path})",
                    "make server.public_base_url reachable from the internet — a port forward or a tunnel to "
                    "`photoslot serve` (HTTPS recommended); docs/PROVIDERS.md, 'Turbotext and public links'")
    return fail(name, f"Turbotext answered {said} (answers kept in {path})",
                "read Turbotext's text above; the raw answers are in the file named")
