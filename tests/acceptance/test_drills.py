"""Fault drills against real processes: every drill asserts that no job is left open, no file
leaks, and every client got an answer (or hung up cleanly). docs/RELIABILITY.md lists them."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests.acceptance.procs import (assert_clean, db_rows, post_photo, start, start_serve, wait_all_finalized,
                                   wait_for_row)
from tests.conftest import FIXTURES, INGEST_PASSWORD, emulator_control, emulator_stats

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

DOCUMENTED = {200, 400, 401, 404, 413, 415, 422, 429, 500, 502, 503, 504}


async def test_garbage_from_the_provider_ends_every_job_with_a_documented_answer(studio_config, pg_dsn, emulator,
                                                                                 photo_bytes, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=4)
    await emulator_control(emulator, provider="gemini",
                           script=["truncated_json", "not_image", "huge", "fail:500", "safety", "ok"])
    serve = await start_serve(config, pg_dsn, port)
    try:
        answers = []
        for _ in range(6):  # one at a time, so each request meets the next scripted outcome first
            status, headers, body = await post_photo(port, photo_bytes)
            answers.append((status, body if status != 200 else b""))
        statuses = [a[0] for a in answers]
        assert set(statuses) <= DOCUMENTED, answers
        for status, body in answers:
            if status != 200:
                answer = json.loads(body)
                assert answer["failure_reason"] and answer["job_id"]
        assert 200 in statuses  # the provider's garbage did not break the next shot
        await wait_all_finalized(pg_dsn)
        assert_clean(pg_dsn, tmp_path / "data" / "media")
        assert "Traceback" not in serve.output
    finally:
        await serve.stop()


async def test_hung_provider_under_load_every_booth_gets_504_and_calls_are_abandoned(studio_config, pg_dsn,
                                                                                     emulator, photo_bytes, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=2)
    await emulator_control(emulator, hang=True)
    serve = await start_serve(config, pg_dsn, port)
    try:
        results = await asyncio.gather(*(post_photo(port, photo_bytes) for _ in range(10)))
        assert [r[0] for r in results] == [504] * 10
        await wait_all_finalized(pg_dsn)
        for _ in range(50):
            if (await emulator_stats(emulator))["gemini"]["in_flight"] == 0:
                break
            await asyncio.sleep(0.1)
        assert (await emulator_stats(emulator))["gemini"]["in_flight"] == 0
        assert db_rows(pg_dsn, "SELECT status, count(*) FROM jobs GROUP BY status") == [("timeout", 10)]
        assert_clean(pg_dsn, tmp_path / "data" / "media")
    finally:
        await emulator_control(emulator, hang=False)
        await serve.stop()


async def test_very_slow_upload_is_answered_by_the_deadline_and_leaves_nothing(studio_config, pg_dsn, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=2)
    serve = await start_serve(config, pg_dsn, port)
    try:
        boundary = "slowboundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{INGEST_PASSWORD}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"fileToUpload\"; filename=\"a.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode()
        photo = (FIXTURES / "dslr_landscape.jpg").read_bytes()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = asyncio.get_running_loop().time()
        writer.write(f"POST /ingest/slot-001 HTTP/1.1\r\nHost: x\r\nContent-Length: {len(head) + len(photo) + 100}\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + head)
        response = b""
        for i in range(0, len(photo), 4096):  # ~4 KB every 50 ms: far slower than the window allows
            writer.write(photo[i:i + 4096])
            try:
                await writer.drain()
                response = await asyncio.wait_for(reader.read(65536), timeout=0.05)
                if response:
                    break
            except asyncio.TimeoutError:
                continue
            except (ConnectionError, OSError):
                break
        if not response:
            response = await asyncio.wait_for(reader.read(65536), timeout=5)
        waited = asyncio.get_running_loop().time() - started
        writer.close()
        assert response.startswith(b"HTTP/1.1 504"), response[:200]
        assert b'"timeout"' in response
        assert 1.7 <= waited <= 2.2, waited
        await asyncio.sleep(0.2)
        assert db_rows(pg_dsn, "SELECT count(*) FROM jobs") == [(0,)]  # never became a job
        assert_clean(pg_dsn, tmp_path / "data" / "media")
    finally:
        await serve.stop()


async def test_booth_hanging_up_mid_wait_cancels_the_job_and_stops_the_provider_call(studio_config, pg_dsn,
                                                                                     emulator, photo_bytes, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=10)
    await emulator_control(emulator, latency_seconds=8)
    serve = await start_serve(config, pg_dsn, port)
    try:
        ingest = asyncio.create_task(post_photo(port, photo_bytes))
        await wait_for_row(pg_dsn, "SELECT id FROM jobs WHERE status='processing'")
        for _ in range(50):
            if (await emulator_stats(emulator))["gemini"]["in_flight"] == 1:
                break
            await asyncio.sleep(0.05)
        ingest.cancel()  # the client closes its connection
        with pytest.raises(asyncio.CancelledError):
            await ingest
        await wait_all_finalized(pg_dsn, timeout=5)
        assert db_rows(pg_dsn, "SELECT status, failure_reason FROM jobs") == [("cancelled", "client_gone")]
        for _ in range(50):
            if (await emulator_stats(emulator))["gemini"]["in_flight"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await emulator_stats(emulator))["gemini"]["in_flight"] == 0
        assert_clean(pg_dsn, tmp_path / "data" / "media")
    finally:
        await serve.stop()


async def test_kill9_of_a_worker_under_load_loses_no_photo(studio_config, pg_dsn, emulator, photo_bytes, tmp_path):
    config, port = studio_config(ingest__sync_response_seconds=12, workers__lease_seconds=1,
                                 workers__heartbeat_seconds=0.3)
    await emulator_control(emulator, latency_seconds=1.5)
    serve = await start_serve(config, pg_dsn, port, "--workers", "0")
    victim = await start(config, pg_dsn, "work", "--concurrency", "4", name="victim")
    survivor = await start(config, pg_dsn, "work", "--concurrency", "4", name="survivor")
    await victim.wait_for_line("photoslot work:")
    await survivor.wait_for_line("photoslot work:")
    try:
        ingests = [asyncio.create_task(post_photo(port, photo_bytes)) for _ in range(8)]
        for _ in range(100):
            held = db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE status='processing' AND worker_id LIKE %s",
                           f"%:{victim.pid}:%")[0][0]
            if held:
                break
            await asyncio.sleep(0.05)
        assert held, "the victim never claimed a job"
        victim.kill9()
        results = await asyncio.gather(*ingests)
        assert [r[0] for r in results] == [200] * 8
        retried = db_rows(pg_dsn, "SELECT count(*) FROM jobs WHERE attempts > 1")[0][0]
        assert retried >= 1
        assert_clean(pg_dsn, tmp_path / "data" / "media")
    finally:
        await serve.stop()
        await survivor.stop()
        await victim.stop()
