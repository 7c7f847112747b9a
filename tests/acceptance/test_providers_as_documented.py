"""A studio fed exactly what the providers document (the emulator answers their documented shapes;
docs/EMULATOR.md): `photoslot serve` as a real process, one slot per operation of each provider set
up with the CLI, a booth photo through each — the result is that photo transformed, at the size
the provider answers, the face swap in the documented direction — then Turbotext's moderation
verdict refused, a 17 MB camera JPEG answered 200, `doctor --live` passing, and a Gemini key with
no image quota answered in under 5 s with one request and its reason in the job and in
`providers status`."""
from __future__ import annotations

import asyncio
import io
import json
import sys
import time

import pytest
from PIL import Image

from tests.acceptance.procs import cli, post_photo, start_serve
from tests.big_photo import big_camera_jpeg
from tests.conftest import FIXTURES, emulator_control, emulator_stats

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

PHOTO = (FIXTURES / "dslr_landscape.jpg").read_bytes()  # 3000×2000, 3:2
STYLE = str(FIXTURES / "template_style.jpg")  # 640×427
FACE = str(FIXTURES / "template_face.png")  # 220×240
MAGENTA = (230, 0, 180)  # the emulator's border: the photo went through the provider

# slot → (provider, operation, slot set arguments, the size the provider answers for the 3:2 photo)
SLOTS = {
    "slot-002": ("gemini", "style_transfer", ["--prompt", "in the style of the reference", "--template",
                                              f"style={STYLE}", "--param", "aspect_ratio=16:9"], (1344, 768)),
    "slot-003": ("gemini", "identity_transfer", ["--prompt", "put this face in the photo", "--template",
                                                 f"face={FACE}", "--param", "model=gemini-3-pro-image-preview",
                                                 "--param", "image_size=2K"], (2528, 1696)),
    "slot-004": ("turbotext", "image_edit", ["--prompt", "watercolour portrait", "--param",
                                             "negative_prompt=text, watermark"], (3000, 2000)),
    "slot-005": ("turbotext", "style_transfer", ["--template", f"style={STYLE}"], (3000, 2000)),
    "slot-006": ("turbotext", "identity_transfer", ["--template", f"face={FACE}", "--param", "face_restore=yes"],
                 (3000, 2000)),
}


def jobs_of(config, dsn, slot: str) -> list[dict]:
    r = cli(config, dsn, "jobs", "--slot", slot, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_transformed(body: bytes, size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(body)) as out:
        assert out.format == "JPEG" and out.size == size  # the booth sent a JPEG: it gets a JPEG back
        rgb = out.convert("RGB")
        corner = rgb.getpixel((1, size[1] // 2))
        assert all(abs(a - b) < 40 for a, b in zip(corner, MAGENTA)), corner


async def test_every_operation_of_both_providers_answers_the_booth_as_the_providers_document(
        studio_config, pg_dsn, emulator):
    config, port = studio_config(ingest__sync_response_seconds=20, providers__turbotext__poll_interval_seconds=0.2)
    for slot, (provider, operation, args, _) in SLOTS.items():
        r = cli(config, pg_dsn, "slot", "set", slot, "--provider", provider, "--operation", operation, *args)
        assert r.returncode == 0, r.stderr
    serve = await start_serve(config, pg_dsn, port)
    try:
        status, _, body = await post_photo(port, PHOTO, slot="slot-001")
        assert status == 200, body[:300]
        assert_transformed(body, (1248, 832))  # gemini-2.5-flash-image at the photo's own 3:2
        for slot, (provider, operation, _, size) in SLOTS.items():
            status, _, body = await post_photo(port, PHOTO, slot=slot)
            assert status == 200, (slot, body[:300])
            assert_transformed(body, size)  # the booth photo transformed, not a template (640×427, 220×240)

        # Turbotext's moderation flags the result (data.forbidden_content): refused, never delivered
        await emulator_control(emulator, provider="turbotext", script=["forbidden"])
        status, _, body = await post_photo(port, PHOTO, slot="slot-006")
        assert status == 502 and json.loads(body)["failure_reason"] == "provider_refused"
        assert "forbidden_content" in jobs_of(config, pg_dsn, "slot-006")[0]["failure_detail"]

        # what a 24 MP body writes at its finest: 17 MB, 22.7 MB in base64 — over Gemini's 20 MiB request
        status, _, body = await post_photo(port, big_camera_jpeg(), slot="slot-001", timeout=60)
        assert status == 200, body[:300]
        assert_transformed(body, (1248, 832))

        # doctor --live: one real call per provider an enabled slot uses, and it says what that costs
        # (in a thread: the emulator answering doctor runs on this test's event loop)
        r = await asyncio.to_thread(cli, config, pg_dsn, "doctor", "--live", "--json", timeout=180)
        assert "doctor --live makes one real call per provider" in r.stderr
        checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
        for name in ("live gemini gemini-2.5-flash-image", "live gemini gemini-3-pro-image-preview", "live turbotext"):
            assert checks[name]["status"] == "ok", checks[name]

        # a key whose project has no quota for image models (billing not enabled)
        await emulator_control(emulator, provider="gemini", no_quota=True)
        before = (await emulator_stats(emulator))["gemini"]["requests"]
        started = time.monotonic()
        status, _, body = await post_photo(port, PHOTO, slot="slot-001")
        took = time.monotonic() - started
        assert status == 503 and json.loads(body)["failure_reason"] == "provider_unavailable"
        assert took < 5
        assert (await emulator_stats(emulator))["gemini"]["requests"] == before + 1  # one request
        reason = "this key's project has no quota for gemini-2.5-flash-image (billing not enabled?)"
        job = jobs_of(config, pg_dsn, "slot-001")[0]
        assert job["failure_reason"] == "provider_unavailable" and reason in job["failure_detail"]
        r = cli(config, pg_dsn, "providers", "status", "--json")
        gemini = next(p for p in json.loads(r.stdout) if p["provider"] == "gemini")
        assert gemini["state"] == "down" and gemini["reason"] == reason
        r = cli(config, pg_dsn, "providers", "status")
        assert "no quota for" in r.stdout and "billing not enabled" in r.stdout
        print(f"\nzero-quota Gemini key: answered {status} in {took:.2f} s after 1 request")
    finally:
        await serve.stop()
