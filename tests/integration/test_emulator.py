"""The provider emulator, exercised over loopback with the real google-genai SDK and aiohttp.

No mocks: every test starts the real aiohttp app (``start_emulator``) on a free port.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from photoslot.emulator import make_app, start_emulator
from photoslot.emulator.transform import model_size, transform
from tests.conftest import FIXTURES

KEY = "emulator-key"
MODEL = "gemini-2.5-flash-image"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
async def emulator():
    emu = await start_emulator(latency_seconds=0.0)
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def image_host():
    """A tiny local web server playing the product's public media links."""
    hits: list[str] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits.append(name)
        if name == "gone.png":
            return web.Response(status=410, text="link expired")
        if name == "text.png":
            return web.Response(text="this is not an image", content_type="text/plain")
        path = FIXTURES / name
        if not path.is_file():
            return web.Response(status=404)
        ctype = "image/png" if name.endswith(".png") else "image/jpeg"
        return web.Response(body=path.read_bytes(), content_type=ctype)

    app = web.Application()
    app.router.add_get("/media/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/media", hits
    finally:
        await runner.cleanup()


def sdk_client(base_url: str, *, api_key: str = KEY, api_version: str | None = None) -> genai.Client:
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


async def sdk_edit(client: genai.Client, image: bytes, mime: str = "image/jpeg",
                   prompt: str = "make it sepia") -> types.GenerateContentResponse:
    return await client.aio.models.generate_content(
        model=MODEL,
        contents=[types.Part.from_bytes(data=image, mime_type=mime), prompt],
        config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
    )


def image_parts(resp: types.GenerateContentResponse) -> list[types.Blob]:
    if not resp.candidates:
        return []
    return [p.inline_data for p in resp.candidates[0].content.parts or [] if p.inline_data]


async def control(http: aiohttp.ClientSession, emu, **body) -> dict:
    async with http.post(f"{emu.base_url}/emulator/control", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def get_json(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------------- Gemini


async def test_real_sdk_round_trip_returns_transformed_image_at_the_models_size(emulator, http):
    photo = fixture_bytes("dslr_landscape.jpg")
    resp = await sdk_edit(sdk_client(emulator.base_url), photo)
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    blobs = image_parts(resp)
    assert len(blobs) == 1 and blobs[0].mime_type == "image/png"
    out = Image.open(io.BytesIO(blobs[0].data))
    assert out.format == "PNG"
    assert out.size == (1248, 832)  # gemini-2.5-flash-image's 3:2 size, not the photo's 3000 × 2000
    original = Image.open(io.BytesIO(photo)).convert("RGB").resize((60, 40))
    changed = out.convert("RGB").resize((60, 40))
    diff = sum(abs(a - b) for pa, pb in zip(original.get_flattened_data(), changed.get_flattened_data())
               for a, b in zip(pa, pb))
    assert diff / (60 * 40 * 3) > 10, "output must be visibly different from the input"
    assert resp.usage_metadata.candidates_token_count == 1290
    assert resp.model_version == MODEL and resp.response_id
    # the SDK (3.4) with a custom base_url and no api_version talks to /v1, not /v1beta
    log = (await get_json(http, f"{emulator.base_url}/emulator/requests"))["requests"]
    assert log[-1]["path"] == f"/v1/models/{MODEL}:generateContent"


async def test_v1beta_path_and_jpeg_output_mime(emulator, http):
    await control(http, emulator, provider="gemini", output_mime="image/jpeg")
    client = sdk_client(emulator.base_url, api_version="v1beta")
    resp = await sdk_edit(client, fixture_bytes("small_photo.png"), mime="image/png")
    blob = image_parts(resp)[0]
    assert blob.mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(blob.data)).size == (1248, 832)
    log = (await get_json(http, f"{emulator.base_url}/emulator/requests"))["requests"]
    assert log[-1]["path"] == f"/v1beta/models/{MODEL}:generateContent"


async def test_exif_orientation_is_not_applied_to_stored_pixels(emulator, http):
    await control(http, emulator, output_mime="image/jpeg")
    resp = await sdk_edit(sdk_client(emulator.base_url),
                          fixture_bytes("dslr_portrait_orientation6.jpg"))
    stored = Image.open(io.BytesIO(fixture_bytes("dslr_portrait_orientation6.jpg"))).size
    assert stored[0] > stored[1]
    assert Image.open(io.BytesIO(image_parts(resp)[0].data)).size == model_size(*stored)  # landscape, as stored


@pytest.mark.parametrize("width, height, expected", [
    (3000, 2000, (1248, 832)), (2000, 3000, (832, 1248)), (1000, 1000, (1024, 1024)),
    (1920, 1080, (1344, 768)), (1080, 1920, (768, 1344)), (4000, 3000, (1184, 864)),
    (3000, 4000, (864, 1184)), (2560, 1080, (1536, 672)), (1000, 1250, (896, 1152)),
])
def test_model_size_is_the_nearest_real_aspect_ratio(width, height, expected):
    assert model_size(width, height) == expected


async def test_output_size_input_keeps_the_stored_size_and_echo_returns_the_photo(emulator, http):
    photo = fixture_bytes("small_photo.png")
    await control(http, emulator, provider="gemini", output_size="input", output_mime="image/jpeg")
    resp = await sdk_edit(sdk_client(emulator.base_url), photo, mime="image/png")
    assert Image.open(io.BytesIO(image_parts(resp)[0].data)).size == (451, 300)
    await control(http, emulator, provider="gemini", output_size="echo")
    resp = await sdk_edit(sdk_client(emulator.base_url), photo, mime="image/png")
    (blob,) = image_parts(resp)
    assert blob.data == photo and blob.mime_type == "image/png"
    async with http.post(f"{emulator.base_url}/emulator/control", json={"output_size": "huge"}) as r:
        assert r.status == 400 and "output_size" in (await r.json())["error"]


async def test_wrong_api_key_raises_sdk_client_error_400(emulator):
    client = sdk_client(emulator.base_url, api_key="wrong-key")
    with pytest.raises(genai_errors.ClientError) as info:
        await sdk_edit(client, fixture_bytes("small_photo.png"), mime="image/png")
    assert info.value.code == 400
    assert info.value.status == "INVALID_ARGUMENT"
    assert "API key not valid" in info.value.message


async def test_api_key_in_query_string_is_accepted_and_missing_key_rejected(emulator, http):
    body = {"contents": [{"parts": [
        {"inlineData": {"mimeType": "image/png",
                        "data": base64.b64encode(fixture_bytes("small_photo.png")).decode()}},
        {"text": "edit"}]}]}
    url = f"{emulator.base_url}/v1beta/models/{MODEL}:generateContent"
    async with http.post(url, params={"key": KEY}, json=body) as resp:
        assert resp.status == 200
        data = await resp.json()
    # no responseModalities → a text part accompanies the image, like the real model
    parts = data["candidates"][0]["content"]["parts"]
    assert parts[0]["text"] and parts[1]["inlineData"]["mimeType"] == "image/png"
    async with http.post(url, json=body) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["status"] == "INVALID_ARGUMENT"


async def test_any_key_accepted_when_key_is_none():
    emu = await start_emulator(gemini_api_key=None)
    try:
        resp = await sdk_edit(sdk_client(emu.base_url, api_key="whatever"),
                              fixture_bytes("small_photo.png"), mime="image/png")
        assert image_parts(resp)
    finally:
        await emu.stop()


async def test_malformed_json_and_missing_image_are_400_invalid_argument(emulator, http):
    url = f"{emulator.base_url}/v1/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": KEY}
    async with http.post(url, data=b"{not json", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["status"] == "INVALID_ARGUMENT"
    async with http.post(url, json={"contents": [{"parts": [{"text": "hi"}]}]},
                         headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == 400


async def test_script_no_image_twice_then_image(emulator, http):
    await control(http, emulator, provider="gemini", script=["no_image", "no_image", "ok"])
    client = sdk_client(emulator.base_url)
    photo = fixture_bytes("small_photo.png")
    reasons = []
    for _ in range(3):
        resp = await sdk_edit(client, photo, mime="image/png")
        reasons.append((resp.candidates[0].finish_reason, len(image_parts(resp))))
    assert reasons == [(types.FinishReason.NO_IMAGE, 0), (types.FinishReason.NO_IMAGE, 0),
                       (types.FinishReason.STOP, 1)]
    stats = await get_json(http, f"{emulator.base_url}/emulator/stats")
    assert stats["gemini"]["by_outcome"] == {"no_image": 2, "ok": 1}
    config = await get_json(http, f"{emulator.base_url}/emulator/control")
    assert config["gemini"]["script"] == []


async def test_scripted_fail_429_raises_sdk_api_error_429_and_503_server_error(emulator, http):
    await control(http, emulator, script=["fail:429", "fail:503"])
    client = sdk_client(emulator.base_url)
    photo = fixture_bytes("small_photo.png")
    with pytest.raises(genai_errors.APIError) as info:
        await sdk_edit(client, photo, mime="image/png")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(genai_errors.ServerError) as info:
        await sdk_edit(client, photo, mime="image/png")
    assert info.value.code == 503 and "overloaded" in info.value.message


async def test_fail_rate_one_uses_fail_status(emulator, http):
    await control(http, emulator, provider="gemini", fail_rate=1.0, fail_status=500)
    with pytest.raises(genai_errors.ServerError) as info:
        await sdk_edit(sdk_client(emulator.base_url), fixture_bytes("small_photo.png"),
                       mime="image/png")
    assert info.value.code == 500 and info.value.status == "INTERNAL"


async def test_safety_outcome_is_prompt_level_block_without_candidates(emulator, http):
    await control(http, emulator, provider="gemini", script=["safety"])
    resp = await sdk_edit(sdk_client(emulator.base_url), fixture_bytes("small_photo.png"),
                          mime="image/png")
    assert not resp.candidates
    assert resp.prompt_feedback.block_reason == types.BlockedReason.SAFETY


async def test_garbage_outcomes_truncated_json_not_image_and_huge(emulator, http):
    await control(http, emulator, provider="gemini",
                  script=["truncated_json", "not_image", "huge"])
    client = sdk_client(emulator.base_url)
    photo = fixture_bytes("small_photo.png")
    with pytest.raises(Exception):  # the SDK cannot parse half a JSON document
        await sdk_edit(client, photo, mime="image/png")
    resp = await sdk_edit(client, photo, mime="image/png")
    assert image_parts(resp)[0].data == b"this is not an image"
    url = f"{emulator.base_url}/v1/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"inlineData": {
        "mimeType": "image/png", "data": base64.b64encode(photo).decode()}}]}]}
    async with http.post(url, json=body, headers={"x-goog-api-key": KEY}) as r:
        raw = await r.read()
    assert r.status == 200 and len(raw) > 30_000_000
    assert json.loads(raw)["candidates"][0]["finishReason"] == "STOP"


