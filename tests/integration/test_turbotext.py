"""Turbotext through POST /ingest, fed what Turbotext's photo-API pages document (the emulator copies
their samples; docs/EMULATOR.md quotes each): queue polling, the three final answers, moderation,
the tariff's limits, Russian error texts, deadlines, public links that really expire."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from photoslot import provider_health
from photoslot.providers import catalogue
from tests.conftest import FIXTURES, emulator_control, emulator_requests
from tests.integration.operations import setup_slot
from tests.integration.studio import Studio
from tests.integration.test_metrics import scrape, value

pytestmark = pytest.mark.usefixtures("clean_state")

PHOTO = (FIXTURES / "small_photo.png").read_bytes()


def tt_cfg(make_cfg, **kw):
    return make_cfg(providers__turbotext__poll_interval_seconds=0.1, **kw)


async def ingest(s, slot="slot-001"):
    status, headers, body = await s.ingest(slot, PHOTO, content_type="image/png")
    job_id = headers.get("X-Job-Id") or json.loads(body).get("job_id")
    return status, body, await s.wait_job(job_id, lambda j: j["is_finalized"])


async def turbotext_log(emulator) -> list[dict]:
    return [r for r in await emulator_requests(emulator) if r["provider"] == "turbotext"]


async def health_of(s, provider="turbotext") -> dict:
    (row,) = await provider_health.board_view(s.ctx, [provider])
    return row


async def test_slow_queue_answering_reconnect_still_gets_200_and_the_polls_are_counted(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", reconnect_polls=5)
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 200, body[:300]
    polls = [r for r in await turbotext_log(emulator) if r.get("do") == "get_result"]
    assert [p["outcome"] for p in polls[:5]] == ["reconnect"] * 5 and polls[-1]["outcome"] == "success"
    assert job["poll_count"] == len(polls) >= 6
    assert job["provider_requests"] == 1  # polls are not billable requests
    assert job["provider_job_reference"] == str(polls[0]["queueid"])


async def test_image2image_result_is_found_in_data_image_relative_to_the_turbotext_host(make_cfg, pg_dsn, emulator):
    # generate_image2image's documented final answer has no uploaded_image, only
    # "data": {"image": ["image/generate_image2image_id12_0.png"], …}: a path on the Turbotext host
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 200, body[:300]
    downloads = [r for r in await turbotext_log(emulator) if r.get("method") == "result"]
    assert [d["path"].split("/")[1] for d in downloads] == ["image"] and downloads[0]["outcome"] == "ok"


async def test_mix_images_result_is_the_top_level_uploaded_image(make_cfg, pg_dsn, emulator):
    # mix_images' documented final answer: {"success":true,"error":"","data":{…},"uploaded_image":"…download.php?f=…png"}
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "style_transfer", prompt="oil", roles=("style",))
        status, body, job = await ingest(s)
    assert status == 200, body[:300]
    downloads = [r for r in await turbotext_log(emulator) if r.get("method") == "result"]
    assert [d["path"] for d in downloads] == ["/download.php"]


async def test_a_result_flagged_forbidden_content_is_refused_and_never_downloaded(make_cfg, pg_dsn, emulator):
    # deepfake_photo's documented final answer carries data.forbidden_content: the moderation's verdict
    await emulator_control(emulator, provider="turbotext", script=["forbidden"])
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "identity_transfer", roles=("face",))
        status, body, job = await ingest(s)
        assert s.files("results") == []
    assert status == 502 and json.loads(body)["failure_reason"] == "provider_refused"
    assert "forbidden_content" in job["failure_detail"]
    assert not [r for r in await turbotext_log(emulator) if r.get("method") == "result"]


async def test_the_tariffs_limits_are_recorded_as_a_metric_and_a_low_one_raises_the_alert(make_cfg, pg_dsn,
                                                                                         emulator):
    # every final answer may carry "limits": {"foto_limit": 123, "text_limit": 123} (the photos left)
    await emulator_control(emulator, provider="turbotext", foto_limit=41)
    async with Studio(tt_cfg(make_cfg, alerts__provider_quota_remaining=40), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        assert (await ingest(s))[0] == 200
        assert (await health_of(s))["quota_remaining"] == 40
        await s.ctx.health.refresh(s.ctx.db)
        m = await scrape(s)
        assert value(m, "photoslot_provider_quota_remaining", provider="turbotext") == 40
        assert value(m, "photoslot_alert_active", alert="provider_quota_low:turbotext", severity="warning") == 1
        await emulator_control(emulator, provider="turbotext", foto_limit=500)
        assert (await ingest(s))[0] == 200
        await s.ctx.health.refresh(s.ctx.db)
        m = await scrape(s)
        assert value(m, "photoslot_provider_quota_remaining", provider="turbotext") == 499
        assert value(m, "photoslot_alert_active", alert="provider_quota_low:turbotext", severity="warning") == 0


async def test_a_spent_tariff_in_russian_stops_the_provider_with_the_reason_in_words(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", foto_limit=0)
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
        assert status == 503 and json.loads(body)["failure_reason"] == "quota_exhausted"
        assert "«Недостаточно фото-попыток" in job["failure_detail"]  # Turbotext's own text, kept
        health = await health_of(s)
        assert health["state"] == "down" and "tariff has no photos left" in health["reason"]
        again = await s.ingest("slot-001", PHOTO, content_type="image/png")
        assert again[0] == 503 and "tariff has no photos left" in json.loads(again[2])["details"]
    assert len([r for r in await turbotext_log(emulator) if r.get("do") == "create_queue"]) == 1


async def test_a_moderation_refusal_in_russian_is_provider_refused_with_turbotexts_text(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", script=["safety"])
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 502 and json.loads(body)["failure_reason"] == "provider_refused"
    assert "«Изображение не прошло модерацию" in job["failure_detail"]


async def test_a_wrong_key_fails_the_shot_at_once_with_turbotexts_answer_and_the_fix(make_cfg, pg_dsn, emulator):
    async with Studio(tt_cfg(make_cfg, providers__turbotext__api_key="wrong"), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
        assert status == 502 and job["failure_reason"] == "provider_error"
        assert "refuses the API key: «Неверный API ключ»" in job["failure_detail"]
        assert "settings provider-key turbotext" in job["failure_detail"]
        # not down: the next shot uses a working key as soon as one is set
        assert (await health_of(s))["state"] == "up"


async def test_a_4xx_on_a_poll_fails_the_job_at_once_not_at_the_windows_end(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", script=["poll_fail:404"])
    async with Studio(tt_cfg(make_cfg, ingest__sync_response_seconds=10), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        started = time.monotonic()
        status, body, job = await ingest(s)
        took = time.monotonic() - started
    assert status == 502 and job["failure_reason"] == "provider_error"
    assert "HTTP 404" in job["failure_detail"] and "«Очередь не найдена»" in job["failure_detail"]
    assert took < 3  # answered on the poll, not at the 10 s window
    polls = [r for r in await turbotext_log(emulator) if r.get("do") == "get_result"]
    assert len(polls) == 1
    print(f"\nTurbotext poll answered 404, 10 s window: answered {status} in {took:.2f} s")


async def test_job_timing_out_stops_polling_at_the_deadline(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", latency_seconds=30)  # the queue never finishes in time
    async with Studio(tt_cfg(make_cfg, ingest__sync_response_seconds=2), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        sent = time.time()
        status, body, job = await ingest(s)
        assert status == 504
        assert job["status"] == "timeout"
        await asyncio.sleep(0.8)  # a poller that did not stop would show up here
        assert s.files("public") == []
    polls = [r for r in await turbotext_log(emulator) if r.get("do") == "get_result"]
    assert len(polls) >= 3 and all(p["outcome"] == "reconnect" for p in polls)
    assert max(p["received_at"] for p in polls) < sent + 2.0


async def test_public_link_fetched_after_its_ttl_gets_410_and_the_job_fails_with_turbotexts_text(
        make_cfg, pg_dsn, emulator):
    # Turbotext is slow to start: create_queue is held, so it fetches the photo only later.
    await emulator_control(emulator, provider="turbotext", hang=True)
    async with Studio(tt_cfg(make_cfg, ingest__sync_response_seconds=6), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        task = asyncio.create_task(ingest(s))
        while not [r for r in await turbotext_log(emulator) if r.get("do") == "create_queue"]:
            await asyncio.sleep(0.05)
        s.clock.advance(6.5)  # past T_public_link_ttl (= T_sync_response) of the links just made
        await emulator_control(emulator, provider="turbotext", hang=False)
        status, body, job = await task
    assert status == 502
    assert job["failure_reason"] == "provider_error"
    assert "«Не удалось загрузить изображение по ссылке (HTTP 410)»" in job["failure_detail"]
    (create,) = [r for r in await turbotext_log(emulator) if r.get("do") == "create_queue"]
    assert create["outcome"] == "download_failed"


async def test_create_queue_503_is_retried_then_succeeds(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", script=["fail:503", "ok"])
    async with Studio(tt_cfg(make_cfg), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        status, body, job = await ingest(s)
    assert status == 200, body[:300]
    assert job["provider_requests"] == 2


async def test_create_queue_failing_stops_at_max_attempts_with_the_count_in_the_detail(make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="turbotext", fail_rate=1.0, fail_status=502)
    cfg = tt_cfg(make_cfg, ingest__sync_response_seconds=20, providers__turbotext__max_attempts=2)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-001", "turbotext", "image_edit", prompt="sepia")
        started = time.monotonic()
        status, body, job = await ingest(s)
        assert time.monotonic() - started < 10  # the cap, not the 20 s window
    assert status == 502 and job["failure_reason"] == "provider_error"
    assert job["failure_detail"].startswith("HTTP 502 × 2 from turbotext")
    assert job["provider_requests"] == 2
    assert len([r for r in await turbotext_log(emulator) if r.get("do") == "create_queue"]) == 2


async def test_a_negative_prompt_over_80_words_is_refused_when_the_slot_is_saved():
    # generate_image2image: "negative_prompt: string # what to remove on image (max: 80 words)"
    errors = catalogue.validate("turbotext", "image_edit", {"prompt": "p", "params": {"negative_prompt": "a " * 81}})
    assert errors == {"settings_json.params.negative_prompt": "must be at most 80 words"}
    assert catalogue.validate("turbotext", "image_edit", {"prompt": "p", "params": {"negative_prompt": "a " * 80}}) == {}
