"""The ingest's door before the password is proven: the same answer for every slot, the right
password accepted at once from anywhere, wrong ones delayed per address (and a hang-up buys
nothing), photos sent before the password kept off the disk, the password check that costs
microseconds and follows a change made by another process, the old scrypt record re-keyed."""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

import aiohttp
import pytest

from photoslot import secrets, slots
from photoslot import settings as live_settings
from photoslot.context import AppContext
from photoslot.passwords import KEYED, hash_password
from photoslot.server.keys import INGEST
from tests.conftest import INGEST_PASSWORD
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a second loopback address (127.0.0.2) as another client")

BOUNDARY = "----doorboundary"


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
    if filename:
        head += f'; filename="{filename}"\r\nContent-Type: image/jpeg'
    return head.encode() + b"\r\n\r\n" + value + b"\r\n"


END = f"--{BOUNDARY}--\r\n".encode()


class RawUpload:
    """One POST /ingest written piece by piece over a socket, to control what arrives when."""

    def __init__(self, studio: Studio, slot: str, body_length: int) -> None:
        self.studio, self.slot, self.length = studio, slot, body_length

    async def __aenter__(self) -> "RawUpload":
        port = int(self.studio.base_url.rsplit(":", 1)[1])
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write((f"POST /ingest/{self.slot} HTTP/1.1\r\nHost: studio\r\nContent-Length: {self.length}\r\n"
                           f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode())
        return self

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict]:
        raw = await asyncio.wait_for(self.reader.read(), 30)  # the answer, then the server's close
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    async def __aexit__(self, *exc) -> None:
        self.writer.close()


async def until(predicate, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


async def ingest_from(studio: Studio, address: str, slot: str, data: bytes, password: str | None):
    """An ingest from another loopback address (another client as far as the server can tell)."""
    form = aiohttp.FormData()
    if password is not None:
        form.add_field("password", password)
    form.add_field("fileToUpload", data, filename="IMG.JPG", content_type="image/jpeg")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as http:
        async with http.post(f"{studio.base_url}/ingest/{slot}", data=form) as resp:
            return resp.status, dict(resp.headers), await resp.read()


async def test_a_wrong_password_gets_the_same_401_whatever_the_slot(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(ingest__password_max_failures=10), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await s.configure("slot-003")
        await slots.configure(s.ctx.db, s.clock, "slot-003", actor="test", source="test", enabled=False)
        slot_ids = ("slot-001", "slot-002", "slot-003")  # configured, never configured, disabled
        answers = [await s.ingest(slot, photo_bytes, password="wrong-password-1") for slot in slot_ids]
        wrong = {"status": "error", "failure_reason": "invalid_password", "details": "wrong or missing password"}
        assert [(status, json.loads(body)) for status, _, body in answers] == [(401, wrong)] * 3
        missing = [(await s.ingest(slot, photo_bytes, password=None))[0] for slot in slot_ids]
        assert missing == [401] * 3
        # only the right password learns that a slot is not in use
        for slot in ("slot-002", "slot-003"):
            status, _, body = await s.ingest(slot, photo_bytes)
            assert status == 404 and json.loads(body)["failure_reason"] == "slot_not_found"
        assert s.files("uploads") == []


async def timed(coro):
    started = time.monotonic()
    result = await coro
    return result, time.monotonic() - started


@linux_only
async def test_a_guessers_wrong_answers_are_delayed_but_the_right_password_is_never(make_cfg, pg_dsn, photo_bytes,
                                                                                    caplog):
    """A booth PC with two DSLR Remote Pro profiles, one still holding an old password: the stale
    profile's 401s slow down, the other profile's shots from the same address go through at once."""
    caplog.set_level(logging.INFO, logger="photoslot.ingest")
    cfg = make_cfg(ingest__password_max_failures=3, ingest__password_backoff_seconds=0.4,
                   ingest__sync_response_seconds=10)  # this test is about the door, not the window
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        stale = [await timed(ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, f"old-password-{i}"))
                 for i in range(5)]
        assert [answer[0] for answer, _ in stale] == [401] * 5
        assert all(json.loads(answer[2])["failure_reason"] == "invalid_password" for answer, _ in stale)
        # the free ones wait at most for one look at the stored password (another process may
        # have just changed it: passwords.MISS_SPACING_SECONDS), then 0.4 s, then 0.8 s
        assert [seconds < 0.8 for _, seconds in stale[:3]] == [True] * 3
        assert 0.4 <= stale[3][1] < 1.3 and 0.8 <= stale[4][1] < 1.5
        # the right password from that very address: at once, whatever it did before
        (status, _, _), seconds = await timed(ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, INGEST_PASSWORD))
        assert status == 200 and seconds < 2.0  # a shot's own time: no delay
        # … and it starts the address afresh: the stale profile's next wrong password is free again
        (status, _, _), seconds = await timed(ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, "old-password-9"))
        assert status == 401 and seconds < 0.8
        assert s.files("uploads") == []
    lines = [r.getMessage() for r in caplog.records if r.name == "photoslot.ingest"]
    per_shot = [line for line in lines if line.startswith("event=ingest ")]
    assert not [line for line in per_shot if "invalid_password" in line]
    report = [line for line in lines if line.startswith("event=ingest_refused_before_password")]
    assert report and all("client=127.0.0.2" in line for line in report)
    wrong = sum(int(line.split("wrong=")[1].split()[0]) for line in report)
    delayed = sum(int(line.split("delayed=")[1].split()[0]) for line in report)
    assert (wrong, delayed) == (6, 2)