async def test_hang_holds_requests_until_control_releases_them(emulator, http):
    await control(http, emulator, provider="gemini", hang=True)
    task = asyncio.create_task(sdk_edit(sdk_client(emulator.base_url),
                                        fixture_bytes("small_photo.png"), mime="image/png"))

    async def one_in_flight() -> bool:
        stats = await get_json(http, f"{emulator.base_url}/emulator/stats")
        return stats["gemini"]["in_flight"] == 1

    await wait_for(one_in_flight)
    await asyncio.sleep(0.2)
    assert not task.done()
    await control(http, emulator, provider="gemini", hang=False)
    resp = await asyncio.wait_for(task, 5)
    assert image_parts(resp)
    stats = await get_json(http, f"{emulator.base_url}/emulator/stats")
    assert stats["gemini"]["in_flight"] == 0


async def test_parallel_requests_are_counted_in_flight_and_max_concurrent(emulator, http):
    await control(http, emulator, provider="gemini", latency_seconds=0.3)
    client = sdk_client(emulator.base_url)
    photo = fixture_bytes("small_photo.png")
    started = time.monotonic()
    results = await asyncio.gather(*(sdk_edit(client, photo, mime="image/png")
                                     for _ in range(5)))
    elapsed = time.monotonic() - started
    assert all(image_parts(r) for r in results)
    assert elapsed < 1.2, "requests with latency must overlap, not queue"
    stats = (await get_json(http, f"{emulator.base_url}/emulator/stats"))["gemini"]
    assert stats == {"requests": 5, "in_flight": 0, "max_concurrent": 5,
                     "by_outcome": {"ok": 5}}


