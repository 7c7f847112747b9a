"""All six catalogue operations end to end through POST /ingest, against the emulator speaking
each provider's wire protocol: the right inputs arrive, a valid image comes back."""
from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from photoslot import media
from tests.conftest import FIXTURES, emulator_requests
from tests.integration.operations import TEMPLATE_FILES, setup_slot
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

TT = dict(providers__turbotext__poll_interval_seconds=0.1)


def fixture_sha(name: str) -> str:
    return media.sha256_hex((FIXTURES / name).read_bytes())


def assert_valid_jpeg_of(body: bytes, size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(body)) as out:
        assert out.format == "JPEG" and out.size == size


@pytest.mark.parametrize("operation, roles, prompt", [
    ("image_edit", (), "turn the photo sepia"),
    ("style_transfer", ("style",), "paint it like the reference"),
    ("identity_transfer", ("face",), "put this face in the photo"),
])
async def test_gemini_operation_sends_photo_templates_and_prompt_inline(make_cfg, pg_dsn, emulator, photo_bytes,
                                                                       operation, roles, prompt):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-002", "gemini", operation, prompt=prompt, roles=roles, params={"seed": 7})
        status, headers, body = await s.ingest("slot-002", photo_bytes)
        assert status == 200, body[:300]
        assert_valid_jpeg_of(body, (1248, 832))  # Gemini answers at its own ~1 MP size for 3:2
        job = await s.job(headers["X-Job-Id"])
        assert job["provider_requests"] == 1
        assert job["provider_response_id"] and job["provider_tokens"] > 0
    calls = [r for r in await emulator_requests(emulator) if r["provider"] == "gemini"]
    assert len(calls) == 1
    call = calls[0]
    assert call["model"] == "gemini-2.5-flash-image"
    assert call["fields"]["responseModalities"] == ["IMAGE"]
    assert prompt in call["prompt"]
    images = call["images"]
    assert images[0]["sha256"] == media.sha256_hex(photo_bytes)  # the photo first: the primary input
    assert [i["sha256"] for i in images[1:]] == [fixture_sha(TEMPLATE_FILES[r]) for r in roles]


