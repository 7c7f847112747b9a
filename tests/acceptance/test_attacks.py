"""Attacks on a real `photoslot serve`, as someone on the studio network would try them.

Each test is one attack and the answer docs/RELIABILITY.md ("Security") promises. Several client
addresses are simulated the way a studio behind a reverse proxy sees them: `serve` trusts
127.0.0.1 as its proxy (`server.trusted_proxies`) and each request names its client in
`X-Forwarded-For`.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import stat
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import jwt
import pytest
import yaml

from tests import logscan
from tests.acceptance.procs import cli, first_start_passwords, start_serve
from tests.conftest import FIXTURES, INGEST_PASSWORD, free_port

pytestmark = pytest.mark.slow

GUESSER = "203.0.113.66"
SERG_AT_HOME = "198.51.100.7"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer"}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _login(http, base, name, password, client: str | None = None):
    headers = {"X-Forwarded-For": client} if client else {}
    async with http.post(f"{base}/api/login", json={"username": name, "password": password}, headers=headers) as r:
        body = await r.json()
        return r.status, body.get("access_token"), r.headers


async def _get(http, base, path, token=None, method="GET", **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, f"{base}{path}", headers=headers, **kw) as r:
        await r.read()
        return r.status


@pytest.fixture
def attack_studio(studio_config, pg_dsn):
    """A configured studio whose `serve` believes X-Forwarded-For from 127.0.0.1 (its proxy)."""

    async def start(**overrides):
        config, port = studio_config(server__trusted_proxies=["127.0.0.1"], **overrides)
        serve = await start_serve(config, pg_dsn, port)
        await serve.wait_for_line("first-start passwords written to")
        return config, port, serve, first_start_passwords(config)

    return start


def _checks_bound(elapsed: float) -> int:
    """Password checks the back-off allows after the 5 free ones within `elapsed` seconds: the waits
    are 1, 2, 4 … s, so k extra checks need 2^k - 1 seconds."""
    k = 0
    while 2 ** (k + 1) - 1 <= elapsed:
        k += 1
    return 5 + k


async def test_guessing_serg_locks_out_only_the_guesser(attack_studio):
    config, port, serve, passwords = await attack_studio()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            first_five = [(await _login(http, base, "serg", f"guess-{i}", GUESSER))[0] for i in range(5)]
            assert first_five == [401] * 5
            # serg, from home and from the studio PC itself, at once
            assert (await _login(http, base, "serg", passwords["serg"], SERG_AT_HOME))[0] == 200
            assert (await _login(http, base, "serg", passwords["serg"]))[0] == 200
            statuses = [(await _login(http, base, "serg", f"guess-{i}", GUESSER))[0] for i in range(500)]
            elapsed = time.monotonic() - started
            checked = statuses.count(401)
            assert set(statuses) <= {401, 429} and 5 + checked <= _checks_bound(elapsed)
            status, _, headers = await _login(http, base, "serg", passwords["serg"], GUESSER)
            assert status == 429 and int(headers["Retry-After"]) >= 1  # the guesser waits, right password or not
            assert (await _login(http, base, "serg", passwords["serg"], SERG_AT_HOME))[0] == 200
            # random usernames from many addresses do not lock igor out either
            for n in range(30):
                await _login(http, base, f"user{n}", "x", f"192.0.2.{n}")
            assert (await _login(http, base, "igor", passwords["igor"], "192.0.2.1"))[0] == 200
        print(f"[measured] 5 + 500 wrong logins in {elapsed:.2f} s: {5 + checked} password checks, "
              f"{500 - checked} × 429")
    finally:
        await serve.stop()


async def test_a_parallel_burst_of_30_gets_at_most_the_allowed_password_checks(attack_studio):
    config, port, serve, passwords = await attack_studio()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=30)) as http:
            started = time.monotonic()
            results = await asyncio.gather(*(_login(http, base, "serg", f"burst-{i}", GUESSER) for i in range(30)))
            elapsed = time.monotonic() - started
            statuses = [r[0] for r in results]
            assert set(statuses) <= {401, 429}
            assert 5 <= statuses.count(401) <= _checks_bound(elapsed)
            assert (await _login(http, base, "serg", passwords["serg"], SERG_AT_HOME))[0] == 200
        print(f"[measured] burst of 30 in {elapsed:.2f} s: {statuses.count(401)} password checks")
    finally:
        await serve.stop()


async def test_a_token_ends_on_every_process_after_revoke_logout_and_reset(attack_studio, pg_dsn):
    config, port, serve, passwords = await attack_studio()
    other_port = free_port()
    other = await start_serve(config, pg_dsn, other_port)  # a second process on the same database
    bases = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{other_port}"]
    try:
        async with aiohttp.ClientSession() as http:
            async def both(token) -> list[int]:
                return [await _get(http, b, "/api/settings", token) for b in bases]

            # revoke from the CLI
            _, token, _ = await _login(http, bases[0], "serg", passwords["serg"])
            _, igor, _ = await _login(http, bases[1], "igor", passwords["igor"])
            assert await both(token) == [200, 200]
            r = cli(config, pg_dsn, "users", "revoke", "serg")
            assert r.returncode == 0, r.stderr
            assert await both(token) == [401, 401]
            assert await both(igor) == [200, 200]  # only serg's sessions ended

            # sign-out on one process ends the token on the other
            _, token, _ = await _login(http, bases[0], "serg", passwords["serg"])
            assert await _get(http, bases[1], "/api/logout", token, method="POST") == 204
            assert await both(token) == [401, 401]
            assert await _get(http, bases[0], "/api/logout", token, method="POST") == 401

            # a password reset ends the sessions: the old token can neither read nor write
            _, token, _ = await _login(http, bases[1], "serg", passwords["serg"])
            r = cli(config, pg_dsn, "users", "reset", "serg")
            assert r.returncode == 0, r.stderr
            new_password = re.search(r"\(shown once\): (\S+)", r.stdout).group(1)
            logscan.secret(new_password, shown_by=r.stdout)
            assert await both(token) == [401, 401]
            assert await _get(http, bases[0], "/api/settings", token, method="PUT",
                              json={"ingest": {"sync_response_timeout_sec": 5}}) == 401
            assert (await _login(http, bases[0], "serg", passwords["serg"]))[0] == 401
            status, token, _ = await _login(http, bases[0], "serg", new_password)
            assert status == 200 and await both(token) == [200, 200]
        audit = json.loads(cli(config, pg_dsn, "audit", "--json", "--limit", "12").stdout)
        actions = [e["action"] for e in audit]
        # the sign-ins are audited too: the old password refused after the reset, the new one taken
        assert actions[:2] == ["users.login", "users.login_failed"]
        assert [a for a in actions if not a.startswith("users.login")][:3] == ["users.reset", "users.logout", "users.revoke"]
    finally:
        await other.stop()
        await serve.stop()


async def test_forged_and_foreign_tokens_are_refused(attack_studio):
    config, port, serve, passwords = await attack_studio()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            _, good, _ = await _login(http, base, "serg", passwords["serg"])
            header, payload, signature = good.split(".")
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            forged = {
                "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
                "alg none, signature kept": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}",
                "another studio's key": jwt.encode(claims, uuid.uuid4().bytes * 2, algorithm="HS256"),
                "payload changed after signing": f"{header}.{_b64({**claims, 'sub': 'igor'})}.{signature}",
            }
            for name, token in forged.items():
                assert await _get(http, base, "/api/settings", token) == 401, name
            assert await _get(http, base, "/api/settings", good) == 200
    finally:
        await serve.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
async def test_files_on_disk_are_the_owners_only(attack_studio, pg_dsn):
    config, port, serve, passwords = await attack_studio(ingest__sync_response_seconds=20)
    data_dir = Path(yaml.safe_load(config.read_text())["data_dir"])
    base = f"http://127.0.0.1:{port}"
    try:
        r = cli(config, pg_dsn, "template", "add", str(FIXTURES / "template_style.jpg"))
        assert r.returncode == 0, r.stderr
        async with aiohttp.ClientSession() as http:
            _, token, _ = await _login(http, base, "serg", passwords["serg"])
            async with http.put(f"{base}/api/settings", headers={"Authorization": f"Bearer {token}"},
                                json={"provider_keys": {"turbotext": {"value": "tt-key-0123456789"}}}) as resp:
                assert resp.status == 200
            logscan.secret("tt-key-0123456789")
            form = aiohttp.FormData()
            form.add_field("password", INGEST_PASSWORD)
            form.add_field("fileToUpload", (FIXTURES / "dslr_portrait_orientation6.jpg").read_bytes(),
                           filename="shot.jpg", content_type="image/jpeg")
            async with http.post(f"{base}/ingest/slot-001", data=form) as resp:
                assert resp.status == 200
        media = data_dir / "media"
        files = [p for p in media.rglob("*") if p.is_file()]
        folders = [media, *(p for p in media.rglob("*") if p.is_dir())]
        assert any(p.parent.name == "results" for p in files) and any(p.parent.name == "templates" for p in files)
        assert {str(p.relative_to(data_dir)): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
        assert {str(p.relative_to(data_dir)): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}
        secrets = data_dir / "secrets"
        assert _mode(data_dir) == 0o700 and _mode(secrets) == 0o700
        assert {p.name: _mode(p) for p in secrets.iterdir()} == {
            "admins.json": 0o600, "jwt_secret": 0o600, "settings.key": 0o600, "first-start-passwords.txt": 0o600}
    finally:
        await serve.stop()


ROUTES = [  # (method, path, expected status) — every kind of route, the errors and aiohttp's own answers
    ("GET", "/healthz", 200), ("GET", "/readyz", 200), ("GET", "/metrics", 200),
    ("GET", "/api/openapi.json", 200), ("GET", "/api/slots", 401), ("POST", "/api/login", 400),
    ("POST", "/api/logout", 401), ("DELETE", "/api/login", 405), ("GET", "/api/no-such-thing", 404),
    ("GET", "/ingest/slot-001", 405), ("POST", "/ingest/slot-099", 404),
    ("GET", f"/public/results/{uuid.uuid4()}", 404), ("GET", f"/public/media/{uuid.uuid4()}", 404),
    ("GET", "/no/such/page", 404), ("GET", "/%2e%2e/%2e%2e/etc/passwd", 404),
]


async def test_every_response_carries_the_security_headers_and_no_server_version(attack_studio):
    config, port, serve, passwords = await attack_studio()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for method, path, expected in ROUTES:
                async with http.request(method, f"{base}{path}", data=b"" if method == "POST" else None) as r:
                    await r.read()
                    assert r.status == expected, (method, path, r.status)
                    for name, value in SECURITY_HEADERS.items():
                        assert r.headers.get(name) == value, (method, path, name, r.headers.get(name))
                    csp = r.headers.get("Content-Security-Policy", "")
                    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
                    assert not re.search(r"\d", r.headers.get("Server", "")), (path, r.headers.get("Server"))
            _, token, _ = await _login(http, base, "serg", passwords["serg"])
            evil = {"Origin": "http://evil.example", "Authorization": f"Bearer {token}"}
            async with http.get(f"{base}/api/slots", headers=evil) as r:
                assert r.status == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
                # no CORS: a page on another origin cannot read an answer, even with a stolen token
                assert not any(h.lower().startswith("access-control-") for h in r.headers)
            async with http.options(f"{base}/api/settings", headers={
                    "Origin": "http://evil.example", "Access-Control-Request-Method": "PUT",
                    "Access-Control-Request-Headers": "authorization,content-type"}) as r:
                assert r.status == 405 and not any(h.lower().startswith("access-control-") for h in r.headers)
    finally:
        await serve.stop()


async def test_metrics_need_a_listed_address_or_the_token(attack_studio):
    config, port, serve, _ = await attack_studio(metrics__token="prometheus-scrape-token-1")
    logscan.secret("prometheus-scrape-token-1")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            assert await _get(http, base, "/metrics") == 200  # from the studio PC itself
            outsider = {"X-Forwarded-For": "192.168.1.77"}
            async with http.get(f"{base}/metrics", headers=outsider) as r:
                assert r.status == 403 and "photoslot_" not in await r.text()
            async with http.get(f"{base}/metrics", headers={**outsider, "Authorization": "Bearer wrong"}) as r:
                assert r.status == 403
            async with http.get(f"{base}/metrics",
                                headers={**outsider, "Authorization": "Bearer prometheus-scrape-token-1"}) as r:
                assert r.status == 200 and "photoslot_" in await r.text()
    finally:
        await serve.stop()


async def test_forged_log_lines_are_escaped(attack_studio):
    config, port, serve, _ = await attack_studio()
    base = f"http://127.0.0.1:{port}"
    forged_user = "serg\r\n2030-01-01 00:00:00,000 INFO photoslot.auth event=login user=igor\x1b[2K"
    try:
        async with aiohttp.ClientSession() as http:
            assert (await _login(http, base, forged_user, "x", GUESSER))[0] == 401
            async with http.post(f"{base}/ingest/slot-001%0D%0Aevent=ingest%20slot=slot-002%20status=200",
                                 data=b"") as r:
                assert r.status in (400, 404)
            # CR, LF and ESC reach a part's name and filename percent-encoded (RFC 5987 `name*=`, `filename*=`)
            boundary = "attackboundary7MA4YWxk"

            def part(disposition: str, value: bytes) -> bytes:
                return (f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode()
                        + value + b"\r\n")

            body = (part('name="password"', INGEST_PASSWORD.encode())
                    + part("name*=UTF-8''booth%0D%0Aevent%3Dfake", b"A\r\nevent=login user=igor")
                    + part("name=\"fileToUpload\"; filename*=UTF-8''IMG_1.jpg%0D%0Aevent%3Dfake%1B%5D0%3Bx%07",
                           (FIXTURES / "small_photo.png").read_bytes())
                    + f"--{boundary}--\r\n".encode())
            async with http.post(f"{base}/ingest/slot-001", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}) as r:
                assert r.status in (200, 504), await r.text()  # 504: a loaded machine; the job was queued
        await serve.wait_for_line("slot=slot-001 outcome=")
        lines = serve.lines
        assert not any(line.startswith(("2030-01-01", "event=")) or "\x1b" in line or "\r" in line
                       for line in lines), [x for x in lines if "event=" in x][-5:]
        failed = next(line for line in lines if "event=login_failed" in line)
        assert '\\r\\n2030-01-01 00:00:00,000 INFO photoslot.auth event=login user=igor\\x1b[2K' in failed
        assert not any("event=login " in line and "user=igor" in line and "login_failed" not in line
                       for line in lines)
        queued = next(line for line in lines if "event=job_queued" in line)
        assert 'filename="IMG_1.jpg\\r\\nevent=fake\\x1b]0;x\\x07"' in queued, queued
        assert 'fields="booth\\r\\nevent=fake"' in queued, queued
        assert "A\\r\\nevent=login" not in queued  # field values may be a guest's e-mail: names only
    finally:
        await serve.stop()