async def test_client_disconnect_during_hang_decrements_in_flight(emulator, http):
    await control(http, emulator, provider="gemini", script=["hang"])
    task = asyncio.create_task(sdk_edit(sdk_client(emulator.base_url),
                                        fixture_bytes("small_photo.png"), mime="image/png"))

    async def in_flight(n: int):
        async def check() -> bool:
            stats = await get_json(http, f"{emulator.base_url}/emulator/stats")
            return stats["gemini"]["in_flight"] == n
        return check

    await wait_for(await in_flight(1))
    task.cancel()  # closes the SDK's connection
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(await in_flight(0))
    stats = await get_json(http, f"{emulator.base_url}/emulator/stats")
    assert stats["gemini"]["by_outcome"] == {"cancelled": 1}
    log = (await get_json(http, f"{emulator.base_url}/emulator/requests"))["requests"]
    assert log[-1]["outcome"] == "cancelled"


async def test_a_key_without_quota_gets_googles_429_with_quota_failure_and_retry_info(emulator, http):
    # the shape Google sends a project without image quota (public reports, e.g. google-gemini/gemini-cli#8437,
    # continuedev/continue#11558): message "… limit: 0, model: … Please retry in 31.2s." + QuotaFailure + RetryInfo
    await control(http, emulator, provider="gemini", no_quota=True)
    with pytest.raises(genai_errors.ClientError) as info:
        await sdk_edit(sdk_client(emulator.base_url), fixture_bytes("small_photo.png"), mime="image/png")
    err = info.value
    assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
    assert f"limit: 0, model: {MODEL}" in err.message and err.message.endswith("Please retry in 31.2s.")
    kinds = {d["@type"].rsplit(".", 1)[1]: d for d in err.details["error"]["details"]}
    assert set(kinds) == {"Help", "QuotaFailure", "RetryInfo"}
    assert kinds["RetryInfo"]["retryDelay"] == "31s"
    assert kinds["QuotaFailure"]["violations"][0]["quotaDimensions"] == {"location": "global", "model": MODEL}
    async with http.get(f"{emulator.base_url}/v1beta/models/{MODEL}", headers={"x-goog-api-key": KEY}) as r:
        assert r.status == 200  # the model's metadata needs no quota: only a real call shows the trap


