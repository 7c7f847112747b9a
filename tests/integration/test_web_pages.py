"""The web admin's pages over HTTP, in process (the browser tests in tests/acceptance walk them in
Chromium): sign-in through the login throttle, the cookie, the page headers, the language."""
from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from photoslot import secrets, users
from tests import logscan
from tests.conftest import INGEST_PASSWORD
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


def password_of(cfg, name: str) -> str:
    password = users.reset(cfg, name)
    logscan.secret(password)
    return password


async def test_root_redirects_to_the_admin_and_the_admin_to_sign_in(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        async with s.http.get(s.base_url + "/", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/admin/"
        async with s.http.get(s.base_url + "/admin/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/admin/login"
        async with s.http.get(s.base_url + "/admin/login") as r:
            body = await r.text()
            csp = r.headers["Content-Security-Policy"]
            assert r.status == 200 and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
            assert "frame-ancestors 'none'" in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Referrer-Policy"] == "same-origin"
            assert "<script>" not in body and 'src="/admin/static/admin.js"' in body
        async with s.http.get(s.base_url + "/admin/static/admin.js") as r:
            assert r.status == 200 and r.headers["X-Content-Type-Options"] == "nosniff"


async def test_sign_in_sets_an_httponly_strict_cookie_and_sign_out_ends_the_token(make_cfg, pg_dsn):
    cfg = make_cfg()
    password = password_of(cfg, "serg")
    async with Studio(cfg, pg_dsn, workers=0) as s:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(s.base_url + "/admin/login", data={"username": "serg", "password": password},
                                 allow_redirects=False) as r:
                assert r.status == 303
                cookie = r.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
                token = r.cookies["photoslot_session"].value
            async with http.get(s.base_url + "/admin/") as r:
                page = await r.text()
                assert r.status == 200 and page.count('id="card-slot-') == 15
            csrf = re.search(r'name="csrf" value="(\w+)"', page).group(1)
            async with http.post(s.base_url + "/admin/logout", data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/admin/login"
        async with s.http.get(s.base_url + "/api/slots", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 401


async def test_the_login_throttle_applies_to_the_form(make_cfg, pg_dsn):
    cfg = make_cfg(auth__login_max_failures=2, auth__login_backoff_seconds=60)
    password = password_of(cfg, "igor")
    async with Studio(cfg, pg_dsn, workers=0) as s:
        for _ in range(2):
            async with s.http.post(s.base_url + "/admin/login", data={"username": "igor", "password": "wrong"}) as r:
                assert r.status == 401 and "Wrong user or password." in await r.text()
        async with s.http.post(s.base_url + "/admin/login", data={"username": "igor", "password": password},
                               allow_redirects=False) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) > 0
        # and the API sees the same throttle: one rule for both doors
        async with s.http.post(s.base_url + "/api/login", json={"username": "igor", "password": password}) as r:
            assert r.status == 429


async def test_the_language_follows_the_browser_and_the_switch(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        async with s.http.get(s.base_url + "/admin/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"}) as r:
            body = await r.text()
            assert 'lang="ru"' in body and "Пользователь" in body and "Войти" in body
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(s.base_url + "/admin/lang/ru?next=/admin/login", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/admin/login"
            async with http.get(s.base_url + "/admin/login", headers={"Accept-Language": "en"}) as r:
                assert "Войти" in await r.text()
            # the switch goes back to our own pages only
            async with http.get(s.base_url + "/admin/lang/en?next=https://evil.example/", allow_redirects=False) as r:
                assert r.headers["Location"] == "/admin/"
            async with http.get(s.base_url + "/admin/lang/en?next=//evil.example/admin", allow_redirects=False) as r:
                assert r.headers["Location"] == "/admin/"


async def signed_in(s, cfg, user: str = "serg") -> tuple[aiohttp.ClientSession, str]:
    """A browser-like session signed in through the form, and its CSRF token."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(s.base_url + "/admin/login", data={"username": user, "password": password_of(cfg, user)}) as r:
        page = await r.text()
        assert r.status == 200
    return http, re.search(r'name="csrf" value="(\w+)"', page).group(1)


async def test_the_slots_page_counts_todays_answers_and_flags_a_failing_provider(make_cfg, pg_dsn, emulator,
                                                                                 photo_bytes):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        http, _ = await signed_in(s, cfg)
        async with http:
            async with http.get(s.base_url + "/admin/") as r:
                page = await r.text()
            card = page[page.index('href="/admin/slots/slot-001"'):page.index('href="/admin/slots/slot-002"')]
            assert "200 × 1" in card and "504 × 0" in card and 'alt="Last result"' in card
            assert "provider failing" not in card
            await s.ctx.db.execute("ops_alert_transition", name="provider_failing:gemini", active=True,
                                   severity="error", value=3.0, threshold=3.0, message="test", now=s.clock.now())
            async with http.get(s.base_url + "/admin/") as r:
                page = await r.text()
            card = page[page.index('href="/admin/slots/slot-001"'):page.index('href="/admin/slots/slot-002"')]
            assert "provider failing" in card


async def test_a_save_over_someone_elses_says_so_and_changes_nothing(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        first = await s.configure("slot-003", prompt="first")
        http, csrf = await signed_in(s, cfg)
        async with http:
            s.clock.advance(1)
            await s.configure("slot-003", prompt="someone else's")  # saved meanwhile: version + 1
            form = {"csrf": csrf, "version": str(first["version"]), "name": "mine", "provider_id": "gemini",
                    "operation_id": "image_edit", "prompt": "mine", "enabled": "on", "output_format": "jpeg"}
            async with http.post(s.base_url + "/admin/slots/slot-003", data=form) as r:
                assert r.status == 409
                assert "Someone else saved this slot meanwhile" in await r.text()
            current = await s.ctx.db.fetchone("slot_get", slot_id="slot-003")
            assert current["settings_json"]["prompt"] == "someone else's"
            # per-field messages from the service, next to the fields
            form = {**form, "version": str(current["version"]), "prompt": ""}
            async with http.post(s.base_url + "/admin/slots/slot-003", data=form) as r:
                page = await r.text()
                assert r.status == 422
                assert re.search(r'id="err-settings_json-prompt">a prompt is required', page), re.findall(r"err-[^<]*", page)


async def test_generating_the_ingest_password_changes_only_it_and_shows_it_once_never_in_a_url(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        await s.set_password()
        http, csrf = await signed_in(s, cfg)
        async with http:
            async with http.post(s.base_url + "/admin/settings/ingest-password/generate", data={"csrf": csrf},
                                 allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/admin/settings"  # POST/Redirect/GET
                assert "photoslot_flash" in r.cookies and r.cookies["photoslot_flash"]["httponly"]
            async with http.get(s.base_url + "/admin/settings") as r:
                page = await r.text()
                assert r.headers["Cache-Control"] == "no-store"
            new = re.search(r'id="new-ingest-password">([^<]+)<', page).group(1)
            logscan.secret(new)
            assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", new)
            async with http.get(s.base_url + "/admin/settings") as r:  # a reload: gone, nothing generated
                assert new not in await r.text()
            # the window and retention were not touched: they still follow the config file
            keys = {r["key"] for r in await s.ctx.db.fetchall("settings_all")}
            assert "sync_response_seconds" not in keys and "result_retention_hours" not in keys
            entries = await s.ctx.db.fetchall("audit_page", limit=5, action=None)
            assert [(e["actor"], e["source"], e["details"]) for e in entries if e["action"] == "settings.update"][0] == (
                "admin:serg", "web", {"ingest_password": "<generated>"})
            assert len([e for e in entries if e["action"] == "settings.update" and e["source"] == "web"]) == 1
            status, _, _ = await s.ingest("slot-001", b"x", password=new)
            assert status != 401  # the booth's new password is the one shown
            # the flash belongs to the session that made it: another session's cookie shows nothing
            other, _ = await signed_in(s, cfg, user="igor")
            async with other:
                async with http.post(s.base_url + "/admin/settings/ingest-password/reveal", data={"csrf": csrf},
                                     allow_redirects=False) as r:
                    flash = r.cookies["photoslot_flash"].value
                other.cookie_jar.update_cookies({"photoslot_flash": flash})
                async with other.get(s.base_url + "/admin/settings") as r:
                    assert new not in await r.text()
            # a form with nothing changed changes nothing, and says so after its redirect
            async with http.post(s.base_url + "/admin/settings", data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/admin/settings?done=nothing"


async def test_a_typed_ingest_password_needs_the_same_twice(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        await s.set_password()
        http, csrf = await signed_in(s, cfg)
        async with http:
            form = {"csrf": csrf, "ingest_password": "typed-password-one", "ingest_password_confirm": "typed-password-1"}
            async with http.post(s.base_url + "/admin/settings", data=form) as r:
                assert r.status == 422 and 'id="err-ingest_password_confirm"' in await r.text()
            record = (await s.ctx.db.fetchone("setting_get", key="ingest_password"))["value"]
            assert secrets.ingest_password_from(s.cfg, record) == INGEST_PASSWORD  # unchanged
            form["ingest_password_confirm"] = "typed-password-one"
            async with http.post(s.base_url + "/admin/settings", data=form, allow_redirects=False) as r:
                assert r.status == 303
            record = (await s.ctx.db.fetchone("setting_get", key="ingest_password"))["value"]
            assert secrets.ingest_password_from(s.cfg, record) == "typed-password-one"


async def test_the_slot_page_saves_as_sent_as_no_output_format_and_a_named_one_as_chosen(make_cfg, pg_dsn):
    """'As the booth sent it' leaves output_format unset (a PNG booth gets PNG back); JPEG chosen on
    purpose is stored as jpeg — the page never shows one format while the slot does another."""
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        slot = await s.configure("slot-004", prompt="p")
        http, csrf = await signed_in(s, cfg)
        async with http:
            for chosen, stored in (("", None), ("jpeg", "jpeg"), ("", None)):
                form = {"csrf": csrf, "version": str(slot["version"]), "name": "booth 4", "provider_id": "gemini",
                        "operation_id": "image_edit", "prompt": "p", "enabled": "on", "output_format": chosen}
                async with http.post(s.base_url + "/admin/slots/slot-004", data=form) as r:
                    assert r.status in (200, 303), await r.text()
                slot = await s.ctx.db.fetchone("slot_get", slot_id="slot-004")
                assert slot["settings_json"].get("output_format") == stored
                async with http.get(s.base_url + "/admin/slots/slot-004") as r:
                    page = await r.text()
                selected = re.search(r'<option value="(\w*)" selected>', page[page.index('id="output_format"'):])
                assert selected.group(1) == (stored or "")


async def test_the_session_cookie_is_secure_when_a_trusted_proxy_says_https_and_only_then(make_cfg, pg_dsn):
    cfg = make_cfg(server__trusted_proxies=["127.0.0.1"])
    password = password_of(cfg, "serg")
    async with Studio(cfg, pg_dsn, workers=0) as s:
        for proto, secure in (("https", True), ("http", False), (None, False)):
            headers = {"X-Forwarded-Proto": proto} if proto else {}
            async with aiohttp.ClientSession() as http:
                async with http.post(s.base_url + "/admin/login", data={"username": "serg", "password": password},
                                     headers=headers, allow_redirects=False) as r:
                    assert r.status == 303
                    assert ("Secure" in r.headers["Set-Cookie"]) is secure, (proto, r.headers["Set-Cookie"])
    untrusted = make_cfg()  # the same header from a peer that is no listed proxy: not believed
    async with Studio(untrusted, pg_dsn, workers=0) as s:
        async with aiohttp.ClientSession() as http:
            async with http.post(s.base_url + "/admin/login", data={"username": "serg", "password": password},
                                 headers={"X-Forwarded-Proto": "https"}, allow_redirects=False) as r:
                assert r.status == 303 and "Secure" not in r.headers["Set-Cookie"]


async def test_an_unknown_provider_or_operation_in_the_address_shows_the_form_with_a_message(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        await s.configure("slot-004")
        http, _ = await signed_in(s, cfg)
        async with http:
            for query, message in (("provider_id=zzz", "names a provider that does not exist"),
                                   ("provider_id=gemini&operation_id=zzz", "names an operation that does not exist"),
                                   ("provider_id=%00%1b", "names a provider that does not exist")):
                async with http.get(s.base_url + f"/admin/slots/slot-004?{query}") as r:
                    page = await r.text()
                    assert r.status == 200, (query, page[-500:])
                    assert message in page and 'id="slot-form"' in page
                    assert page.count("zzz") == page.count("%3Dzzz")  # not echoed (only in the language links' address)


async def test_a_test_shot_of_a_huge_declared_png_stays_off_the_event_loop_and_within_the_caps(make_cfg, pg_dsn):
    """A 79 MP PNG of a few hundred KB (the booth's 80 MP cap lets it in): the check, the provider's
    copy and the page's preview are reduced decodes on the image threads — /healthz keeps answering
    at once, and the process does not grow by the image's full size."""
    import resource
    import struct
    import time
    import zlib

    width, height = 10_000, 7_900
    row = b"\x00" + bytes(width * 3)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    assert len(png) < 1024 * 1024
    cfg = make_cfg(ingest__sync_response_seconds=30)
    async with Studio(cfg, pg_dsn) as s:
        await s.configure("slot-001")
        http, csrf = await signed_in(s, cfg)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        slowest = 0.0
        async with http:
            form = aiohttp.FormData()
            form.add_field("csrf", csrf)
            form.add_field("photo", png, filename="huge.png", content_type="image/png")
            shot = asyncio.ensure_future(http.post(s.base_url + "/admin/slots/slot-001/test-shot", data=form))
            while not shot.done():
                started = time.perf_counter()
                async with s.http.get(s.base_url + "/healthz") as r:
                    assert r.status == 200
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.05)
            async with await shot as r:
                page = await r.text()
                assert r.status == 200
            # the booth's answer, in words, and the original's preview beside the result
            assert "Done in" in page and 'alt="Original"' in page and "data:image/jpeg;base64," in page, page[-2000:]
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert slowest < 0.5, slowest
        assert grown_mb < 400, grown_mb  # decoded whole it would take 237 MB of RGB, and many times that in copies
