"""Connections that cannot pin the server: a deadline for every head (the first and each kept-alive
one), a minimum body rate and a body deadline, the per-client and total caps (503 in the ingest's
JSON) with strangers' idle and slow connections shed first and known clients kept, aiohttp's own
400s in our shape and counted per address, and one log line per second for accept() running out
of files."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import sys

import pytest

from photoslot.server.connection_guard import PerAddressReport, let_go, limit_accept_error_logs
from tests.conftest import INGEST_PASSWORD
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


async def connect(studio: Studio, local: str | None = None):
    port = int(studio.base_url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0) if local else None)


async def closed_by_server(reader: asyncio.StreamReader, within: float = 15) -> bytes:
    """Everything the server sent until it closed the connection (fails if it never does)."""
    return await asyncio.wait_for(reader.read(), within)


async def cut_by_server(reader: asyncio.StreamReader, within: float = 15) -> bytes:
    """Like closed_by_server, for a connection the client kept writing to: the server's close of a
    connection with unread bytes may reach it as a reset."""
    try:
        return await closed_by_server(reader, within)
    except ConnectionResetError:
        return b""


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: studio\r\n\r\n"


async def trickle_a_sign_in_body(studio: Studio, chunk: bytes, *, every: float) -> float:
    """A sign-in whose 100,000-byte body comes as `chunk` every `every` seconds, for up to 10 s;
    the seconds until the server cut it (fails if it never answers anything but the cut)."""
    reader, writer = await connect(studio)
    writer.write(b"POST /api/login HTTP/1.1\r\nHost: studio\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{")
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed = asyncio.ensure_future(cut_by_server(reader))
    while not closed.done() and loop.time() - started < 10:
        writer.write(chunk)
        await asyncio.sleep(every)
    assert await closed == b""
    return loop.time() - started


async def test_a_half_sent_request_head_is_closed_after_the_header_timeout(make_cfg, pg_dsn):
    async with Studio(make_cfg(server__header_timeout_seconds=0.5), pg_dsn, workers=0) as s:
        reader, writer = await connect(s)
        writer.write(b"POST /ingest/slot-001 HTTP/1.1\r\nHost: studio\r\n")  # never finished
        assert await closed_by_server(reader) == b""
        assert s.runner.guard.head_timeouts == 1
        assert s.runner.guard.table.total == 0


async def test_a_head_sent_in_time_is_served_however_slow_the_rest(make_cfg, pg_dsn):
    async with Studio(make_cfg(server__header_timeout_seconds=0.5), pg_dsn, workers=0) as s:
        reader, writer = await connect(s)
        body = b'{"username": "serg", "password": "not-the-password"}'
        writer.write(b"POST /api/login HTTP/1.1\r\nHost: studio\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n")
        await asyncio.sleep(0.2)
        writer.write(b"\r\n")  # the head ends here, split from the rest of it on purpose
        await asyncio.sleep(0.8)  # the body comes later than the header timeout: not the head's business
        writer.write(body)
        status_line = await asyncio.wait_for(reader.readline(), 15)
        assert status_line.startswith(b"HTTP/1.1 401")
        writer.close()
        assert s.runner.guard.head_timeouts == 0


async def test_a_kept_alive_connection_that_stays_silent_is_closed(make_cfg, pg_dsn):
    async with Studio(make_cfg(server__header_timeout_seconds=0.5), pg_dsn, workers=0) as s:
        reader, writer = await connect(s)
        writer.write(HEALTH)
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        assert first.startswith(b"HTTP/1.1 200") and b"connection: close" not in first.lower()
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # a second request that never finishes its head
        rest = await closed_by_server(reader)  # the first answer's body, then the close
        assert b"HTTP/1.1" not in rest  # no answer to the unfinished request


async def test_connections_beyond_the_per_client_cap_get_503_json_then_close(make_cfg, pg_dsn):
    async with Studio(make_cfg(server__max_connections_per_client=3), pg_dsn, workers=0) as s:
        held = [await connect(s) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert s.runner.guard.table.by_client == {"127.0.0.1": 3}
        reader, writer = await connect(s)
        writer.write(HEALTH)
        raw = await closed_by_server(reader)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
        answer = json.loads(body)
        assert answer["failure_reason"] == "too_many_connections" and "this address" in answer["details"]
        if sys.platform.startswith("linux"):  # another client is not affected
            reader2, writer2 = await connect(s, local="127.0.0.2")
            writer2.write(HEALTH)
            assert (await asyncio.wait_for(reader2.readline(), 15)).startswith(b"HTTP/1.1 200")
            writer2.close()
        held[0][1].close()  # one of the three goes: the client may connect again
        await asyncio.sleep(0.1)
        reader, writer = await connect(s)
        writer.write(HEALTH)
        assert (await asyncio.wait_for(reader.readline(), 15)).startswith(b"HTTP/1.1 200")
        for _, w in held[1:] + [(reader, writer)]:
            w.close()


async def test_a_trusted_proxy_is_not_held_to_the_per_client_cap(make_cfg, pg_dsn):
    cfg = make_cfg(server__max_connections_per_client=2, server__trusted_proxies=["127.0.0.1"])
    async with Studio(cfg, pg_dsn, workers=0) as s:
        held = [await connect(s) for _ in range(4)]  # the proxy carries many clients at once
        reader, writer = await connect(s)
        writer.write(HEALTH)
        assert (await asyncio.wait_for(reader.readline(), 15)).startswith(b"HTTP/1.1 200")
        assert s.runner.guard.refused == {"client": 0, "total": 0} and s.runner.guard.table.by_client == {}
        for _, w in held + [(reader, writer)]:
            w.close()


async def test_at_the_total_cap_a_newcomer_replaces_the_oldest_silent_connection(make_cfg, pg_dsn):
    async with Studio(make_cfg(server__max_connections=4), pg_dsn, workers=0) as s:
        silent = [await connect(s) for _ in range(4)]  # connected, never a byte: a half-open flood
        reader, writer = await connect(s)
        writer.write(HEALTH)
        assert (await asyncio.wait_for(reader.readline(), 15)).startswith(b"HTTP/1.1 200")
        assert await closed_by_server(silent[0][0]) == b""  # the oldest silent one made room
        assert s.runner.guard.evicted == 1 and s.runner.guard.refused == {"client": 0, "total": 0}
        for _, w in silent[1:] + [(reader, writer)]:
            w.close()


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="other loopback addresses (127.0.0.x) as other clients")


async def test_a_kept_alive_head_trickled_byte_by_byte_is_closed_at_the_header_timeout(make_cfg, pg_dsn):
    async with Studio(make_cfg(server__header_timeout_seconds=0.6), pg_dsn, workers=0) as s:
        reader, writer = await connect(s)
        writer.write(HEALTH)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        loop = asyncio.get_running_loop()
        started = loop.time()
        line = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 50
        closed = asyncio.ensure_future(cut_by_server(reader))
        for byte in line:  # every 50 ms a byte: never idle, never done
            if closed.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)
        rest = await closed
        assert b"HTTP/1.1" not in rest
        assert loop.time() - started < 2.0  # the head's own deadline, not the trickle's length
        assert s.runner.guard.head_timeouts == 1


async def test_a_body_trickling_below_the_minimum_rate_is_closed(make_cfg, pg_dsn):
    cfg = make_cfg(server__body_rate_window_seconds=0.5, server__body_min_bytes_per_second=1000)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        held = await trickle_a_sign_in_body(s, b" ", every=0.05)  # 20 bytes a second, against 1,000 asked for
        assert held < 1.5
        assert s.runner.guard.slow_bodies == 1 and s.runner.guard.table.total == 0


async def test_a_body_at_the_minimum_rate_is_closed_at_the_body_deadline(make_cfg, pg_dsn):
    cfg = make_cfg(server__body_rate_window_seconds=0.5, server__body_min_bytes_per_second=100,
                   server__body_timeout_seconds=1, ingest__sync_response_bounds=[1, 1.5],
                   ingest__sync_response_seconds=1)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        assert s.runner.guard.body_timeout == 3.5  # never below the ingest window's upper bound + 2 s
        held = await trickle_a_sign_in_body(s, b" " * 30, every=0.1)  # 300 bytes a second: fast enough, but it never ends
        assert 3.4 <= held < 5
        assert s.runner.guard.body_timeouts == 1 and s.runner.guard.slow_bodies == 0


async def test_a_body_the_server_is_not_reading_is_not_the_clients_fault(make_cfg, pg_dsn, photo_bytes):
    """The ingest reads a booth's photo only once the password is right and the slot admitted: a
    body waiting in the server's buffers (the transport paused) is not a slow client."""
    cfg = make_cfg(server__body_rate_window_seconds=0.3, server__body_min_bytes_per_second=1_000_000,
                   ingest__sync_response_seconds=10)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        status, _, body = await s.ingest("slot-001", photo_bytes * 3)  # ~MBs over loopback: fast
        assert status == 200, body
        assert s.runner.guard.slow_bodies == 0