@linux_only
async def test_a_guesser_who_hangs_up_on_a_delayed_answer_keeps_its_place_taken(make_cfg, pg_dsn, photo_bytes):
    cfg = make_cfg(ingest__password_max_failures=0, ingest__password_backoff_seconds=5,
                   server__max_connections_per_client=2, ingest__sync_response_seconds=10)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        guard = s.runner.guard
        port = int(s.base_url.rsplit(":", 1)[1])
        for n in range(2):  # two guesses, each answer delayed 5 s; the guesser does not wait for them
            body = part("password", f"guess-{n}-abcdef".encode()) + part("fileToUpload", photo_bytes, "IMG.JPG") + END
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            writer.write((f"POST /ingest/slot-001 HTTP/1.1\r\nHost: studio\r\nContent-Length: {len(body)}\r\n"
                          f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode() + body[:2000])
            await until(lambda: any(c.penalty_until for c in guard.by_protocol.values()))
            writer.transport.abort()  # hangs up at once, answer unseen
            await until(lambda: not any(c.penalty_until for c in guard.by_protocol.values()))
        await until(lambda: guard.table.total == 0)
        assert guard.table.by_client == {"127.0.0.2": 2}  # its two delays still count as its connections
        status, _, body = await ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, "guess-2-abcdef")
        assert status == 503 and json.loads(body)["failure_reason"] == "too_many_connections"
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # anyone else shoots on


async def test_behind_a_trusted_proxy_the_guesser_named_in_x_forwarded_for_is_slowed_alone(make_cfg, pg_dsn,
                                                                                             photo_bytes):
    cfg = make_cfg(server__trusted_proxies=["127.0.0.1"], ingest__password_max_failures=1,
                   ingest__password_backoff_seconds=0.5, ingest__sync_response_seconds=10)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")

        async def via(client: str | None, password: str):
            form = aiohttp.FormData()
            form.add_field("password", password)
            form.add_field("fileToUpload", photo_bytes, filename="IMG.JPG", content_type="image/jpeg")
            headers = {"X-Forwarded-For": client} if client else {}
            async with s.http.post(f"{s.base_url}/ingest/slot-001", data=form, headers=headers) as resp:
                return resp.status

        answers = [await timed(via("203.0.113.66", pw)) for pw in ("guess-number-1", "guess-number-2")]
        assert [status for status, _ in answers] == [401, 401]
        assert answers[0][1] < 0.8 and answers[1][1] >= 0.5  # the second one delayed
        status, seconds = await timed(via(None, INGEST_PASSWORD))  # the proxy's other clients shoot on
        assert status == 200
        status, seconds = await timed(via("198.51.100.7", "guess-number-3"))
        assert status == 401 and seconds < 0.8  # another client behind the proxy has its own free tries


