"""POST /ingest/{slot_id}: the spine, end to end on real PostgreSQL and the real emulator."""
from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from photoslot import jobs
from PIL import Image

from photoslot.emulator.transform import model_size
from tests.conftest import FIXTURES, emulator_control, emulator_requests, emulator_stats
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


async def test_real_jpeg_comes_back_processed_and_upload_is_gone(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, body = await s.ingest("slot-001", photo_bytes, extra={"time": "12:00:01", "profile": "wedding"})
        assert status == 200, body[:300]
        assert headers["Content-Type"] == "image/jpeg"
        assert body != photo_bytes
        with Image.open(io.BytesIO(body)) as out, Image.open(io.BytesIO(photo_bytes)) as src:
            # Gemini answers about 1 MP at the photo's aspect ratio, whatever the photo's size
            assert out.format == "JPEG" and out.size == model_size(*src.size)
        job = await s.job(headers["X-Job-Id"])
        assert job["status"] == "succeeded" and job["is_finalized"] and job["failure_reason"] is None
        assert job["input_metadata"] == {"time": "12:00:01", "profile": "wedding"}
        assert job["result_size_bytes"] == len(body) and len(job["result_checksum"]) == 64
        assert job["result_expires_at"] == job["finalized_at"] + __import__("datetime").timedelta(hours=72)
        assert s.files("uploads") == []
        assert s.files("results") == [f"{job['id']}.jpg"]


async def test_sideways_portrait_reaches_the_provider_upright(make_cfg, pg_dsn, emulator):
    data = (FIXTURES / "dslr_portrait_orientation6.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        stored_w, stored_h = im.size
        assert im.getexif().get(0x0112) == 6 and stored_w > stored_h
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, headers, body = await s.ingest("slot-001", data)
        assert status == 200
    received = [r for r in await emulator_requests(emulator) if r["provider"] == "gemini"]
    assert len(received) == 1
    image = received[0]["images"][0]
    assert (image["width"], image["height"]) == (stored_h, stored_w)  # upright: portrait
    with Image.open(io.BytesIO(body)) as out:
        assert out.size == model_size(stored_h, stored_w) and out.height > out.width


async def test_provider_slower_than_window_gets_504_on_time_and_late_answer_is_discarded(make_cfg, pg_dsn, emulator,
                                                                                         photo_bytes):
    cfg = make_cfg(ingest__sync_response_seconds=2)
    await emulator_control(emulator, latency_seconds=3.5)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        sent = time.monotonic()
        status, headers, body = await s.ingest("slot-001", photo_bytes)
        elapsed = time.monotonic() - sent
        assert status == 504
        answer = json.loads(body)
        assert answer["status"] == "timeout" and answer["failure_reason"] == "timeout"
        assert 2.0 - 0.3 <= elapsed <= 2.0, elapsed
        job_id = answer["job_id"]
        job = await s.job(job_id)
        assert job["status"] == "timeout" and job["failure_reason"] == "timeout"
        assert s.files("uploads") == []
        # the provider's answer arrives later; it must not touch the finalized job
        await asyncio.sleep(1.8)
        job_after = await s.job(job_id)
        assert job_after["status"] == "timeout" and job_after["finalized_at"] == job["finalized_at"]
        assert job_after["result_file_path"] is None
        assert s.files("results") == []


@pytest.mark.parametrize("case", ["wrong_password", "unknown_slot", "unconfigured_slot", "not_an_image",
                                  "missing_file", "octet_stream_png"])
async def test_bad_requests_get_documented_answers_and_leave_no_file(make_cfg, pg_dsn, photo_bytes, case):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        if case == "wrong_password":
            result = await s.ingest("slot-001", photo_bytes, password="nope")
            expected = (401, "invalid_password")
        elif case == "unknown_slot":
            result = await s.ingest("slot-016", photo_bytes)
            expected = (404, "slot_not_found")
        elif case == "unconfigured_slot":
            result = await s.ingest("slot-002", photo_bytes)
            expected = (404, "slot_not_found")
        elif case == "not_an_image":
            result = await s.ingest("slot-001", b"%PDF-1.4 this is not a photo" * 100, content_type="image/jpeg")
            expected = (415, "unsupported_media_type")
        elif case == "missing_file":
            result = await s.ingest("slot-001", None)
            expected = (400, "invalid_request")
        else:  # the part says octet-stream; the bytes say PNG: accepted
            result = await s.ingest("slot-001", (FIXTURES / "small_photo.png").read_bytes(),
                                    content_type="application/octet-stream")
            expected = (200, None)
        status, headers, body = result
        assert status == expected[0], body[:200]
        if expected[1]:
            answer = json.loads(body)
            assert answer["status"] == "error" and answer["failure_reason"] == expected[1]
            assert answer["details"]
        assert s.files("uploads") == []


async def test_oversize_upload_is_refused_early_without_reading_it_all(make_cfg, pg_dsn, photo_bytes):
    cfg = make_cfg(ingest__max_upload_mb=1)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        # Raw socket, no Content-Length on the part: the server must stop at the cap by itself.
        reader, writer = await asyncio.open_connection("127.0.0.1", int(s.base_url.rsplit(":", 1)[1]))
        boundary = "----photoslotboundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nbooth-secret-1\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"fileToUpload\"; filename=\"a.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode()
        writer.write((f"POST /ingest/slot-001 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())
        sent = 0

        def chunk(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        writer.write(chunk(head))
        block = photo_bytes[:64 * 1024]
        response = b""
        # offer up to 20 MB; the server should answer after ~1 MB and close
        for _ in range(320):
            try:
                writer.write(chunk(block))
                await writer.drain()
            except (ConnectionError, OSError):
                break
            sent += len(block)
            try:
                response = await asyncio.wait_for(reader.read(65536), timeout=0.005)
                if response:
                    break
            except asyncio.TimeoutError:
                pass
        if not response:
            response = await asyncio.wait_for(reader.read(65536), timeout=5)
        writer.close()
        assert response.startswith(b"HTTP/1.1 413"), response[:100]
        assert b'"payload_too_large"' in response
        assert sent < 8 * 1024 * 1024, f"server kept reading: {sent} bytes accepted"
        await asyncio.sleep(0.1)
        assert s.files("uploads") == []


async def test_ten_simultaneous_ingests_queue_and_respect_max_parallel(make_cfg, pg_dsn, emulator, photo_bytes):
    cfg = make_cfg(providers__gemini__max_parallel=2, ingest__sync_response_seconds=10, workers__in_process=6)
    await emulator_control(emulator, latency_seconds=0.4)
    async with Studio(cfg, pg_dsn, workers=6) as s:
        await s.set_password()
        await s.configure("slot-001")
        results = await asyncio.gather(*(s.ingest("slot-001", photo_bytes) for _ in range(10)))
        assert [r[0] for r in results] == [200] * 10
        stats = await emulator_stats(emulator)
        assert stats["gemini"]["requests"] == 10
        assert stats["gemini"]["max_concurrent"] <= 2
        assert s.files("uploads") == []


async def test_new_password_works_on_the_next_shot_and_the_old_one_stops(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password("first-password")
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes, password="first-password"))[0] == 200
        await s.set_password("second-password")
        assert (await s.ingest("slot-001", photo_bytes, password="first-password"))[0] == 401
        assert (await s.ingest("slot-001", photo_bytes, password="second-password"))[0] == 200


async def test_job_deadline_uses_the_live_window_at_creation(make_cfg, pg_dsn, photo_bytes):
    from photoslot import settings as live_settings

    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await live_settings.update(s.ctx.db, s.cfg, s.clock, actor="t", source="test", sync_response_seconds=7)
        status, headers, _ = await s.ingest("slot-001", photo_bytes)
        job = await s.job(headers["X-Job-Id"])
        assert (job["expires_at"] - job["created_at"]).total_seconds() == pytest.approx(7, abs=0.001)


async def test_queue_full_answers_429_with_retry_after_and_creates_no_job(make_cfg, pg_dsn, emulator, photo_bytes):
    cfg = make_cfg(ingest__max_pending_jobs=1, ingest__sync_response_seconds=5)
    await emulator_control(emulator, hang=True)
    async with Studio(cfg, pg_dsn, workers=0) as s:  # nobody claims: the first job stays pending
        await s.set_password()
        await s.configure("slot-001")
        first = asyncio.create_task(s.ingest("slot-001", photo_bytes))
        await asyncio.sleep(0.5)
        status, headers, body = await s.ingest("slot-001", photo_bytes)
        assert status == 429
        answer = json.loads(body)
        assert answer["failure_reason"] == "queue_full" and headers["Retry-After"] == str(answer["retry_after"])
        assert (await first)[0] == 504
        rows = await jobs.list_recent(s.ctx.db, status=None, limit=10)
        assert len(rows) == 1
    await emulator_control(emulator, hang=False)


async def test_client_hanging_up_cancels_the_job_and_stops_the_provider_call(make_cfg, pg_dsn, emulator, photo_bytes):
    cfg = make_cfg(ingest__sync_response_seconds=10)
    await emulator_control(emulator, hang=True)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        with pytest.raises(asyncio.TimeoutError):
            await s.ingest("slot-001", photo_bytes, timeout=1.0)
        await asyncio.sleep(0.3)
        rows = await jobs.list_recent(s.ctx.db, status=None, limit=10)
        assert len(rows) == 1
        job = await s.wait_job(rows[0]["id"], lambda j: j["is_finalized"], timeout=3)
        assert job["status"] == "cancelled" and job["failure_reason"] == "client_gone"
        stats = await s_wait_in_flight_zero(emulator)
        assert stats["gemini"]["in_flight"] == 0
        assert s.files("uploads") == []
    await emulator_control(emulator, hang=False)


async def s_wait_in_flight_zero(emulator, timeout: float = 3.0) -> dict:
    end = time.monotonic() + timeout
    while True:
        stats = await emulator_stats(emulator)
        if stats["gemini"]["in_flight"] == 0 or time.monotonic() > end:
            return stats
        await asyncio.sleep(0.05)


async def test_with_notifications_off_the_fallback_polls_still_deliver_every_answer(make_cfg, pg_dsn, photo_bytes):
    """workers.notify=false: nobody LISTENs; the workers' ticker and the waiters' one-query poll
    must still get every job claimed and answered (slower, but never lost)."""
    cfg = make_cfg(workers__notify=False, workers__poll_interval_seconds=0.3, ingest__sync_response_seconds=10)
    async with Studio(cfg, pg_dsn, workers=2) as s:
        assert s.ctx.listener is None
        await s.set_password()
        await s.configure("slot-001")
        results = await asyncio.gather(*(s.ingest("slot-001", photo_bytes) for _ in range(4)))
        assert [r[0] for r in results] == [200] * 4


async def test_a_booth_gets_back_the_format_it_sent_unless_the_slot_says_otherwise(make_cfg, pg_dsn):
    png = (FIXTURES / "small_photo.png").read_bytes()
    jpeg = (FIXTURES / "dslr_landscape.jpg").read_bytes()
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")  # no output_format: the booth's own format back
        for sent, mime in ((png, "image/png"), (jpeg, "image/jpeg")):
            status, headers, body = await s.ingest("slot-001", sent)
            assert status == 200 and headers["Content-Type"] == mime, (status, headers)
        await s.configure("slot-001", output_format="webp")
        status, headers, body = await s.ingest("slot-001", png)
        assert status == 200 and headers["Content-Type"] == "image/webp" and body[8:12] == b"WEBP"