async def test_at_the_total_cap_a_stranger_sheds_a_strangers_connection_never_a_booths_shot(
        make_cfg, pg_dsn, photo_bytes, emulator):
    from tests.conftest import emulator_control

    cfg = make_cfg(server__max_connections=2, ingest__sync_response_seconds=4)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await emulator_control(emulator, latency_seconds=1.5)
        shot = asyncio.ensure_future(s.ingest("slot-001", photo_bytes))  # the booth: known once its password is in
        await until(lambda: s.runner.guard.table.total == 1 and s.runner.guard.table.strangers == 0)
        silent_r, silent_w = await connect(s)  # a stranger that says nothing: the server is full
        await until(lambda: s.runner.guard.table.total == 2)
        reader, writer = await connect(s)  # another stranger: the silent one makes room, not the booth
        writer.write(HEALTH)
        assert (await asyncio.wait_for(reader.readline(), 15)).startswith(b"HTTP/1.1 200")
        assert await closed_by_server(silent_r) == b""
        assert s.runner.guard.evicted == 1
        status, _, _ = await shot
        assert status == 200 and s.runner.guard.refused == {"client": 0, "total": 0}
        for w in (silent_w, writer):
            w.close()


@linux_only
async def test_a_known_booth_gets_in_when_strangers_hold_their_whole_share(make_cfg, pg_dsn, photo_bytes):
    cfg = make_cfg(server__max_connections=10, server__max_connections_per_client=20,
                   ingest__sync_response_seconds=10)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # 127.0.0.1: the booth, known now
        await s.http.close()  # its kept-alive connection goes
        import aiohttp
        s.http = aiohttp.ClientSession()
        await until(lambda: s.runner.guard.table.total == 0)
        held = []
        for n in range(9):  # strangers' uploads in progress, bodies flowing: 9 = all but the known share
            r, w = await connect(s, local="127.0.0.2")
            w.write(b"POST /api/login HTTP/1.1\r\nHost: studio\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n{")
            held.append((r, w))
        await until(lambda: s.runner.guard.table.strangers == 9)
        r, w = await connect(s, local="127.0.0.3")  # one stranger more: a stranger's body is shed for it
        w.write(HEALTH)
        assert (await asyncio.wait_for(r.readline(), 15)).startswith(b"HTTP/1.1 200")
        assert s.runner.guard.evicted == 1
        status, _, _ = await s.ingest("slot-001", photo_bytes)  # the booth: in, nothing shed for it
        assert status == 200 and s.runner.guard.evicted == 1
        for _, writer in held + [(r, w)]:
            writer.close()


