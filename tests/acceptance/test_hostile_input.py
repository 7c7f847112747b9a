"""Malformed and hostile ingest requests against a real `photoslot serve` process.

Every answer must be a documented status with the ingest's JSON error shape — never a
traceback, never a file outside (or left inside) the media root, never a dead server.
The requests are raw HTTP (http.client / sockets), the way a broken or hostile client sends them.
"""
from __future__ import annotations

import http.client
import json
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.acceptance.procs import cli, env_for
from tests.conftest import FIXTURES, INGEST_PASSWORD, free_port, write_config
from tests.dbstate import reset_database

DOCUMENTED = {200, 400, 401, 404, 405, 413, 415, 422, 429, 502, 503, 504}
BOUNDARY = "----hostileboundary7MA4YWxk"
PHOTO = (FIXTURES / "dslr_landscape.jpg").read_bytes()


class Server:
    def __init__(self, tmp: Path, dsn: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        emu_port = free_port()
        self.emulator = subprocess.Popen([sys.executable, "-m", "photoslot", "emulate", "--port", str(emu_port)],
                                         env=env_for(dsn), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.config = write_config(tmp / "photoslot.yaml", data_dir=tmp / "data", dsn=dsn,
                                   emulator_url=f"http://127.0.0.1:{emu_port}", port=self.port,
                                   ingest__max_upload_mb=4, ingest__sync_response_seconds=3,
                                   # the fuzz sends wrong passwords by the hundred from one address; the
                                   # guess throttle has its own tests and must not turn these cases into 429s
                                   ingest__password_max_failures=100000)
        assert cli(self.config, dsn, "slot", "set", "slot-001", "--provider", "gemini", "--operation",
                   "image_edit", "--prompt", "sepia").returncode == 0
        assert cli(self.config, dsn, "settings", "set", "--ingest-password", INGEST_PASSWORD).returncode == 0
        self.log = open(tmp / "serve.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "photoslot", "--config", str(self.config), "serve",
                                      "--port", str(self.port)], env=env_for(dsn), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.media = tmp / "data" / "media"
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("serve did not start: " + (tmp / "serve.log").read_text()[-2000:])

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def post_multipart(self, body: bytes, path: str = "/ingest/slot-001", boundary: str = BOUNDARY,
                       content_type: str | None = None):
        ctype = content_type or f"multipart/form-data; boundary={boundary}"
        return self.request("POST", path, body, {"Content-Type": ctype})

    def output(self) -> str:
        self.log.flush()
        return (self.tmp / "serve.log").read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        self.emulator.terminate()
        self.proc.wait(20)
        self.emulator.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_dsn):
    reset_database(pg_dsn)
    s = Server(tmp_path_factory.mktemp("hostile"), pg_dsn)
    yield s
    s.stop()
    log = s.output()
    assert "Traceback" not in log, log[-3000:]


def part(name: bytes | str, value: bytes, filename: bytes | str | None = None,
         ctype: str = "application/octet-stream") -> bytes:
    name = name.encode() if isinstance(name, str) else name
    head = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        filename = filename.encode() if isinstance(filename, str) else filename
        head += b'; filename="' + filename + b'"\r\nContent-Type: ' + ctype.encode()
    return b"--" + BOUNDARY.encode() + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


def password() -> bytes:
    return part("password", INGEST_PASSWORD.encode())


def png_bomb() -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    raw = zlib.compress(b"\x00" * 1000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def assert_documented_json(status: int, body: bytes, expected: set[int] | None = None) -> dict | None:
    assert status in (expected or DOCUMENTED), (status, body[:200])
    if status == 200:
        return None
    answer = json.loads(body)
    assert answer["status"] in ("error", "timeout")
    assert isinstance(answer["failure_reason"], str) and answer["details"]
    assert "Traceback" not in answer["details"]
    return answer


def uploads_left(server) -> list[str]:
    folder = server.media / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def files_outside_media(server) -> list[Path]:
    """Anything a hostile filename could have created next to or above the media root."""
    suspects = [server.tmp / "data" / "passwd", server.tmp / "passwd", server.media / "passwd",
                Path("/tmp/photoslot-hostile-marker")]
    return [p for p in suspects if p.exists()]


CASES = {
    "boundary_mismatch": lambda: dict(body=form(password(), part("fileToUpload", PHOTO, "a.jpg")),
                                      boundary="otherboundary", expected={400}),
    "no_boundary_param": lambda: dict(body=form(password()), content_type="multipart/form-data", expected={400}),
    "not_multipart": lambda: dict(body=b'{"password": "x"}', content_type="application/json", expected={400}),
    "empty_body": lambda: dict(body=b"", expected={400}),
    "truncated_multipart": lambda: dict(body=form(password(), part("fileToUpload", PHOTO, "a.jpg"))[:-5000],
                                        expected={400}),
    "two_files": lambda: dict(body=form(password(), part("fileToUpload", PHOTO, "a.jpg"),
                                        part("file", PHOTO, "b.jpg")), expected={400}),
    "many_fields": lambda: dict(body=form(password(), *[part(f"f{i}", b"x") for i in range(1000)]), expected={400}),
    "huge_extra_field": lambda: dict(body=form(password(), part("survey", b"y" * (3 * 1024 * 1024)),
                                               part("fileToUpload", PHOTO, "a.jpg")), expected={413}),
    "non_utf8_names": lambda: dict(body=form(password(), part(b"\xff\xfe\xc3(", b"\xff\xfe"),
                                             part("fileToUpload", PHOTO, b"\xff\xfe.jpg")), expected={200, 400}),
    "traversal_filename": lambda: dict(body=form(password(), part("fileToUpload", PHOTO, "../../../passwd")),
                                       expected={200}),
    "decompression_bomb": lambda: dict(body=form(password(), part("fileToUpload", png_bomb(), "bomb.png")),
                                       expected={415}),
    "polyglot_html_in_jpeg_magic": lambda: dict(
        body=form(password(), part("fileToUpload", b"\xff\xd8\xff<html><script>alert(1)</script></html>" * 50,
                                   "x.jpg")), expected={415}),
    "gif_is_not_accepted": lambda: dict(body=form(password(), part("fileToUpload", b"GIF89a" + b"\x00" * 500,
                                                                   "x.gif")), expected={415}),
    "oversize_file": lambda: dict(body=form(password(), part("fileToUpload", PHOTO * 5, "big.jpg")),
                                  expected={413}),
    "nested_multipart": lambda: dict(body=form(password(), b"--" + BOUNDARY.encode() +
                                               b"\r\nContent-Type: multipart/mixed; boundary=inner\r\n"
                                               b"Content-Disposition: form-data; name=\"fileToUpload\"\r\n\r\n"
                                               b"--inner\r\n\r\nx\r\n--inner--\r\n"), expected={400, 415}),
    "password_too_long": lambda: dict(body=form(part("password", b"p" * 5000), part("fileToUpload", PHOTO, "a.jpg")),
                                      expected={400}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_ingest_gets_a_documented_json_answer_and_leaves_no_file(server, case):
    spec = CASES[case]()
    expected = spec.pop("expected")
    status, headers, body = server.post_multipart(spec.pop("body"), **spec)
    assert_documented_json(status, body, expected)
    time.sleep(0.05)
    assert uploads_left(server) == []
    assert files_outside_media(server) == []
    assert server.proc.poll() is None


@pytest.mark.parametrize("path, expected", [
    ("/ingest/slot-000", 404), ("/ingest/slot-016", 404), ("/ingest/..%2F..%2Fetc%2Fpasswd", 404),
    ("/ingest/slot-001%00", 404), ("/ingest/SLOT-001", 404), ("/ingest/slot-001/../slot-002", 404),
    ("/ingest/" + "a" * 5000, 404),
])
def test_hostile_slot_ids_are_404_json(server, path, expected):
    status, headers, body = server.post_multipart(form(password(), part("fileToUpload", PHOTO, "a.jpg")), path=path)
    answer = assert_documented_json(status, body, {expected, 400})
    assert answer["failure_reason"] in ("slot_not_found", "invalid_request")
    assert uploads_left(server) == []


def test_wrong_method_is_a_json_405(server):
    status, headers, body = server.request("GET", "/ingest/slot-001")
    assert status == 405
    assert json.loads(body)["status"] == "error"


def test_slow_loris_headers_do_not_block_other_booths(server):
    """A client that opens connections and trickles bytes must not stop a real shot."""
    sockets = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /ingest/slot-001 HTTP/1.1\r\nHost: x\r\n")
        sockets.append(s)
    try:
        status, _, body = server.post_multipart(form(password(), part("fileToUpload", PHOTO, "a.jpg")))
        assert status == 200, body[:200]
    finally:
        for s in sockets:
            s.close()


field_names = st.one_of(st.sampled_from(["password", "fileToUpload", "file", "time", "hash", "profile"]),
                        st.binary(min_size=0, max_size=40).filter(lambda b: b'"' not in b and b"\r" not in b
                                                                   and b"\n" not in b))
payloads = st.one_of(st.binary(max_size=2048), st.just(PHOTO[:3000]), st.just(INGEST_PASSWORD.encode()),
                     st.just(b"\xff\xd8\xff\xe0" + b"\x00" * 64))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(fields=st.lists(st.tuples(field_names, payloads, st.booleans()), max_size=8),
       tail=st.sampled_from([b"--" + BOUNDARY.encode() + b"--\r\n", b"", b"--" + BOUNDARY.encode() + b"\r\n",
                             b"garbage"]))
def test_fuzzed_ingest_forms_never_crash_and_never_leak(server, fields, tail):
    body = b"".join(part(name, value, "f.jpg" if as_file else None) for name, value, as_file in fields) + tail
    status, headers, answer = server.post_multipart(body)
    assert_documented_json(status, answer)
    assert uploads_left(server) == []
    assert server.proc.poll() is None
