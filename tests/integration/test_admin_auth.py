"""Admin login and JWTs over the real app: tokens, token attacks, permissions, login throttling."""
from __future__ import annotations

import base64
import json
import logging
import stat
import sys

import aiohttp
import jwt
import pytest

from photoslot import auth, users
from tests.integration.adminapi import Api, all_secured_routes, logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_login_returns_a_bearer_jwt_with_every_permission(make_cfg, pg_dsn):
    async with Studio(make_cfg(auth__token_ttl_minutes=15), pg_dsn, workers=0) as s:
        api = Api(s)
        token = await api.login("igor")
        claims = jwt.decode(token, users.jwt_secret(s.cfg), algorithms=["HS256"])
        assert claims["sub"] == "igor"
        assert sorted(claims["permissions"]) == sorted(auth.PERMISSIONS)
        assert claims["exp"] - claims["iat"] == 15 * 60 and len(claims["jti"]) >= 16
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
        status, _, body = await api.call("GET", "/api/slots")
        assert status == 200 and len(body["data"]) == 15


async def test_wrong_password_and_unknown_user_both_answer_401(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = Api(s)
        users.reset(s.cfg, "serg")
        for name, pw in (("serg", "not-the-password"), ("root", "whatever"), ("SERG", "x")):
            status, headers, body = await api.call("POST", "/api/login", json={"username": name, "password": pw},
                                                   auth=False)
            assert status == 401 and body["error"]["code"] == "unauthorized"
            assert "not-the-password" not in json.dumps(body)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"username": "serg"}', b'{"username": 5, "password": "x"}'])
async def test_malformed_login_body_is_400(make_cfg, pg_dsn, raw):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        status, _, body = await Api(s).call("POST", "/api/login", data=raw, auth=False,
                                            headers={"Content-Type": "application/json"})
        assert status == 400 and body["error"]["code"] == "bad_request"


async def test_every_admin_route_refuses_a_missing_or_malformed_token(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = Api(s)
        for method, path, _ in all_secured_routes():
            status, headers, body = await api.call(method, path, auth=False)
            assert status == 401, (method, path, body)
            assert headers["WWW-Authenticate"].startswith("Bearer")
            status, _, _ = await api.call(method, path, auth=False, headers={"Authorization": "Basic c2VyZzp4"})
            assert status == 401, (method, path)


async def test_expired_token_is_refused_by_the_injected_clock(make_cfg, pg_dsn):
    async with Studio(make_cfg(auth__token_ttl_minutes=10), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        s.clock.advance(10 * 60 - 5)
        assert (await api.call("GET", "/api/settings"))[0] == 200
        s.clock.advance(6)
        status, _, body = await api.call("GET", "/api/settings")
        assert status == 401 and "expired" in body["error"]["message"]


async def test_forged_tokens_are_refused(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = Api(s)
        good = await api.login()
        header, payload, signature = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        forged = {
            # the same claims, someone else's signature
            "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
            # a payload changed after signing (sub → igor)
            "tampered payload": f"{header}.{_b64({**claims, 'sub': 'igor'})}.{signature}",
            # alg none: no signature at all
            "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
            "alg none, signed part kept": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}",
            # a well-formed HS256 token signed with another key
            "wrong key": jwt.encode(claims, b"x" * 32, algorithm="HS256"),
            # a valid signature for a user that does not exist
            "unknown user": jwt.encode({**claims, "sub": "mallory"}, users.jwt_secret(s.cfg), algorithm="HS256"),
            "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, users.jwt_secret(s.cfg),
                                 algorithm="HS256"),
            "garbage": "abc.def",
        }
        for name, token in forged.items():
            status, _, body = await api.call("GET", "/api/settings", token=token)
            assert status == 401, name
            assert body["error"]["code"] == "unauthorized"
        assert (await api.call("GET", "/api/settings", token=good))[0] == 200


async def test_a_token_without_the_permission_gets_403_on_every_route(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = Api(s)
        for method, path, permission in all_secured_routes():
            others = [p for p in auth.PERMISSIONS if p != permission]
            token = auth.issue_token(s.cfg, "serg", now=s.clock.now(), permissions=others)["access_token"]
            status, _, body = await api.call(method, path, token=token)
            assert status == 403, (method, path, status, body)
            assert body["error"]["details"]["permission"] == permission


async def test_repeated_failures_for_one_user_are_throttled_with_retry_after(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=3, auth__login_window_seconds=120)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        api = Api(s)
        password = users.reset(s.cfg, "serg")
        for _ in range(3):
            s.clock.advance(10)
            status, _, _ = await api.call("POST", "/api/login", json={"username": "serg", "password": "guess"},
                                          auth=False)
            assert status == 401
        # the right password does not help while throttled: a guesser learns nothing
        status, headers, body = await api.call("POST", "/api/login", json={"username": "serg", "password": password},
                                               auth=False)
        assert status == 429 and body["error"]["code"] == "too_many_requests"
        retry = int(headers["Retry-After"])
        assert 90 <= retry <= 100  # the first failure was 20 s before the last one; window 120 s
        s.clock.advance(retry - 2)
        assert (await api.call("POST", "/api/login", json={"username": "serg", "password": password},
                               auth=False))[0] == 429
        s.clock.advance(3)
        status, _, body = await api.call("POST", "/api/login", json={"username": "serg", "password": password},
                                         auth=False)
        assert status == 200 and body["access_token"]


async def test_one_client_guessing_many_names_is_throttled(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=3, auth__login_window_seconds=60)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        api = Api(s)
        for name in ("admin", "root", "serg"):
            assert (await api.call("POST", "/api/login", json={"username": name, "password": "p"}, auth=False))[0] == 401
        status, headers, _ = await api.call("POST", "/api/login", json={"username": "igor", "password": "p"},
                                            auth=False)
        assert status == 429 and int(headers["Retry-After"]) >= 1


@pytest.mark.skipif(sys.platform != "linux", reason="needs the whole 127.0.0.0/8 on loopback")
async def test_one_user_guessed_from_many_clients_is_throttled(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=3, auth__login_window_seconds=60)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        for n in range(2, 6):
            connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{n}", 0))
            async with aiohttp.ClientSession(connector=connector) as http:
                async with http.post(f"{s.base_url}/api/login", json={"username": "serg", "password": "p"}) as r:
                    expected = 401 if n < 5 else 429
                    assert r.status == expected, (n, await r.text())


async def test_admin_passwords_live_only_as_scrypt_in_a_private_file(make_cfg, pg_dsn, caplog):
    cfg = make_cfg()
    created = users.ensure_admins(cfg)
    assert sorted(created) == ["igor", "serg"] and users.ensure_admins(cfg) == {}
    path = users.secrets_dir(cfg) / users.ADMINS_FILE
    text = path.read_text()
    assert all(pw not in text for pw in created.values())
    assert json.loads(text)["users"]["serg"]["algo"] == "scrypt"
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((users.secrets_dir(cfg) / users.JWT_SECRET_FILE).stat().st_mode) == 0o600
    caplog.set_level(logging.DEBUG)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        api = Api(s)
        status, _, body = await api.call("POST", "/api/login",
                                         json={"username": "serg", "password": created["serg"]}, auth=False)
        assert status == 200
        await api.call("POST", "/api/login", json={"username": "igor", "password": "wrong-" + created["igor"]},
                       auth=False)
    logged = caplog.text
    assert "login" in logged
    assert created["serg"] not in logged and created["igor"] not in logged and body["access_token"] not in logged