async def test_unknown_models_get_googles_404_on_both_calls(emulator, http):
    client = sdk_client(emulator.base_url)
    with pytest.raises(genai_errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-2.5-flash-image-preview", contents=["x"])
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert info.value.message.startswith("models/gemini-2.5-flash-image-preview is not found for API version v1")
    with pytest.raises(genai_errors.ClientError) as info:
        await client.aio.models.get(model="gemini-typo-image")
    assert info.value.code == 404
    model = await client.aio.models.get(model="gemini-3-pro-image-preview")
    assert model.input_token_limit == 65536 and "generateContent" in model.supported_actions


async def test_a_request_over_20_mib_gets_googles_400(emulator, http):
    body = json.dumps({"contents": [{"parts": [{"inlineData": {"mimeType": "image/jpeg",
                                                               "data": "A" * (20 * 1024 * 1024)}}]}]})
    async with http.post(f"{emulator.base_url}/v1beta/models/{MODEL}:generateContent", data=body,
                         headers={"x-goog-api-key": KEY, "content-type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == {"code": 400, "status": "INVALID_ARGUMENT",
                                             "message": "Request payload size exceeds the limit: 20971520 bytes."}


@pytest.mark.parametrize("model, config, size", [
    (MODEL, {"aspect_ratio": "16:9"}, (1344, 768)),
    (MODEL, {}, (1248, 832)),  # the photo's own 3:2
    ("gemini-3-pro-image-preview", {"aspect_ratio": "4:5"}, (928, 1152)),
    ("gemini-3-pro-image-preview", {"aspect_ratio": "3:2", "image_size": "2K"}, (2528, 1696)),
])
async def test_the_answer_is_at_the_size_the_model_documents_for_the_asked_ratio_and_size(emulator, model, config,
                                                                                          size):
    resp = await sdk_client(emulator.base_url).aio.models.generate_content(
        model=model, contents=[types.Part.from_bytes(data=fixture_bytes("small_photo.png"), mime_type="image/png"), "x"],
        config=types.GenerateContentConfig(response_modalities=["IMAGE"], image_config=types.ImageConfig(**config)))
    assert Image.open(io.BytesIO(image_parts(resp)[0].data)).size == size


async def test_refusals_text_answers_region_and_html_502_in_googles_shapes(emulator, http):
    await control(http, emulator, provider="gemini",
                  script=["image_safety", "image_other", "prohibited", "text_only", "location", "html_502"])
    url = f"{emulator.base_url}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png",
                                                    "data": base64.b64encode(fixture_bytes("small_photo.png")).decode()}},
                                    {"text": "edit"}]}]}
    answers = []
    for _ in range(6):
        async with http.post(url, json=body, headers={"x-goog-api-key": KEY}) as r:
            answers.append((r.status, r.content_type, await r.text()))
    candidates = [json.loads(a[2])["candidates"][0] for a in answers[:4]]
    assert [c["finishReason"] for c in candidates] == ["IMAGE_SAFETY", "IMAGE_OTHER", "PROHIBITED_CONTENT", "STOP"]
    assert "Prohibited Use policy" in candidates[0]["finishMessage"] and "finishMessage" in candidates[1]
    assert "parts" not in candidates[0]["content"]
    assert candidates[3]["content"]["parts"] == [{"text": "I can't edit this photo the way you asked. "
                                                           "I can help you describe the changes instead."}]
    assert answers[4][0] == 400 and json.loads(answers[4][2])["error"]["status"] == "FAILED_PRECONDITION"
    assert answers[5][:2] == (502, "text/html") and "<title>Error 502 (Server Error)!!1</title>" in answers[5][2]


