"""Admin login and JWTs over the real app: tokens, token attacks, permissions, login throttling."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
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


async def _login(api, name, password, **kw):
    return await api.call("POST", "/api/login", json={"username": name, "password": password}, auth=False, **kw)


async def test_failed_logins_back_off_exponentially_and_the_right_password_then_clears_them(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=3, auth__login_backoff_seconds=10, auth__login_max_backoff_seconds=35)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        api = Api(s)
        password = users.reset(s.cfg, "serg")
        for _ in range(3):  # the free tries
            assert (await _login(api, "serg", "guess"))[0] == 401
        for expected in (10, 20, 35, 35):  # doubling, capped
            status, headers, body = await _login(api, "serg", password)
            # from this address even the right password waits: a guesser learns nothing from 429 vs 401
            assert status == 429 and body["error"]["code"] == "too_many_requests"
            assert expected - 1 <= int(headers["Retry-After"]) <= expected  # real time runs on under the offset
            s.clock.advance(expected - 3)
            assert (await _login(api, "serg", password))[0] == 429  # not early
            s.clock.advance(3)
            assert (await _login(api, "serg", "guess"))[0] == 401  # one more try, checked and counted
        s.clock.advance(35)
        status, _, body = await _login(api, "serg", password)
        assert status == 200 and body["access_token"]
        assert (await _login(api, "serg", "typo"))[0] == 401  # the success cleared the failures


async def test_guessing_from_one_address_never_refuses_the_owner_elsewhere(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=3, auth__login_backoff_seconds=60)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        password = users.reset(s.cfg, "serg")
        outcomes = []
        for _ in range(50):
            try:
                await auth.login(s.ctx, "serg", "guess", client="203.0.113.66")
            except (auth.Unauthorized, auth.Throttled) as exc:
                outcomes.append(exc.code)
        assert outcomes.count("unauthorized") == 3 and outcomes.count("too_many_requests") == 47
        for client in ("203.0.113.7", "192.168.1.20", "2001:db8::7"):  # serg, wherever he is
            token = await auth.login(s.ctx, "serg", password, client=client)
            assert token["access_token"]
        with pytest.raises(auth.Throttled):  # the guesser's address still waits
            await auth.login(s.ctx, "serg", password, client="203.0.113.66")


async def test_one_address_guessing_many_names_is_throttled(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=3, auth__login_max_failures_per_address=4,
                   auth__login_backoff_seconds=30)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        api = Api(s)
        for name in ("admin", "root", "serg", "igor"):
            assert (await _login(api, name, "p"))[0] == 401
        status, headers, _ = await _login(api, "operator", "p")
        assert status == 429 and int(headers["Retry-After"]) == 30


async def test_a_parallel_burst_gets_no_more_password_checks_than_the_free_tries(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=5, auth__login_backoff_seconds=60)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        users.reset(s.cfg, "serg")
        results = await asyncio.gather(*(auth.login(s.ctx, "serg", f"guess-{i}", client="198.51.100.9")
                                        for i in range(30)), return_exceptions=True)
        # a 429 is decided before the password is looked at: each 401 is one scrypt check
        codes = [r.code for r in results]
        assert codes.count("unauthorized") == 5 and codes.count("too_many_requests") == 25
        rows = await s.ctx.db.fetchall("login_try_state", pair_key="pair:198.51.100.9 serg",
                                       client_key="client:198.51.100.9", since=s.clock.now() - dt.timedelta(hours=1))
        assert sorted(r["n"] for r in rows) == [5, 5]  # exactly the checked tries are on record


@pytest.mark.skipif(sys.platform != "linux", reason="needs the whole 127.0.0.0/8 on loopback")
async def test_the_peer_address_is_the_client_when_no_proxy_is_trusted(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=2, auth__login_backoff_seconds=60)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        password = users.reset(s.cfg, "serg")

        async def attempt(local: str, pw: str, forwarded: str | None = None) -> int:
            connector = aiohttp.TCPConnector(local_addr=(local, 0))
            headers = {"X-Forwarded-For": forwarded} if forwarded else {}
            async with aiohttp.ClientSession(connector=connector) as http:
                async with http.post(f"{s.base_url}/api/login", json={"username": "serg", "password": pw},
                                     headers=headers) as r:
                    return r.status

        # a forged X-Forwarded-For from an untrusted peer does not buy fresh addresses
        assert [await attempt("127.0.0.2", "p", f"10.0.0.{n}") for n in range(4)] == [401, 401, 429, 429]
        assert await attempt("127.0.0.3", password) == 200


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
