"""Gemini through POST /ingest, fed the answers Google documents or is publicly seen to give (the
emulator copies them; docs/EMULATOR.md names each source): NO_IMAGE retries, deadlines, 429 with
RetryInfo, a key with no quota (`limit: 0`), refusals with their finishMessage, a text answer
instead of an image, an unknown model, a region Google does not serve, an HTML 502, the 20 MiB
request limit, and the output size the slot asks for."""
from __future__ import annotations

import io
import html
import json
import time

import pytest
from PIL import Image

from photoslot import photos, provider_health
from tests.big_photo import big_camera_jpeg
from tests.conftest import FIXTURES, emulator_control, emulator_requests
from tests.integration.test_web_event_day import card_of
from tests.integration.studio import Studio
from tests.integration.test_web_pages import signed_in

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


async def run_one(s, **kw):
    await s.set_password()
    await s.configure("slot-001")
    status, headers, body = await s.ingest("slot-001", PHOTO, content_type="image/png", **kw)
    job_id = headers.get("X-Job-Id") or json.loads(body).get("job_id")
    return status, body, await s.wait_job(job_id, lambda j: j["is_finalized"])


async def gemini_calls(emulator) -> list[dict]:
    return [r for r in await emulator_requests(emulator) if r["provider"] == "gemini"]