async def test_forms_without_a_password_count_like_wrong_ones(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(ingest__password_max_failures=2, ingest__password_backoff_seconds=0.5), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        answers = [await timed(s.ingest("slot-001", photo_bytes, password=None)) for _ in range(3)]
        assert [a[0] for a, _ in answers] == [401, 401, 401]
        assert answers[2][1] >= 0.5  # each one was read for nothing: the third waits


async def test_a_photo_sent_before_the_password_stays_off_the_disk_until_the_password_is_right(make_cfg, pg_dsn,
                                                                                               photo_bytes):
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        ingest = s.app[INGEST]
        for password, expected in (("wrong-password-1", 401), (INGEST_PASSWORD, 200)):
            body = part("fileToUpload", photo_bytes, "IMG.JPG") + part("password", password.encode()) + END
            # the photo, and the next part's boundary line so the server knows the photo ended
            cut = body.index(f"--{BOUNDARY}\r\n".encode(), len(photo_bytes)) + len(BOUNDARY) + 4
            photo, rest = body[:cut], body[cut:]
            async with RawUpload(s, "slot-001", len(body)) as upload:
                await upload.send(photo)
                await until(lambda: ingest.buffers.used == len(photo_bytes))  # all of it read …
                assert s.files("uploads") == []                               # … and none of it on disk
                await upload.send(rest)
                if expected == 401:
                    status, answer = await upload.answer()
                    assert status == 401 and answer["failure_reason"] == "invalid_password"
                else:
                    raw = await asyncio.wait_for(upload.reader.readuntil(b"\r\n\r\n"), 30)
                    assert raw.startswith(b"HTTP/1.1 200")
            assert ingest.buffers.used == 0
        assert s.files("uploads") == []


async def test_photos_before_the_password_beyond_the_memory_budget_get_503_server_busy(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__file_before_password_buffer_mb=1), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        big = part("fileToUpload", b"\xff\xd8\xff" + bytes(2 * 1024 * 1024), "IMG.JPG")
        body = big + part("password", INGEST_PASSWORD.encode()) + END
        async with RawUpload(s, "slot-001", len(body)) as upload:
            with_closed = upload.send(body)
            try:
                await with_closed
            except ConnectionError:
                pass  # the server stopped reading at the budget and closed: the answer is already sent
            status, answer = await upload.answer()
        assert status == 503 and answer["failure_reason"] == "server_busy" and answer["retry_after"] == 1
        assert "password" in answer["details"]
        assert s.app[INGEST].buffers.used == 0 and s.files("uploads") == []


async def test_a_proven_booth_told_busy_again_and_again_is_never_throttled(make_cfg, pg_dsn, photo_bytes):
    cfg = make_cfg(ingest__file_before_password_buffer_mb=1, ingest__password_max_failures=2,
                   ingest__sync_response_seconds=10)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # the booth's address is proven now
        big = part("fileToUpload", b"\xff\xd8\xff" + bytes(2 * 1024 * 1024), "IMG.JPG")
        body = big + part("password", INGEST_PASSWORD.encode()) + END
        for _ in range(4):  # photo first, beyond the memory budget: busy, but not a guess
            async with RawUpload(s, "slot-001", len(body)) as upload:
                try:
                    await upload.send(body)
                except ConnectionError:
                    pass
                status, answer = await upload.answer()
            assert (status, answer["failure_reason"]) == (503, "server_busy")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200


async def test_a_second_password_field_is_refused_before_it_is_checked(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        body = part("password", INGEST_PASSWORD.encode()) + part("password", b"another-guess-1") + END
        async with RawUpload(s, "slot-001", len(body)) as upload:
            await upload.send(body)
            status, answer = await upload.answer()
        assert status == 400 and answer["failure_reason"] == "invalid_request"


async def test_the_password_is_a_keyed_hash_checked_in_microseconds_without_a_queue(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await s.set_password()
        row = await s.ctx.db.fetchone("setting_get", key="ingest_password")
        record = row["value"]
        assert record["algo"] == KEYED and set(record) == {"algo", "kid", "hash", "sealed"}
        assert INGEST_PASSWORD not in json.dumps(record)  # the database alone holds no password
        check = s.app[INGEST].password
        loop = asyncio.get_running_loop()
        assert await check.check(INGEST_PASSWORD, arrived=loop.time())
        started = time.perf_counter()
        wrong = await asyncio.gather(*(check.check(f"guess-{n:06d}", arrived=loop.time() - 5) for n in range(2000)))
        elapsed = time.perf_counter() - started
        assert not any(wrong)
        # 2,000 wrong guesses at once: no queue, no thread; the look-ups after a miss are shared
        assert elapsed < 2.0, elapsed
        assert s.ctx.db.statements["ingest_door_settings"] <= 4
        assert await check.check(INGEST_PASSWORD, arrived=loop.time())


async def test_a_password_changed_by_another_process_works_on_the_very_next_shot(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # the copy of the record is warm
        other = await AppContext.open(s.cfg, dsn=pg_dsn)  # `photoslot settings set` in another shell
        try:
            await live_settings.update(other.db, s.cfg, s.clock, actor="test", source="cli",
                                       ingest_password="the-new-booth-password")
        finally:
            await other.close()
        live_settings._local_generation -= 1  # as far as this process knows, nothing changed here
        assert (await s.ingest("slot-001", photo_bytes, password="the-new-booth-password"))[0] == 200
        assert (await s.ingest("slot-001", photo_bytes))[0] == 401  # the old one no longer


async def test_an_old_scrypt_record_keeps_working_and_is_rekeyed_at_the_first_right_password(
        make_cfg, pg_dsn, photo_bytes, caplog):
    caplog.set_level(logging.INFO)
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        await s.configure("slot-001")
        old = hash_password(INGEST_PASSWORD)  # as an older photoslot stored it
        await s.ctx.db.execute("setting_upsert", key="ingest_password", value=old, now=s.clock.now(),
                               actor="admin:serg")
        assert (await s.ingest("slot-001", photo_bytes, password="not-the-password"))[0] == 401
        row = await s.ctx.db.fetchone("setting_get", key="ingest_password")
        assert row["value"]["algo"] == "scrypt"  # a wrong one changes nothing
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        row = await s.ctx.db.fetchone("setting_get", key="ingest_password")
        assert row["value"]["algo"] == KEYED and row["updated_by"] == "admin:serg"  # who set it stays
        assert secrets.ingest_password_from(s.cfg, row["value"]) == INGEST_PASSWORD  # and it can be shown now
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        assert (await s.ingest("slot-001", photo_bytes, password="not-the-password"))[0] == 401
    assert any("event=ingest_password_rekeyed" in r.getMessage() for r in caplog.records)
