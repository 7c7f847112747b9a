"""Every photo a real camera writes gets through; nothing damaged reaches a provider.

The corpus (tests/fixtures/cameras, made by make_corpus.py) goes through the real ingest, worker
and emulator. What the provider received is read from the emulator's request log: the main image
only (one frame, no MPF), upright (no orientation tag left, the upright size, and the corpus's
orientation mark where it belongs in the answer), and for the cheap path the very bytes sent.
"""
from __future__ import annotations

import hashlib
import io
import json

import psycopg2
import pytest
from PIL import Image, ImageStat

from photoslot.emulator.transform import model_size
from tests.conftest import FIXTURES, emulator_requests, emulator_stats
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

CAMERAS = FIXTURES / "cameras"
MANIFEST = json.loads((CAMERAS / "manifest.json").read_text(encoding="utf-8"))
CONTENT_TYPE = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def mark_is_top_left(im: Image.Image) -> bool:
    """The white square of the corpus's mark near the top-left, the black one near the bottom-right
    (the emulator's sepia keeps light light and dark dark)."""
    grey = im.convert("L")
    w, h = grey.size

    def mean(x0, y0, x1, y1):
        return ImageStat.Stat(grey.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)))).mean[0]

    return mean(0.09, 0.09, 0.19, 0.19) > 180 and mean(0.81, 0.81, 0.91, 0.91) < 80


async def test_every_camera_photo_gets_through_upright_as_its_main_image_only(make_cfg, pg_dsn, emulator):
    problems = []
    async with Studio(make_cfg(ingest__sync_response_seconds=15), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        for entry in MANIFEST["photos"]:
            name = entry["file"]
            data = (CAMERAS / name).read_bytes()
            seen = len(await emulator_requests(emulator))
            status, headers, body = await s.ingest("slot-001", data, content_type=CONTENT_TYPE[name.rsplit(".", 1)[1]])
            if status != 200:
                problems.append(f"{name}: {status} {body[:200]!r}")
                continue
            [sent] = [r for r in (await emulator_requests(emulator))[seen:] if r["provider"] == "gemini"]
            image = sent["images"][0]
            size = [image["width"], image["height"]]
            if image["format"] not in ("JPEG", "PNG", "WEBP") or image["frames"] != 1:
                problems.append(f"{name}: the provider got {image['format']} with {image['frames']} frames")
            if image["orientation"] not in (None, 1) or size != entry["upright_size"]:
                problems.append(f"{name}: the provider got {size} with orientation {image['orientation']}, "
                                f"not upright {entry['upright_size']}")
            if entry["provider_gets"] == "original" and image["sha256"] != hashlib.sha256(data).hexdigest():
                problems.append(f"{name}: the provider did not get the file's own bytes")
            if "main_sha256" in entry and (image["sha256"], image["size_bytes"]) != (entry["main_sha256"],
                                                                                   entry["main_bytes"]):
                problems.append(f"{name}: the provider did not get exactly the main image")
            with Image.open(io.BytesIO(body)) as answer:
                sent_format = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[name.rsplit(".", 1)[1]]
                # the booth's own format, at the model's ~1 MP size for the upright photo's aspect ratio
                if answer.format != sent_format or answer.size != model_size(*entry["upright_size"]):
                    problems.append(f"{name}: answered {answer.format} {answer.size}")
                elif not mark_is_top_left(answer):
                    problems.append(f"{name}: the answer is not upright (orientation mark misplaced)")
        assert s.files("uploads") == []
    assert problems == []


async def test_damaged_photos_get_422_invalid_image_with_no_job_no_provider_call_no_file(make_cfg, pg_dsn, emulator):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        for entry in MANIFEST["damaged"]:
            data = (CAMERAS / entry["file"]).read_bytes()
            status, headers, body = await s.ingest("slot-001", data)
            assert status == 422, (entry["file"], body[:200])
            answer = json.loads(body)
            assert (answer["status"], answer["failure_reason"]) == ("error", "invalid_image"), entry["file"]
            assert answer["details"] and "job_id" not in answer and "X-Job-Id" not in headers
        assert s.files("uploads") == [] and s.files("results") == []
    assert jobs_in(pg_dsn) == 0
    stats = await emulator_stats(emulator)
    assert stats["gemini"]["requests"] == 0 and stats["turbotext"]["requests"] == 0


def jobs_in(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM jobs")
            return cur.fetchone()[0]
    finally:
        conn.close()