async def test_a_compressed_body_is_refused_415_on_every_route_and_never_inflated(make_cfg, pg_dsn):
    bomb = gzip.compress(bytes(64 * 1024 * 1024))  # 64 MB of zeros in ~64 KB
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        answers = {}
        for path, content_type in (("/ingest/slot-001", "multipart/form-data; boundary=x"),
                                   ("/api/login", "application/json"), ("/admin/login",
                                                                        "application/x-www-form-urlencoded"),
                                   ("/public/media/00000000-0000-0000-0000-000000000000", "application/json"),
                                   ("/no/such/route", "application/json")):
            reader, writer = await connect(s)
            # the head and a first piece of the body only: the answer must not wait for the rest
            writer.write((f"POST {path} HTTP/1.1\r\nHost: studio\r\nContent-Type: {content_type}\r\n"
                          f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n").encode() + bomb[:4096])
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            body = await asyncio.wait_for(reader.readexactly(length), 15)
            answers[path] = (head.split(b" ")[1], head, body)
            writer.close()
        ingest = answers["/ingest/slot-001"]
        assert ingest[0] == b"415" and json.loads(ingest[2])["failure_reason"] == "unsupported_media_type"
        api = answers["/api/login"]
        assert api[0] == b"415" and json.loads(api[2])["error"]["code"] == "unsupported_media_type"
        assert b"no-store" in api[1]
        page = answers["/admin/login"]
        assert page[0] == b"415" and b"text/html" in page[1]
        for path in ("/public/media/00000000-0000-0000-0000-000000000000", "/no/such/route"):
            assert answers[path][0] == b"415" and json.loads(answers[path][2])["error"]["code"] == "unsupported_media_type"
        # a part of a form that says it is compressed is refused the same way
        body = (b"--x\r\nContent-Disposition: form-data; name=\"password\"\r\nContent-Encoding: gzip\r\n\r\n"
                + gzip.compress(b"booth-secret-1") + b"\r\n--x--\r\n")
        async with s.http.post(f"{s.base_url}/ingest/slot-001", data=body,
                               headers={"Content-Type": "multipart/form-data; boundary=x"}) as resp:
            assert resp.status == 415 and (await resp.json())["failure_reason"] == "unsupported_media_type"
        async with s.http.post(f"{s.base_url}/admin/login", data=body,
                               headers={"Content-Type": "multipart/form-data; boundary=x"}) as resp:
            assert resp.status == 415  # a page form is urlencoded only: nothing parses that part


async def test_a_malformed_request_gets_our_json_and_headers_and_is_counted_not_traced(make_cfg, pg_dsn, caplog):
    caplog.set_level(logging.DEBUG)
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        for _ in range(30):
            reader, writer = await connect(s)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: studio\r\nX-Evil: a\x01b\x1b]0;pwned\x07\r\n\r\n")
            raw = await closed_by_server(reader)
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.split(b" ", 2)[1] == b"400"
            lowered = head.lower()
            assert b"server: photoslot\r\n" in lowered + b"\r\n" and b"aiohttp" not in lowered
            assert b"x-content-type-options: nosniff" in lowered and b"content-security-policy" in lowered
            answer = json.loads(body)
            assert answer["failure_reason"] == "invalid_request" and answer["error"]["code"] == "bad_request"
            assert b"pwned" not in body
        assert (await s.http.get(f"{s.base_url}/healthz")).status == 200
    lines = [r for r in caplog.records if r.name.startswith(("aiohttp", "photoslot.connections"))
             and r.levelno >= logging.WARNING]
    assert not [r for r in lines if r.exc_info or "pwned" in r.getMessage()]
    reports = [r.getMessage() for r in lines if "event=malformed_requests" in r.getMessage()]
    # the first at once, the other 29 summed at the interval's end (here: the studio's clean-up)
    assert reports == ["event=malformed_requests client=127.0.0.1 count=1 per_seconds=60 status=400 "
                       "error=BadHttpMessage",
                       "event=malformed_requests client=127.0.0.1 count=29 per_seconds=60 status=400 "
                       "error=BadHttpMessage"], reports


async def test_the_malformed_report_is_one_line_per_address_per_interval(caplog):
    caplog.set_level(logging.INFO)
    report = PerAddressReport("malformed_requests", seconds=0.2, max_addresses=2)
    for _ in range(100):
        report.add("10.0.0.1", status=400)
    report.add("10.0.0.2", status=400)
    for n in range(50):  # beyond the named addresses: summed as others
        report.add(f"10.0.1.{n}", status=400)
    await asyncio.sleep(0.3)
    report.add("10.0.0.1", status=400)  # a new interval: at once again
    report.close()
    lines = [r.getMessage() for r in caplog.records if "malformed_requests" in r.getMessage()]
    assert [line.split()[1:3] for line in lines] == [
        ["client=10.0.0.1", "count=1"], ["client=10.0.0.2", "count=1"], ["client=others", "count=1"],
        ["client=10.0.0.1", "count=99"], ["client=others", "count=49"], ["client=10.0.0.1", "count=1"]]


async def until(predicate, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


async def until_counted(studio: Studio, n: int) -> None:
    for _ in range(500):
        if studio.runner.guard.table.total == n and studio.runner.guard.table.waiting == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("connections not seen by the server")


async def test_accept_running_out_of_files_is_logged_once_per_second(caplog):
    caplog.set_level(logging.INFO)
    loop = asyncio.get_running_loop()
    seen = []
    before = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context["message"]))
    try:
        limit_accept_error_logs(loop)
        for _ in range(300):  # what one wake-up of a listening socket can produce, several times over
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})
        loop.call_exception_handler({"message": "something else went wrong"})
    finally:
        loop.set_exception_handler(before)
    lines = [r.getMessage() for r in caplog.records if r.name == "photoslot.connections"]
    assert len(lines) == 1 and lines[0].startswith("event=accept_failed") and "held_back=0" in lines[0]
    assert seen == ["something else went wrong"]  # other loop errors go where they went before



@contextlib.asynccontextmanager
async def server_side_of_a_connection():
    """(the server's transport, the client's reader) of one loopback connection to a bare server."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.set_result(transport)

    server = await loop.create_server(Accept, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        yield await asyncio.wait_for(accepted, 5), reader
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_a_connection_let_go_with_an_unread_answer_frees_its_descriptor_at_once():
    """A client that stopped reading must not keep a descriptor the caps no longer count: a plain
    close would wait for its unread answer for ever."""
    async with server_side_of_a_connection() as (transport, _reader):  # the client never reads
        transport.write(b"x" * (64 * 1024 * 1024))  # more than any socket buffers hold
        await asyncio.sleep(0.1)
        assert transport.get_write_buffer_size() > 0
        sock = transport.get_extra_info("socket")
        let_go(transport)
        for _ in range(3):
            await asyncio.sleep(0)
        assert sock.fileno() == -1  # closed, not waiting for the client to read


async def test_a_connection_let_go_with_its_answer_sent_is_closed_politely():
    async with server_side_of_a_connection() as (transport, reader):
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
        let_go(transport)
        assert await asyncio.wait_for(reader.read(), 5) == b"HTTP/1.1 503 Service Unavailable\r\n\r\n"  # then EOF
