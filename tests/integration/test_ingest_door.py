"""The ingest's door before the password is proven: the same answer for every slot, the guess
throttle, photos sent before the password kept off the disk, the password checker's bounded queue."""
from __future__ import annotations

import asyncio
import json
import logging
import sys

import aiohttp
import pytest

from photoslot import slots
from photoslot.passwords import CachedVerifier, CheckerBusy, hash_password
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


@linux_only
async def test_a_guesser_backs_off_with_429_while_the_booth_keeps_shooting(make_cfg, pg_dsn, photo_bytes, caplog):
    caplog.set_level(logging.INFO, logger="photoslot.ingest")
    cfg = make_cfg(ingest__password_max_failures=3, ingest__password_backoff_seconds=2,
                   ingest__sync_response_seconds=10)  # this test is about the door, not the window
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        guesses = [(await ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, f"guess-number-{i}"))[0]
                   for i in range(3)]
        assert guesses == [401, 401, 401]
        status, headers, body = await ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, "guess-number-4")
        answer = json.loads(body)
        assert status == 429 and answer["failure_reason"] == "too_many_attempts"
        assert headers["Retry-After"] == "2" and answer["retry_after"] == 2
        # while it waits, even the right password from that address is refused, unhashed …
        assert (await ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, INGEST_PASSWORD))[0] == 429
        # … and the booth at another address is not slowed at all
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        s.clock.advance(2.1)
        assert (await ingest_from(s, "127.0.0.2", "slot-001", photo_bytes, INGEST_PASSWORD))[0] == 200
        assert s.files("uploads") == []
    lines = [r.getMessage() for r in caplog.records if r.name == "photoslot.ingest"]
    per_shot = [line for line in lines if line.startswith("event=ingest ")]
    assert not [line for line in per_shot if "invalid_password" in line or "too_many_attempts" in line]
    report = [line for line in lines if line.startswith("event=ingest_refused_before_password")]
    assert report and all("client=127.0.0.2" in line for line in report)
    wrong = sum(int(line.split("wrong=")[1].split()[0]) for line in report)
    refused = sum(int(line.split("refused=")[1].split()[0]) for line in report)
    assert (wrong, refused) == (3, 2)


async def test_behind_a_trusted_proxy_the_guesser_named_in_x_forwarded_for_backs_off_alone(make_cfg, pg_dsn,
                                                                                            photo_bytes):
    cfg = make_cfg(server__trusted_proxies=["127.0.0.1"], ingest__password_max_failures=1,
                   ingest__sync_response_seconds=10)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        via = {"X-Forwarded-For": "203.0.113.66"}
        statuses = []
        for password in ("guess-number-1", "guess-number-2", INGEST_PASSWORD):
            form = aiohttp.FormData()
            form.add_field("password", password)
            form.add_field("fileToUpload", photo_bytes, filename="IMG.JPG", content_type="image/jpeg")
            async with s.http.post(f"{s.base_url}/ingest/slot-001", data=form, headers=via) as resp:
                statuses.append(resp.status)
        assert statuses == [401, 429, 429]
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # the proxy's other clients shoot on


async def test_forms_without_a_password_count_like_wrong_ones(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(ingest__password_max_failures=2), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        statuses = [(await s.ingest("slot-001", photo_bytes, password=None))[0] for _ in range(3)]
        assert statuses == [401, 401, 429]  # each one was read for nothing: the address backs off


async def test_a_photo_sent_before_the_password_stays_off_the_disk_until_the_password_is_right(make_cfg, pg_dsn,
                                                                                               photo_bytes):
    # 10 s: after its wrong try this still unproven client waits its turn in the strangers' lane
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


async def test_strangers_get_one_wrong_check_a_second_and_the_rest_are_refused_at_once():
    record = hash_password(INGEST_PASSWORD)
    verifier = CachedVerifier(threads=1, queue=2, wrong_seconds=0.3)
    loop = asyncio.get_running_loop()
    try:
        assert await verifier.verify(INGEST_PASSWORD, record, proven=True)  # now known: no thread needed
        first = await verifier.verify("wrong-password-1", record)  # a stranger's wrong guess closes the lane …
        closed_at = loop.time()
        waiting = [asyncio.ensure_future(verifier.verify(f"wrong-password-{n}", record)) for n in (2, 3, 4)]
        await asyncio.sleep(0)
        with pytest.raises(CheckerBusy):  # … one waits in the lane, two in line; the next is refused at once
            await verifier.verify("wrong-password-7", record)
        # the booth's password, and a proven client's check, never wait for the strangers' lane
        assert await verifier.verify(INGEST_PASSWORD, record)
        assert await verifier.verify("wrong-password-5", record, proven=True) is False
        assert not any(w.done() for w in waiting)
        assert [first, *await asyncio.gather(*waiting)] == [False] * 4
        assert loop.time() - closed_at >= 3 * 0.3  # one stranger check per opening of the lane
        # a new booth's first shots all at once, while guessers fill the line: never refused
        fresh = hash_password("another-booth-password")
        burst = [asyncio.ensure_future(verifier.verify("another-booth-password", fresh)) for _ in range(8)]
        await asyncio.sleep(0)
        assert await asyncio.gather(*burst) == [True] * 8
        same = [asyncio.ensure_future(verifier.verify("wrong-password-6", record, proven=True)) for _ in range(3)]
        await asyncio.sleep(0)
        assert verifier.busy == 1  # three shots, one scrypt
        assert await asyncio.gather(*same) == [False] * 3
    finally:
        verifier.close()
