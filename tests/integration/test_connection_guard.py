"""Connections that cannot pin the server: the header-read timeout, the per-client and total caps
(503 in the ingest's JSON), and one log line per second for accept() running out of files."""
from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from photoslot.server.connection_guard import limit_accept_error_logs
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


async def connect(studio: Studio, local: str | None = None):
    port = int(studio.base_url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0) if local else None)


async def closed_by_server(reader: asyncio.StreamReader, within: float = 15) -> bytes:
    """Everything the server sent until it closed the connection (fails if it never does)."""
    return await asyncio.wait_for(reader.read(), within)


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: studio\r\n\r\n"


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


async def test_at_the_total_cap_with_every_connection_busy_the_newcomer_gets_503_json(make_cfg, pg_dsn):
    async with Studio(make_cfg(server__max_connections=4), pg_dsn, workers=0) as s:
        busy = []
        for _ in range(4):  # uploads in progress: heads sent, bodies still coming
            r, w = await connect(s)
            w.write(b"POST /ingest/slot-001 HTTP/1.1\r\nHost: studio\r\nContent-Length: 100000\r\n"
                    b"Content-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\n")
            busy.append((r, w))
        await until_counted(s, 4)
        reader, writer = await connect(s)
        writer.write(HEALTH)
        raw = await closed_by_server(reader)
        answer = json.loads(raw.partition(b"\r\n\r\n")[2])
        assert answer["failure_reason"] == "too_many_connections" and "too many open connections" in answer["details"]
        assert s.runner.guard.refused == {"client": 0, "total": 1} and s.runner.guard.evicted == 0
        for _, w in busy:
            w.close()


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
