"""`serve` over HTTPS (server.tls_cert_file / tls_key_file), and a renewed certificate picked up
live: new connections get the new one, an open keep-alive connection is not dropped."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys

import aiohttp
import pytest

from tests.acceptance.procs import cli, start
from tests.conftest import FIXTURES, INGEST_PASSWORD, free_port, write_config

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
    pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP"),
]


def make_cert(folder, name: str) -> tuple:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def der(cert_path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_path.read_text())


def install(pair, live) -> None:
    """Replace the live files the way a renewal tool does: write aside, then rename over."""
    for src, dst in zip(pair, live):
        tmp = dst.with_suffix(".new")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def client_ssl() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed; the test compares the presented certificate itself
    return ctx


class KeepAlive:
    """One HTTP/1.1 keep-alive connection over TLS, held open by the test across the renewal."""

    async def open(self, port: int) -> "KeepAlive":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl())
        return self

    @property
    def peer(self) -> bytes:
        return self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode().split("\r\n")
        length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length:"))
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def new_connection_peer(port: int) -> bytes:
    conn = await KeepAlive().open(port)
    try:
        assert await conn.get("/healthz") == 200
        return conn.peer
    finally:
        await conn.close()


async def start_tls_studio(tmp_path, pg_dsn, emulator, clean_state, check_seconds: float):
    a, b = make_cert(tmp_path, "photoslot-a"), make_cert(tmp_path, "photoslot-b")
    live = (tmp_path / "live.crt", tmp_path / "live.key")
    install(a, live)
    port = free_port()
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                          emulator_url=emulator.base_url, port=port, server__tls_cert_file=str(live[0]),
                          server__tls_key_file=str(live[1]), server__tls_check_seconds=check_seconds)
    for args in (("slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit",
                  "--prompt", "turn the photo sepia"), ("settings", "set", "--ingest-password", INGEST_PASSWORD)):
        r = cli(config, pg_dsn, *args)
        assert r.returncode == 0, r.stderr
    serve = await start(config, pg_dsn, "serve", "--port", str(port), name="serve")
    await serve.wait_for_line("photoslot serving on https://", timeout=60)
    return serve, port, a, b, live


async def test_ingest_over_https_and_a_renewed_certificate_is_picked_up_without_dropping_connections(
        tmp_path, pg_dsn, emulator, clean_state, photo_bytes):
    serve, port, a, b, live = await start_tls_studio(tmp_path, pg_dsn, emulator, clean_state, check_seconds=0.2)
    try:
        kept = await KeepAlive().open(port)
        assert await kept.get("/healthz") == 200 and kept.peer == der(a[0])
        # the DSLR contract over TLS
        form = aiohttp.FormData()
        form.add_field("password", INGEST_PASSWORD)
        form.add_field("fileToUpload", photo_bytes, filename="shot.jpg", content_type="image/jpeg")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl())) as s:
            async with s.post(f"https://127.0.0.1:{port}/ingest/slot-001", data=form) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
                assert (await r.read())[:3] == b"\xff\xd8\xff"

        install(b, live)
        await serve.wait_for_line("event=tls_certificate_reloaded", timeout=10)

        # the open connection carries on with the session it negotiated …
        assert await kept.get("/healthz") == 200 and kept.peer == der(a[0])
        # … while every new connection is offered the renewed certificate
        assert await new_connection_peer(port) == der(b[0])
        assert await kept.get("/readyz") == 200
        await kept.close()
        assert serve.proc.returncode is None
    finally:
        await serve.stop()


async def test_sighup_reloads_the_certificate_at_once(tmp_path, pg_dsn, emulator, clean_state):
    serve, port, a, b, live = await start_tls_studio(tmp_path, pg_dsn, emulator, clean_state, check_seconds=3600)
    try:
        assert await new_connection_peer(port) == der(a[0])
        install(b, live)
        serve.signal(signal.SIGHUP)
        await serve.wait_for_line("why=sighup", timeout=10)
        assert await new_connection_peer(port) == der(b[0])
        # a pair that does not load (the key of another certificate) keeps the working one in service
        install((a[0], b[1]), live)
        serve.signal(signal.SIGHUP)
        await serve.wait_for_line("event=tls_reload_failed", timeout=10)
        assert await new_connection_peer(port) == der(b[0])
        assert serve.proc.returncode is None
    finally:
        await serve.stop()


async def test_slot_test_trusts_a_self_signed_server_with_ca_file(tmp_path, pg_dsn, emulator, clean_state):
    serve, port, a, _b, live = await start_tls_studio(tmp_path, pg_dsn, emulator, clean_state, check_seconds=5)
    photo = tmp_path / "shot.jpg"
    photo.write_bytes((FIXTURES / "dslr_landscape.jpg").read_bytes())
    try:
        shot = ("slot", "test", "slot-001", str(photo), "--password", INGEST_PASSWORD, "--out", str(tmp_path / "r.jpg"))
        r = await asyncio.to_thread(cli, tmp_path / "photoslot.yaml", pg_dsn, *shot)
        assert r.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in r.stderr  # refused, not silently trusted
        assert len(r.stderr.strip().splitlines()) == 1
        r = await asyncio.to_thread(cli, tmp_path / "photoslot.yaml", pg_dsn, *shot, "--ca-file", str(live[0]))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "r.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    finally:
        await serve.stop()