async def test_turbotext_image_edit_posts_photo_link_and_parameters(make_cfg, pg_dsn, emulator, photo_bytes):
    params = {"strength": 55, "seed": 42, "scale": 9.5, "negative_prompt": "blur", "original_language": "en"}
    async with Studio(make_cfg(**TT), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-003", "turbotext", "image_edit", prompt="a watercolour portrait", params=params)
        status, headers, body = await s.ingest("slot-003", photo_bytes)
        assert status == 200, body[:300]
        assert_valid_jpeg_of(body, (3000, 2000))
        job = await s.job(headers["X-Job-Id"])
        assert job["provider_requests"] == 1 and job["poll_count"] >= 1
        assert job["provider_job_reference"]
        assert s.files("public") == []  # the photo's link copy went with the job
    log = [r for r in await emulator_requests(emulator) if r["provider"] == "turbotext"]
    create = [r for r in log if r.get("do") == "create_queue"]
    assert len(create) == 1 and create[0]["path"] == "/api_ai/generate_image2image"
    assert str(create[0]["queueid"]) == job["provider_job_reference"]
    assert create[0]["fields"] == {"content": "a watercolour portrait", "strength": "55", "seed": "42",
                                   "scale": "9.5", "negative_prompt": "blur", "original_language": "en",
                                   "user_id": "1"}
    (photo,) = create[0]["images"]
    assert photo["role"] == "url" and photo["sha256"] == media.sha256_hex(photo_bytes)
    # "url with image (format: jpg, png, jpeg)": the link ends in the file's extension
    assert photo["source"].startswith(f"{s.base_url}/public/media/") and photo["source"].endswith(".jpg")
    assert any(r.get("do") == "get_result" and r["outcome"] == "success" for r in log)
    assert any(r.get("method") == "result" for r in log)


async def test_turbotext_style_transfer_mixes_photo_with_style_link(make_cfg, pg_dsn, emulator, photo_bytes):
    async with Studio(make_cfg(**TT), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-004", "turbotext", "style_transfer", prompt="oil painting", roles=("style",))
        status, headers, body = await s.ingest("slot-004", photo_bytes)
        assert status == 200, body[:300]
        assert_valid_jpeg_of(body, (3000, 2000))
    (create,) = [r for r in await emulator_requests(emulator) if r.get("do") == "create_queue"]
    assert create["path"] == "/api_ai/mix_images" and create["fields"] == {"content": "oil painting"}
    by_role = {i["role"]: i for i in create["images"]}
    assert by_role["url_image_target"]["sha256"] == media.sha256_hex(photo_bytes)
    assert by_role["url"]["sha256"] == fixture_sha("template_style.jpg")


async def test_turbotext_identity_transfer_puts_the_templates_face_on_the_guest_as_documented(make_cfg, pg_dsn,
                                                                                              emulator):
    # deepfake_photo's page: url — "the photo of the person whose face is replaced" (the guest),
    # url_image_target — "the photo with the face to put in" (the template); face_restore True/False
    photo = (FIXTURES / "small_photo.png").read_bytes()
    async with Studio(make_cfg(**TT), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-005", "turbotext", "identity_transfer", roles=("face",),
                         params={"face_restore": True})
        status, headers, body = await s.ingest("slot-005", photo, content_type="image/png")
        assert status == 200, body[:300]
        with Image.open(io.BytesIO(body)) as out:  # a PNG shot comes back PNG: the booth's own format
            assert out.format == "PNG" and out.size == (451, 300)  # the guest's photo, not the template's
        assert headers["Content-Type"] == "image/png"
        assert s.files("templates")  # a template's file is only borrowed by the link
    (create,) = [r for r in await emulator_requests(emulator) if r.get("do") == "create_queue"]
    assert create["path"] == "/api_ai/deepfake_photo" and create["fields"] == {"face_restore": "True"}
    by_role = {i["role"]: i for i in create["images"]}
    assert by_role["url"]["sha256"] == media.sha256_hex(photo)
    assert by_role["url_image_target"]["sha256"] == fixture_sha("template_face.png")
    assert by_role["url"]["source"].endswith(".png") and by_role["url_image_target"]["source"].endswith(".png")


async def test_turbotext_failure_text_lands_in_the_job_detail(make_cfg, pg_dsn, emulator, photo_bytes):
    from tests.conftest import emulator_control

    await emulator_control(emulator, provider="turbotext", script=["no_image"])
    async with Studio(make_cfg(**TT), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-003", "turbotext", "image_edit", prompt="x")
        status, headers, body = await s.ingest("slot-003", photo_bytes)
        assert status == 502
        answer = json.loads(body)
        job = await s.job(answer["job_id"])
        assert job["status"] == "failed" and job["failure_reason"] == "provider_error"
        assert "«Не удалось сгенерировать изображение" in job["failure_detail"]  # Turbotext's own words, kept
        assert s.files("uploads") == [] and s.files("public") == []


async def test_turbotext_image_edit_sends_turbotexts_documented_defaults(make_cfg, pg_dsn, emulator, photo_bytes):
    async with Studio(make_cfg(**TT), pg_dsn) as s:
        await s.set_password()
        await setup_slot(s, "slot-003", "turbotext", "image_edit", prompt="a watercolour portrait")
        status, _, body = await s.ingest("slot-003", photo_bytes)
        assert status == 200, body[:300]
    create = [r for r in await emulator_requests(emulator) if r.get("do") == "create_queue"]
    assert create[0]["fields"] == {"content": "a watercolour portrait", "strength": "40", "scale": "7.5",
                                   "original_language": "ru", "user_id": "1"}  # no seed: Turbotext picks one