async def test_no_image_twice_then_an_image_answers_200(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["no_image", "no_image", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200, body[:300]
    assert job["status"] == "succeeded" and job["provider_requests"] == 3
    assert job["provider_response_id"]
    assert job["provider_tokens"] > 0  # every attempt's usage, the image-less ones included
    assert [c["outcome"] for c in await gemini_calls(emulator)] == ["no_image", "no_image", "ok"]


async def test_no_image_forever_ends_504_inside_the_window_and_no_call_after_the_deadline(
        make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", no_image_rate=1.0, latency_seconds=0.2)
    cfg = make_cfg(ingest__sync_response_seconds=2.5, providers__gemini__max_attempts=100)  # the deadline stops it
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        sent = time.time()  # the booth's own clock: the set-up above and the job read below are not the shot
        status, headers, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
        answered = time.time()
        job = await s.wait_job(json.loads(body)["job_id"], lambda j: j["is_finalized"])
    assert status == 504
    assert json.loads(body)["failure_reason"] == "timeout"
    assert job["status"] == "timeout"
    assert answered - sent <= 2.5 + 0.2
    calls = await gemini_calls(emulator)
    assert len(calls) >= 2 and job["provider_requests"] == len(calls)
    outcomes = [c["outcome"] for c in calls]
    # every answer was NO_IMAGE; only the attempt in flight at the deadline may have been cut off
    assert set(outcomes[:-1]) == {"no_image"} and outcomes[-1] in ("no_image", "cancelled")
    assert max(c["received_at"] for c in calls) < sent + 2.5  # nothing sent after the deadline


async def test_no_image_forever_stops_at_max_attempts_with_a_502_that_says_why(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", no_image_rate=1.0)
    async with Studio(make_cfg(ingest__sync_response_seconds=20), pg_dsn) as s:
        started = time.monotonic()
        status, body, job = await run_one(s)
        took = time.monotonic() - started
    assert status == 502 and json.loads(body)["failure_reason"] == "provider_error"
    assert job["provider_requests"] == 3 and len(await gemini_calls(emulator)) == 3  # the default max_attempts
    assert job["failure_detail"].startswith("finish reason NO_IMAGE × 3 from gemini")
    assert took < 10  # the cap, not the 20 s window


async def test_503_on_every_call_ends_after_max_attempts_naming_the_status_and_count(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    cfg = make_cfg(ingest__sync_response_seconds=20, providers__gemini__max_attempts=2)
    async with Studio(cfg, pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502 and job["failure_reason"] == "provider_error"
    assert job["failure_detail"].startswith("HTTP 503 × 2 from gemini, last: HTTP 503")
    assert len(await gemini_calls(emulator)) == 2


async def test_a_timeout_detail_names_what_the_provider_answered_meanwhile(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
    cfg = make_cfg(ingest__sync_response_seconds=2, providers__gemini__max_attempts=100,
                   providers__gemini__down_after_failures=100)
    async with Studio(cfg, pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 504 and job["failure_reason"] == "timeout"
    assert job["failure_detail"].startswith("no result within the response window; the provider: HTTP 503 × ")
    assert "from gemini, last: HTTP 503" in job["failure_detail"]


async def test_a_missing_api_key_is_stored_and_answered_as_provider_unavailable(make_cfg, pg_dsn, emulator):
    async with Studio(make_cfg(providers__gemini__api_key=None), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 503 and json.loads(body)["failure_reason"] == "provider_unavailable"
    assert job["status"] == "failed" and job["failure_reason"] == "provider_unavailable"
    assert "API key is not configured" in job["failure_detail"]
    assert await gemini_calls(emulator) == []


async def test_429_then_success_is_retried_within_the_deadline(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["fail:429", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200, body[:300]
    assert job["provider_requests"] == 2
    assert [c["outcome"] for c in await gemini_calls(emulator)] == ["http_429", "ok"]


async def test_503_then_success_is_retried(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["fail:503", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200 and job["provider_requests"] == 2


async def test_400_fails_at_once_without_retry(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["fail:400", "ok"])
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        started = time.monotonic()
        status, body, job = await run_one(s)
        took = time.monotonic() - started
    assert status == 502
    answer = json.loads(body)
    assert answer["failure_reason"] == "provider_error"
    assert job["status"] == "failed" and job["failure_reason"] == "provider_error"
    assert "HTTP 400" in job["failure_detail"]
    assert job["provider_requests"] == 1 and len(await gemini_calls(emulator)) == 1
    assert took < 5  # failed on the answer, not at the 10 s deadline


async def test_safety_block_fails_as_provider_refused_with_a_readable_reason(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["safety"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502
    assert json.loads(body)["failure_reason"] == "provider_refused"
    assert job["status"] == "failed" and job["failure_reason"] == "provider_refused"
    assert "blocked" in job["failure_detail"] and "SAFETY" in job["failure_detail"]
    assert len(await gemini_calls(emulator)) == 1


async def test_image_that_does_not_decode_fails_as_invalid_result(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["not_image"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
        assert s.files("results") == []
    assert status == 502 and job["failure_reason"] == "invalid_result"


async def health(s) -> dict:
    (row,) = await provider_health.board_view(s.ctx, ["gemini"])
    return row


async def test_a_key_with_no_quota_for_the_model_is_answered_at_once_and_takes_gemini_down_with_the_reason(
        make_cfg, pg_dsn, emulator):
    # 429 RESOURCE_EXHAUSTED "… limit: 0, model: gemini-2.5-flash-image … Please retry in 31.2s." with
    # QuotaFailure and RetryInfo {retryDelay: "31s"}: a project without billing has no image quota at all
    await emulator_control(emulator, provider="gemini", no_quota=True)
    async with Studio(make_cfg(ingest__sync_response_seconds=20), pg_dsn) as s:
        started = time.monotonic()
        status, body, job = await run_one(s)
        took = time.monotonic() - started
        assert status == 503 and json.loads(body)["failure_reason"] == "provider_unavailable"
        assert took < 5
        reason = "this key's project has no quota for gemini-2.5-flash-image (billing not enabled?)"
        assert reason in job["failure_detail"]
        assert "limit: 0" in job["failure_detail"] and "Please retry in 31.2s" in job["failure_detail"]
        h = await health(s)
        assert h["state"] == "down" and h["reason"] == reason
        assert reason in h["summary"]
        again = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert again[0] == 503 and reason in json.loads(again[2])["details"]  # refused before any call
        alerts = {r["name"]: r for r in await s.ctx.db.fetchall("ops_alert_states")}
        assert alerts["provider_down:gemini"]["active"] and reason in alerts["provider_down:gemini"]["message"]
        http, _ = await signed_in(s, s.cfg)  # the web admin: the Slots page's card, every page's banner,
        async with http:                      # the Providers page — each says why in words
            async with http.get(s.base_url + "/admin/") as r:
                page = html.unescape(await r.text())
            async with http.get(s.base_url + "/admin/providers") as r:
                providers_page = html.unescape(await r.text())
        card = card_of(page, "slot-001")
        assert "provider down" in card and reason in card
        banner = page[page.index('class="banner" role="alert"'):]
        assert reason in banner[:banner.index("</div>")]
        section = providers_page[providers_page.index('id="provider-gemini"'):providers_page.index('id="provider-turbotext"')]
        assert reason in section
    assert len(await gemini_calls(emulator)) == 1 and job["provider_requests"] == 1


async def test_a_429_whose_retry_delay_ends_after_the_window_is_answered_now_with_googles_whole_message(
        make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["rate_limit:31", "ok"])
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        started = time.monotonic()
        status, body, job = await run_one(s)
        took = time.monotonic() - started
        assert (await health(s))["state"] == "up"  # one 429 is not an outage
    assert status == 503 and job["failure_reason"] == "quota_exhausted"
    assert took < 3  # not the 10 s window, not three retries in 1.5 s
    assert "wait 31 s" in job["failure_detail"]
    # Google's message, whole: the metric over its limit and its own "retry in", past the old 300 characters
    assert "Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_paid_tier_requests, " \
           "limit: 500, model: gemini-2.5-flash-image" in job["failure_detail"]
    assert "Please retry in 31.2s" in job["failure_detail"]
    assert len(await gemini_calls(emulator)) == 1
    print(f"\n429 asking 31 s with a 10 s window: answered {status} in {took:.2f} s after 1 request")


async def test_a_429_whose_retry_delay_fits_the_window_waits_that_long_then_succeeds(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["rate_limit:1", "ok"])
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200, body[:300]
    first, second = await gemini_calls(emulator)
    assert second["received_at"] - first["received_at"] >= 0.95  # RetryInfo's 1 s, not the 0.5 s backoff
    assert job["provider_requests"] == 2


@pytest.mark.parametrize("outcome, finish, words", [
    ("image_safety", "IMAGE_SAFETY", "violated Google's Generative AI Prohibited Use policy"),
    ("image_other", "IMAGE_OTHER", "could not generate the image based on the prompt"),
    ("prohibited", "PROHIBITED_CONTENT", None),
])
async def test_an_image_level_refusal_ends_at_once_with_its_finish_reason_and_message(make_cfg, pg_dsn, emulator,
                                                                                      outcome, finish, words):
    await emulator_control(emulator, provider="gemini", script=[outcome, "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502 and job["failure_reason"] == "provider_refused"
    assert f"finish reason {finish}" in job["failure_detail"]
    if words:
        assert "finishMessage: " in job["failure_detail"] and words in job["failure_detail"]
    assert len(await gemini_calls(emulator)) == 1  # a refusal is not asked again (and billed again)


async def test_a_text_answer_instead_of_an_image_is_tried_once_more_then_refused_with_the_models_words(
        make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["text_only", "text_only", "ok"])
    async with Studio(make_cfg(providers__gemini__max_attempts=5), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502 and job["failure_reason"] == "provider_refused"
    assert "answered with text instead of an image, 2 times" in job["failure_detail"]
    assert "«I can't edit this photo the way you asked." in job["failure_detail"]
    assert job["provider_requests"] == 2 and len(await gemini_calls(emulator)) == 2


async def test_one_text_answer_then_an_image_answers_200(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["text_only", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200, body[:300]
    assert job["provider_requests"] == 2


async def test_an_unknown_model_name_fails_at_once_naming_the_models_there_are(make_cfg, pg_dsn, emulator):
    # 404 NOT_FOUND "models/… is not found for API version v1beta, or is not supported for generateContent."
    async with Studio(make_cfg(providers__gemini__model="gemini-2.5-flash-image-preview"), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502 and job["failure_reason"] == "provider_error"
    assert "knows no model 'gemini-2.5-flash-image-preview'" in job["failure_detail"]
    assert "is not found for API version" in job["failure_detail"]
    assert "gemini-3-pro-image-preview" in job["failure_detail"]
    assert len(await gemini_calls(emulator)) == 1


async def test_a_region_google_does_not_serve_takes_gemini_down_with_the_reason(make_cfg, pg_dsn, emulator):
    # 400 FAILED_PRECONDITION "User location is not supported for the API use."
    await emulator_control(emulator, provider="gemini", script=["location"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
        assert status == 503 and job["failure_reason"] == "provider_unavailable"
        assert "User location is not supported for the API use." in job["failure_detail"]
        h = await health(s)
        assert h["state"] == "down" and "does not serve the Gemini API where this studio is" in h["reason"]


async def test_an_html_502_page_is_retried_and_named_by_its_title(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["html_502", "html_502", "html_502"])
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 502 and job["failure_reason"] == "provider_error"
    assert job["failure_detail"].startswith("HTTP 502 × 3 from gemini, last: HTTP 502")
    assert "HTML page: Error 502 (Server Error)!!1" in job["failure_detail"] and "<" not in job["failure_detail"]


async def test_a_17_mb_camera_jpeg_is_reduced_to_fit_the_20_mib_request_and_answered_200(make_cfg, pg_dsn, emulator):
    photo = big_camera_jpeg()
    main, _ = photos.main_image(photo, photos.inspect(photo, pixel_data=False))
    async with Studio(make_cfg(ingest__sync_response_seconds=30), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        started = time.monotonic()
        status, headers, body = await s.ingest("slot-001", photo, timeout=60)
        took = time.monotonic() - started
        assert status == 200, body[:300]
        with Image.open(io.BytesIO(body)) as out:
            assert out.format == "JPEG" and out.size == (1248, 832)
    (call,) = await gemini_calls(emulator)
    assert call["outcome"] == "ok" and call["request_bytes"] <= 20 * 1024 * 1024
    (sent,) = call["images"]
    assert (sent["width"], sent["height"]) == (6000, 4000) and sent["size_bytes"] < len(main)
    print("\n17 MB camera JPEG:", {"upload_bytes": len(photo), "main_image_bytes": len(main),
                                   "request_if_sent_as_is": 4 * ((len(main) + 2) // 3),
                                   "image_sent_bytes": sent["size_bytes"], "request_bytes": call["request_bytes"],
                                   "answered_s": round(took, 2)})


async def test_the_slot_asks_for_model_aspect_ratio_and_size_and_gets_the_models_documented_size(
        make_cfg, pg_dsn, emulator):
    # gemini-3-pro-image-preview at 2K, 16:9: 2752×1536 (the image-generation page's table)
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001", params={"model": "gemini-3-pro-image-preview", "aspect_ratio": "16:9",
                                              "image_size": "2K"})
        status, _, body = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert status == 200, body[:300]
        with Image.open(io.BytesIO(body)) as out:
            assert out.size == (2752, 1536)
    (call,) = await gemini_calls(emulator)
    assert call["model"] == "gemini-3-pro-image-preview"
    assert call["fields"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}


async def test_without_an_aspect_ratio_the_one_nearest_to_the_upright_photo_is_asked_for(make_cfg, pg_dsn, emulator):
    portrait = (FIXTURES / "dslr_portrait_orientation6.jpg").read_bytes()  # stored 3:2, upright 2:3
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, _, body = await s.ingest("slot-001", portrait)
        assert status == 200, body[:300]
        with Image.open(io.BytesIO(body)) as out:
            assert out.size == (832, 1248)  # gemini-2.5-flash-image's 2:3
    (call,) = await gemini_calls(emulator)
    assert call["fields"]["imageConfig"] == {"aspectRatio": "2:3"}


async def test_a_body_that_is_not_json_is_a_failed_call_and_retried(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", script=["truncated_json", "ok"])
    async with Studio(make_cfg(), pg_dsn) as s:
        status, body, job = await run_one(s)
    assert status == 200, body[:300]
    assert job["provider_requests"] == 2