# ------------------------------------------------------------------------------ Turbotext


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def tt_post(http, emu, method: str, data: dict, headers=None):
    async with http.post(f"{emu.base_url}/api_ai/{method}", data=data,
                         headers=bearer() if headers is None else headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def poll_until_done(http, emu, method: str, queueid: int, limit: int = 200):
    polls = 0
    while True:
        status, body = await tt_post(http, emu, method, {"do": "get_result", "queueid": queueid})
        assert status == 200
        polls += 1
        if body != {"action": "reconnect"}:
            return polls, body
        assert polls < limit
        await asyncio.sleep(0.02)


async def test_turbotext_mix_images_answers_its_documented_final_json(emulator, http, image_host):
    # mix_images' page: {"success":true,"error":"","data":{"prompt":…,"width":768,"height":576,"seed":…,
    # "strength":50,"pattern_prompt":false},"uploaded_image":"https://www.turbotext.ru/download.php?f=….png"}
    media, hits = image_host
    await control(http, emulator, provider="turbotext", latency_seconds=0.2, reconnect_polls=2)
    status, created = await tt_post(http, emulator, "mix_images", {
        "do": "create_queue",
        "url_image_target": f"{media}/small_photo.png",
        "url": f"{media}/template_style.jpg",
        "content": "watercolour",
    })
    assert status == 200 and created["success"] is True and isinstance(created["queueid"], int)
    polls, result = await poll_until_done(http, emulator, "mix_images", created["queueid"])
    assert polls >= 3  # latency + two forced reconnects
    assert set(result) == {"success", "error", "data", "uploaded_image", "limits"}
    assert result["success"] is True and result["error"] == ""
    assert set(result["data"]) == {"prompt", "width", "height", "seed", "strength", "pattern_prompt"}
    assert (result["data"]["width"], result["data"]["height"]) == (451, 300)
    assert result["limits"] == {"foto_limit": 999, "text_limit": 10000}
    link = result["uploaded_image"]
    assert link.startswith(f"{emulator.base_url}/download.php?f=") and link.endswith(".png")
    async with http.get(link) as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        data = await resp.read()
    out = Image.open(io.BytesIO(data))
    assert out.size == (451, 300)  # the target photo, not the style image
    assert data != fixture_bytes("small_photo.png")
    assert sorted(hits) == ["small_photo.png", "template_style.jpg"]
    stats = (await get_json(http, f"{emulator.base_url}/emulator/stats"))["turbotext"]
    assert stats["create_queue"] == 1 and stats["get_result"] == polls
    assert stats["downloads"] == 1 and stats["fetches"] == 2
    assert stats["in_flight"] == 0 and stats["max_concurrent"] == 1
    assert stats["by_outcome"] == {"ok": 1}
    async with http.get(f"{emulator.base_url}/download.php", params={"f": "nope.png"}) as resp:
        assert resp.status == 404


async def test_turbotext_image2image_answers_only_a_path_relative_to_the_host(emulator, http, image_host):
    # generate_image2image's page: no uploaded_image; "data": {"user_id":12, "image":
    # ["image/generate_image2image_id12_0.png"], "prompt", "width", "height", "scale", "seed", "strength",
    # "original_language"}
    media, _ = image_host
    _, created = await tt_post(http, emulator, "generate_image2image", {
        "do": "create_queue", "url": f"{media}/template_style.jpg", "content": "x", "strength": "40"})
    _, result = await poll_until_done(http, emulator, "generate_image2image", created["queueid"])
    assert "uploaded_image" not in result
    data = result["data"]
    assert set(data) == {"user_id", "image", "prompt", "width", "height", "scale", "seed", "strength",
                         "original_language"}
    (path,) = data["image"]
    assert path.startswith(f"image/generate_image2image_id{created['queueid']}_") and "://" not in path
    async with http.get(f"{emulator.base_url}/{path}") as resp:
        assert resp.status == 200
        assert Image.open(io.BytesIO(await resp.read())).size == (640, 427) == (data["width"], data["height"])


async def test_turbotext_deepfake_puts_the_target_face_on_the_url_photo_as_documented(emulator, http, image_host):
    # deepfake_photo's page: url — "the photo of the person whose face is replaced"; url_image_target —
    # "the photo with the face to put in"; the answer: {"success":true,"error":"","data":{"image":["https://…png"],
    # "width","height","forbidden_content":false,"face_restore":"False"},"uploaded_image":"…"}
    media, _ = image_host
    _, created = await tt_post(http, emulator, "deepfake_photo", {
        "do": "create_queue", "url": f"{media}/small_photo.png", "url_image_target": f"{media}/template_face.png",
        "face_restore": "True"})
    _, result = await poll_until_done(http, emulator, "deepfake_photo", created["queueid"])
    data = result["data"]
    assert data["forbidden_content"] is False and data["face_restore"] == "True"
    assert data["image"] == [result["uploaded_image"]] and result["uploaded_image"].startswith(emulator.base_url)
    async with http.get(result["uploaded_image"]) as resp:
        swapped = Image.open(io.BytesIO(await resp.read())).convert("RGB")
    assert swapped.size == (451, 300) == (data["width"], data["height"])  # the url photo, the guest's
    plain = Image.open(io.BytesIO(transform(fixture_bytes("small_photo.png"), "image/png"))).convert("RGB")
    corner = (10, 10, 100, 60)  # where the face went in
    assert swapped.crop(corner).tobytes() != plain.crop(corner).tobytes()
    assert swapped.crop((300, 200, 440, 290)).tobytes() == plain.crop((300, 200, 440, 290)).tobytes()
    for bad in ("1", "yes"):
        _, body = await tt_post(http, emulator, "deepfake_photo", {
            "do": "create_queue", "url": f"{media}/small_photo.png",
            "url_image_target": f"{media}/template_face.png", "face_restore": bad})
        assert body["success"] is False and "face_restore" in body["error"]


async def test_turbotext_refuses_an_input_link_without_an_image_ending(emulator, http, image_host):
    # "url: string - required # url with image (format: jpg, png, jpeg)"
    media, hits = image_host
    _, body = await tt_post(http, emulator, "generate_image2image", {
        "do": "create_queue", "url": f"{media}/small_photo", "content": "x"})
    assert body == {"success": False, "error": "Неверный формат изображения по ссылке url: допустимы jpg, png, jpeg"}
    assert hits == []


async def test_turbotext_forbidden_result_and_spent_tariff(emulator, http, image_host):
    media, _ = image_host
    await control(http, emulator, provider="turbotext", script=["forbidden", "tariff"], foto_limit=7)
    form = {"do": "create_queue", "url": f"{media}/small_photo.png", "url_image_target": f"{media}/template_face.png"}
    _, created = await tt_post(http, emulator, "deepfake_photo", form)
    _, result = await poll_until_done(http, emulator, "deepfake_photo", created["queueid"])
    assert result["data"]["forbidden_content"] is True and result["limits"]["foto_limit"] == 6
    assert await tt_post(http, emulator, "deepfake_photo", form) == (
        200, {"success": False, "error": "Недостаточно фото-попыток на вашем тарифе. Пополните баланс"})
    await control(http, emulator, provider="turbotext", foto_limit=None)
    _, created = await tt_post(http, emulator, "deepfake_photo", form)
    _, result = await poll_until_done(http, emulator, "deepfake_photo", created["queueid"])
    assert "limits" not in result


async def test_turbotext_queue_items_count_as_provider_parallelism(emulator, http, image_host):
    media, _ = image_host
    await control(http, emulator, provider="turbotext", latency_seconds=0.3)
    ids = []
    for _ in range(3):
        _, created = await tt_post(http, emulator, "generate_image2image", {
            "do": "create_queue", "url": f"{media}/small_photo.png", "content": "x"})
        ids.append(created["queueid"])
    stats = (await get_json(http, f"{emulator.base_url}/emulator/stats"))["turbotext"]
    assert stats["in_flight"] == 3
    for qid in ids:
        await poll_until_done(http, emulator, "generate_image2image", qid)
    stats = (await get_json(http, f"{emulator.base_url}/emulator/stats"))["turbotext"]
    assert stats["in_flight"] == 0 and stats["max_concurrent"] == 3


async def test_turbotext_dead_link_fails_item_with_http_status(emulator, http, image_host):
    media, _ = image_host
    _, created = await tt_post(http, emulator, "mix_images", {
        "do": "create_queue", "url_image_target": f"{media}/gone.png",
        "url": f"{media}/template_style.jpg"})
    _, result = await poll_until_done(http, emulator, "mix_images", created["queueid"])
    assert result == {"success": False, "error": "Не удалось загрузить изображение по ссылке (HTTP 410)"}
    _, created = await tt_post(http, emulator, "generate_image2image", {
        "do": "create_queue", "url": f"{media}/text.png", "content": "x"})
    _, result = await poll_until_done(http, emulator, "generate_image2image",
                                      created["queueid"])
    assert result == {"success": False, "error": "Не удалось загрузить изображение по ссылке (not an image)"}
    stats = (await get_json(http, f"{emulator.base_url}/emulator/stats"))["turbotext"]
    assert stats["by_outcome"] == {"download_failed": 2}


async def test_turbotext_missing_or_wrong_bearer_is_401(emulator, http):
    form = {"do": "create_queue", "url": "http://127.0.0.1:9/x.png", "content": "x"}
    status, body = await tt_post(http, emulator, "generate_image2image", form, headers={})
    assert (status, body) == (401, {"success": False, "error": "Неверный API ключ"})
    status, _ = await tt_post(http, emulator, "generate_image2image", form,
                              headers=bearer("wrong"))
    assert status == 401


async def test_turbotext_protocol_errors(emulator, http):
    assert await tt_post(http, emulator, "make_coffee", {"do": "create_queue"}) == (
        200, {"success": False, "error": "Неизвестный метод"})
    assert await tt_post(http, emulator, "mix_images",
                         {"do": "create_queue", "url_image_target": "http://x/a.png"}) == (
        200, {"success": False, "error": "Не передан обязательный параметр: url"})
    assert await tt_post(http, emulator, "mix_images",
                         {"do": "get_result", "queueid": "999999999"}) == (
        200, {"success": False, "error": "Очередь не найдена"})


async def test_turbotext_scripted_failures(emulator, http, image_host):
    media, _ = image_host
    await control(http, emulator, provider="turbotext", script=["fail:429", "no_image", "poll_fail:404"])
    form = {"do": "create_queue", "url": f"{media}/small_photo.png", "content": "x"}
    status, body = await tt_post(http, emulator, "generate_image2image", form)
    assert status == 429 and body["success"] is False
    _, created = await tt_post(http, emulator, "generate_image2image", form)
    _, result = await poll_until_done(http, emulator, "generate_image2image",
                                      created["queueid"])
    assert result == {"success": False, "error": "Не удалось сгенерировать изображение, попробуйте ещё раз"}
    _, created = await tt_post(http, emulator, "generate_image2image", form)
    assert await tt_post(http, emulator, "generate_image2image", {"do": "get_result", "queueid": created["queueid"]}) \
        == (404, {"success": False, "error": "Очередь не найдена"})


async def test_turbotext_hang_holds_create_queue_until_released(emulator, http, image_host):
    media, _ = image_host
    await control(http, emulator, provider="turbotext", hang=True)
    form = {"do": "create_queue", "url": f"{media}/small_photo.png", "content": "x"}
    task = asyncio.create_task(tt_post(http, emulator, "generate_image2image", form))
    await asyncio.sleep(0.3)
    assert not task.done()
    stats = (await get_json(http, f"{emulator.base_url}/emulator/stats"))["turbotext"]
    assert stats["http_in_flight"] == 1
    await control(http, emulator, provider="turbotext", hang=False)
    status, body = await asyncio.wait_for(task, 5)
    assert status == 200 and body["success"] is True


# --------------------------------------------------------------------- control and logs


async def test_control_rejects_invalid_values_and_keeps_config(emulator, http):
    before = await control(http, emulator, latency_seconds=0.1)
    bad_bodies = [
        {"latency_seconds": -1},
        {"fail_rate": 1.5},
        {"no_image_rate": "0.1"},
        {"fail_status": 200},
        {"fail_status": True},
        {"provider": "openai"},
        {"script": ["ok", "explode"]},
        {"script": "ok"},
        {"hang": "yes"},
        {"output_mime": "image/gif"},
        {"latency": 1},
        [1, 2],
    ]
    for body in bad_bodies:
        async with http.post(f"{emulator.base_url}/emulator/control", json=body) as resp:
            assert resp.status == 400, body
            assert "error" in await resp.json()
    async with http.post(f"{emulator.base_url}/emulator/control", data=b"{oops") as resp:
        assert resp.status == 400
    assert await get_json(http, f"{emulator.base_url}/emulator/control") == before


async def test_control_is_per_provider_and_reset_restores_defaults(emulator, http):
    config = await control(http, emulator, provider="turbotext", latency_seconds=2.5,
                           fail_rate=0.2, fail_status=503, script=["no_image"])
    assert config["turbotext"]["latency_seconds"] == 2.5
    assert config["turbotext"]["script"] == ["no_image"]
    assert config["gemini"]["latency_seconds"] == 0.0 and config["gemini"]["fail_rate"] == 0.0
    config = await control(http, emulator, provider="turbotext", no_image_rate=0.1)
    assert config["turbotext"]["fail_rate"] == 0.2  # omitted fields keep their value
    config = await control(http, emulator, reset=True, hang=True)
    assert config["turbotext"]["latency_seconds"] == 0.0
    assert config["turbotext"]["script"] == [] and config["turbotext"]["fail_rate"] == 0.0
    assert config["gemini"]["hang"] is True and config["turbotext"]["hang"] is True


async def test_request_log_records_metadata_but_not_bytes(emulator, http, image_host):
    media, _ = image_host
    photo = fixture_bytes("small_photo.png")
    await sdk_edit(sdk_client(emulator.base_url), photo, mime="image/png", prompt="sepia please")
    _, created = await tt_post(http, emulator, "generate_image2image", {
        "do": "create_queue", "url": f"{media}/template_style.jpg", "content": "oil painting",
        "strength": "40", "seed": "7"})
    before_poll = time.time()
    await poll_until_done(http, emulator, "generate_image2image", created["queueid"])
    log = (await get_json(http, f"{emulator.base_url}/emulator/requests"))["requests"]

    g = log[0]
    assert g["provider"] == "gemini" and g["method"] == "generateContent"
    assert g["model"] == MODEL and g["prompt"] == "sepia please" and g["outcome"] == "ok"
    assert g["images"] == [{"mime": "image/png", "size_bytes": len(photo),
                            "sha256": hashlib.sha256(photo).hexdigest(), "width": 451,
                            "height": 300, "source": "inline", "format": "PNG", "frames": 1,
                            "orientation": None}]
    assert isinstance(g["received_at"], float)

    t = log[1]
    assert t["provider"] == "turbotext" and t["method"] == "generate_image2image"
    assert t["do"] == "create_queue" and t["queueid"] == created["queueid"]
    assert t["content"] == "oil painting" and t["outcome"] == "ok"
    assert t["fields"] == {"content": "oil painting", "strength": "40", "seed": "7"}
    style = fixture_bytes("template_style.jpg")
    assert t["images"][0]["source"] == f"{media}/template_style.jpg"
    assert t["images"][0]["sha256"] == hashlib.sha256(style).hexdigest()
    assert (t["images"][0]["width"], t["images"][0]["height"]) == (640, 427)

    polls = [e for e in log if e.get("do") == "get_result"]
    assert polls and all(e["queueid"] == created["queueid"] for e in polls)
    assert all(e["received_at"] >= before_poll for e in polls)
    assert polls[-1]["outcome"] == "success"
    text = json.dumps(log)
    assert base64.b64encode(photo[:60]).decode()[:40] not in text
    assert KEY not in text


async def test_make_app_runs_under_a_plain_app_runner():
    app = make_app(latency_seconds=0.0)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/emulator/stats") as resp:
                assert set(await resp.json()) == {"gemini", "turbotext"}
    finally:
        await runner.cleanup()


async def test_run_prints_banner_and_stops_on_sigterm():
    code = "from photoslot.emulator import run; run(port=0, turbotext_api_key=None)"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        assert line.startswith("photoslot emulator listening on http://127.0.0.1:")
        assert line.endswith("(gemini key: set, turbotext key: any)")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_turbotext_image2image_refuses_values_outside_turbotexts_documented_ranges(emulator, http, image_host):
    media, _ = image_host
    base = {"do": "create_queue", "url": f"{media}/small_photo.png", "content": "x"}
    for field, value in (("seed", "0"), ("seed", str(10 ** 10 + 1)), ("user_id", "0"), ("strength", "81")):
        _, body = await tt_post(http, emulator, "generate_image2image", {**base, field: value})
        assert body["success"] is False and field in body["error"], (field, body)
    _, body = await tt_post(http, emulator, "generate_image2image", {**base, "seed": str(10 ** 10), "user_id": "1",
                                                                     "original_language": "ru"})
    assert body["success"] is True
