"""Running an event day from the web admin: every refused or failed shot found with its reason (cards,
the slot page, Statistics), in the studio's time zone, a provider outage on every page, sessions
that last the working day (the injected clock moved through it), and forms a reload never repeats."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from photoslot import jobs, purge, slot_report, stats, studio_time, sweeper
from photoslot import settings as live_settings
from tests.conftest import emulator_control
from tests.integration.studio import Studio
from tests.integration.webclient import Browser

pytestmark = pytest.mark.usefixtures("clean_state")


def card_of(page: str, slot_id: str) -> str:
    start = page.index(f'href="/admin/slots/{slot_id}"', page.index('id="slot-cards"'))
    end = page.find('class="slot-card', start + 10)
    return page[start:end if end > 0 else None]


async def test_refused_shots_are_counted_on_the_cards_and_found_with_their_reason_on_statistics(
        make_cfg, pg_dsn, emulator, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await s.configure("slot-003")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        for _ in range(5):  # a booth with yesterday's password
            assert (await s.ingest("slot-003", photo_bytes, password="yesterday-pass"))[0] == 401
        assert (await s.ingest("slot-016", photo_bytes))[0] == 404  # a mistyped slot address
        async with Browser(s) as b:
            await b.sign_in()
            _, page = await b.get("/admin/")
            card = card_of(page, "slot-003")
            assert "200 × 0" in card and "refused × 5" in card and "HTTP 401 — wrong or missing ingest password" in card
            assert "refused × 0" in card_of(page, "slot-001") and "200 × 1" in card_of(page, "slot-001")
            _, page = await b.get("/admin/stats")
            table = page[page.index('<table id="by-slot"'):page.index("</table>", page.index('<table id="by-slot"'))]
            row = re.search(r'<tr class="failing">\s*<th scope="row"[^>]*><a href="/admin/slots/slot-003"[^>]*>.*?</tr>', table, re.S)
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
            assert cells[1:6] == ["5", "0", "0", "5", "0"]  # shots, 200, 504, refused, errors
            assert "unknown slot address" in table
            failures = re.sub(r"<(?!/strong)[^>]+>", "", page[page.index('id="last-failures"'):])  # the text
            assert "HTTP 401</strong> invalid_password — wrong or missing ingest password" in failures
            assert "5 times since" in failures and "from 127.0.0.1" in failures
            assert "HTTP 404</strong> slot_not_found" in failures
            refused = page[page.index('id="refused-by-reason"'):]
            assert re.search(r"<td>5</td><td>401</td><td>wrong or missing ingest password", refused)


async def test_a_refusal_flood_is_one_bounded_record_written_once_per_flush(make_cfg, pg_dsn, photo_bytes):
    """A password-guessing flood: however many requests, one entry in memory and one row, never a
    statement per request."""
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        tally = s.ctx.refusals
        now = s.clock.now()
        for i in range(20_000):
            tally.add(at=now, slot_id="slot-002", provider_id="gemini", reason="invalid_password", status=401,
                      client=f"10.0.{i // 250}.{i % 250}", detail="wrong or missing password")
        for i in range(3000):  # slot ids the guesser makes up: folded into one key
            tally.add(at=now, slot_id=f"slot-{i:04d}", provider_id=None, reason="slot_not_found", status=404)
        assert len(tally.recent) == 2 and len(tally) == 2
        await tally.flush(s.ctx.db)
        rows = await s.ctx.db.fetchall("report_refusals", slot_id=None, limit=10,
                                       **{"from": now - dt.timedelta(hours=1), "to": now + dt.timedelta(hours=1)})
        assert sorted((r["slot_id"], r["requests"], len(r["clients"])) for r in rows) == [
            ("invalid", 3000, 0), ("slot-002", 20_000, 5)]
        # the same key later the same hour adds up; after an hour of quiet a new episode starts
        tally.add(at=now + dt.timedelta(minutes=10), slot_id="slot-002", provider_id=None, reason="invalid_password",
                  status=401)
        await tally.flush(s.ctx.db)
        tally.add(at=now + dt.timedelta(hours=2), slot_id="slot-002", provider_id=None, reason="invalid_password",
                  status=401)
        await tally.flush(s.ctx.db)
        (row,) = [r for r in await s.ctx.db.fetchall("report_refusals", slot_id="slot-002", limit=10, **{
            "from": now - dt.timedelta(hours=1), "to": now + dt.timedelta(hours=3)})]
        assert row["requests"] == 1 and row["first_at"] == now + dt.timedelta(hours=2)



async def shoot_a_test_from_the_slot_page(b, slot_id: str, photo: bytes) -> str:
    """The slot page's test shot, as its form sends it: where the POST/Redirect/GET leads."""
    await b.get(f"/admin/slots/{slot_id}")
    status, _, location = await b.post(f"/admin/slots/{slot_id}/test-shot", {}, files={"photo": ("shot.jpg", photo)})
    assert status == 303
    return location

async def test_test_shots_are_marked_and_counted_apart_on_every_page(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-002")
        async with Browser(s) as b:
            await b.sign_in()
            location = await shoot_a_test_from_the_slot_page(b, "slot-002", photo_bytes)
            _, page = await b.get(location)
            assert "Done in" in page and 'class="badge test"' in page
            _, page = await b.get("/admin/")
            assert "200 × 0" in card_of(page, "slot-002") and "test shots × 1" in card_of(page, "slot-002")
            _, page = await b.get("/admin/stats")
            assert re.search(r"<dt>Booth requests</dt><dd>0</dd>", page)
            assert re.search(r'<dt>Test shots</dt><dd id="stats-test-shots">1 \(1 with a result', page)
            _, page = await b.get("/admin/jobs")
            assert 'class="badge test"' in page


async def test_a_reload_never_repeats_a_test_shot_and_a_cancel_asks_first(make_cfg, pg_dsn, emulator, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-002")
        async with Browser(s) as b:
            await b.sign_in()
            location = await shoot_a_test_from_the_slot_page(b, "slot-002", photo_bytes)
            for _ in range(3):  # F5 on the result: shown again, never shot again
                status, page = await b.get(location)
                assert status == 200 and "Done in" in page
            assert (await jobs.admin_list(s.ctx.db, slot_id="slot-002"))[1] == 1
            job_id = re.search(r"/admin/jobs/([0-9a-f-]{36})/result", page).group(1)
            async with b.http.get(f"{s.base_url}/admin/jobs/{job_id}/result?download=1") as r:
                assert r.status == 200 and r.content_type == "image/jpeg"
                local = studio_time.pc_zone().local((await jobs.get(s.ctx.db, job_id))["finalized_at"])
                assert r.headers["Content-Disposition"] == f'attachment; filename="slot-002_{local:%Y-%m-%d_%H-%M-%S}.jpg"'
            async with b.http.get(f"{s.base_url}/admin/jobs/{job_id}/result") as r:
                assert r.status == 200 and r.headers["Content-Disposition"].startswith("inline;")
            # a stuck job: cancelling is a page that asks; the POST without its confirmation cancels nothing
            await emulator_control(emulator, hang=True)
            stuck = await s.queue_job("slot-002", window=30)
            await s.wait_job(stuck, lambda j: j["status"] == "processing")
            status, page = await b.get(f"/admin/jobs/{stuck}")
            assert f'href="/admin/jobs/{stuck}/cancel"' in page and "<form" not in page.split("<main")[1].split("Cancel job")[0]
            status, page = await b.get(f"/admin/jobs/{stuck}/cancel")
            assert "Yes, cancel the job" in page and "HTTP 503 admin_cancelled" in re.sub(r"<[^>]+>", "", page)
            status, _, location = await b.post(f"/admin/jobs/{stuck}/cancel", {})
            assert (status, location) == (303, f"/admin/jobs/{stuck}/cancel")
            assert not (await s.job(stuck))["is_finalized"]
            status, _, location = await b.post(f"/admin/jobs/{stuck}/cancel", {"confirm": "yes"})
            assert (status, location) == (303, f"/admin/jobs/{stuck}?done=cancelled")
            assert (await s.job(stuck))["failure_reason"] == "admin_cancelled"
            status, page, _ = await b.post(f"/admin/jobs/{stuck}/cancel", {"confirm": "yes"})  # Back + resend
            assert status == 409 and "The job has ended already." in page
            await emulator_control(emulator, hang=False)


async def test_no_page_puts_a_token_in_a_url(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await s.configure("slot-001")
        async with Browser(s) as b:
            await b.sign_in()
            for path in ("/admin/", "/admin/slots/slot-001", "/admin/templates", "/admin/settings", "/admin/stats",
                         "/admin/jobs", "/admin/providers", "/admin/audit"):
                _, page = await b.get(path)
                assert b.csrf and b.csrf not in re.sub(r'name="csrf" value="\w+"', "", page), path
                assert "csrf=" not in page, path


async def test_a_provider_outage_shows_on_every_page_and_on_the_providers_page(make_cfg, pg_dsn, emulator,
                                                                              photo_bytes):
    cfg = make_cfg(providers__gemini__down_after_failures=1, providers__gemini__max_attempts=1,
                   providers__gemini__down_cooldown_seconds=30)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        async with Browser(s) as b:
            await b.sign_in()
            _, page = await b.get("/admin/providers")
            assert 'class="banner"' not in page
            await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
            assert (await s.ingest("slot-001", photo_bytes))[0] == 503
            assert (await s.ingest("slot-001", photo_bytes))[0] == 503  # refused at once meanwhile
            for path in ("/admin/", "/admin/jobs", "/admin/settings", "/admin/templates"):
                _, page = await b.get(path)
                banner = re.search(r'<div class="banner" role="alert">(.*?)</div>', page, re.S).group(1)
                said = re.sub(r"<[^>]+>", "", banner)
                assert "Google Gemini is down" in said and "Booths of slot-001 get HTTP 503 provider_unavailable" in said
            _, page = await b.get("/admin/providers")
            section = page[page.index('id="provider-gemini"'):page.index('id="provider-turbotext"')]
            assert "Down since" in section and "HTTP 503" in section and "Next probe" in section
            assert "configured" in section and 'href="/admin/settings#provider-keys"' in section
            _, page = await b.get("/admin/")
            assert "provider down" in card_of(page, "slot-001")


async def test_today_is_the_studios_day_in_its_time_zone(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await live_settings.update(s.ctx.db, s.cfg, s.clock, actor="t", source="t", time_zone="Asia/Vladivostok")
        zone = await studio_time.load(s.ctx.db)
        assert zone.name == "Asia/Vladivostok" and zone.source == "setting"
        # put the clock at 09:30 in Vladivostok (23:30 UTC the day before): a shot at 08:40 local is
        # today, though its UTC day is yesterday's
        now = s.clock.now()
        local_0930 = now.astimezone(zone.tzinfo).replace(hour=9, minute=30, second=0, microsecond=0)
        s.clock.advance((local_0930 - now).total_seconds())
        s.clock.advance(-50 * 60)
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        s.clock.advance(50 * 60)
        rows = {r["slot_id"]: r for r in await slot_report.by_slot(
            s.ctx, start=studio_time.day_start(s.clock.now(), zone), end=s.clock.now())}
        assert rows["slot-001"]["answered_200"] == 1
        async with Browser(s) as b:
            await b.sign_in()
            _, page = await b.get("/admin/")
            assert "200 × 1" in card_of(page, "slot-001") and "Asia/Vladivostok" in page


async def test_a_session_lasts_a_working_day_in_use_and_ends_when_idle_or_at_its_cap(make_cfg, pg_dsn):
    cfg = make_cfg(auth__web_session_idle_minutes=60, auth__web_session_max_hours=12)
    async with Studio(cfg, pg_dsn, workers=0) as s:
        async with Browser(s) as b:
            await b.sign_in()
            for _ in range(9 * 4):  # a 9-hour day, the page used every 15 minutes
                s.clock.advance(15 * 60)
                status, page = await b.get("/admin/")
                assert status == 200 and 'id="card-slot-001"' in page
            # the pages' own live refresh is not use: 61 minutes of it and the session has ended
            for _ in range(61):
                s.clock.advance(60)
                async with b.http.get(s.base_url + "/admin/", headers={"X-Requested-With": "refresh"}) as r:
                    if r.status == 401:
                        break
            assert r.status == 401 and r.headers["X-Photoslot-Session"] == "ended"
            async with b.http.get(s.base_url + "/admin/session", headers={"X-Requested-With": "session"}) as r:
                assert r.status == 401 and (await r.json())["ended"] is True
            async with b.http.get(s.base_url + "/admin/slots/slot-004", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/admin/login?next=/admin/slots/slot-004"
            status, page = await b.get("/admin/login?next=/admin/slots/slot-004")
            assert "Session ended — sign in again" in page and 'name="next" value="/admin/slots/slot-004"' in page
            # signing in goes back to that page
            async with b.http.post(s.base_url + "/admin/login", allow_redirects=False, data={
                    "username": "serg", "password": b.password, "next": "/admin/slots/slot-004"}) as r:
                assert r.status == 303 and r.headers["Location"] == "/admin/slots/slot-004"
            # used all the time, a session still ends at its cap (12 h after its sign-in)
            for _ in range(12 * 2):
                s.clock.advance(30 * 60)
                status, _ = await b.get("/admin/")
                if status != 200 or b.last.count('id="username"'):
                    break
            assert 'id="username"' in b.last  # at the sign-in page


async def test_sign_out_ends_this_browser_only_and_the_other_control_ends_every_session(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        async with Browser(s) as laptop, Browser(s) as phone:
            await laptop.sign_in()
            password = laptop.password
            await phone.sign_in(password=password)
            await laptop.get("/admin/")
            assert (await laptop.post("/admin/logout", {}))[0] == 303
            assert (await laptop.get("/admin/"))[1].count('id="username"')  # signed out
            status, page = await phone.get("/admin/")
            assert status == 200 and 'id="card-slot-001"' in page  # the phone goes on
            assert (await phone.post("/admin/logout", {"everywhere": "1"}))[0] == 303
            await laptop.sign_in(password=password)
            actions = [(r["action"], r["details"]) for r in await s.ctx.db.fetchall("audit_page", limit=5, action=None)]
            assert ("users.logout", {"sessions": "this browser"}) in actions
            assert ("users.logout", {"everywhere": True, "sessions": "ended"}) in actions


async def test_signing_in_in_another_tab_keeps_the_first_tabs_form_working(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        saved = await s.configure("slot-008", prompt="first")
        async with Browser(s) as b:
            await b.sign_in()
            await b.get("/admin/slots/slot-008")
            first_tab_csrf = b.csrf
            await b.sign_in(password=b.password)  # the second tab: a new session in the same browser
            status, _, _ = await b.post("/admin/slots/slot-008", {
                "version": str(saved["version"]), "name": "x", "provider_id": "gemini", "operation_id": "image_edit",
                "prompt": "from the first tab", "enabled": "on"}, csrf=first_tab_csrf)
            assert status == 303
            async with b.http.post(s.base_url + "/admin/slots/slot-008", data={"csrf": "0" * 64},
                                   allow_redirects=False) as r:
                assert r.status == 403  # a wrong token is still refused


async def test_days_are_the_studios_even_with_a_half_hour_zone(make_cfg, pg_dsn, photo_bytes):
    """Rollups are per UTC hour: in India (+05:30) an hour starting 18:00 UTC (23:30 local) is the
    evening's, the next one (00:30 local) the new day's."""
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        kolkata = studio_time.parse("Asia/Kolkata")
        real = dt.datetime.now(dt.timezone.utc)
        evening = (real - dt.timedelta(days=1)).replace(hour=18, minute=10, second=0, microsecond=0)
        s.clock.advance((evening - s.clock.now()).total_seconds())
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # 23:40 in Kolkata
        s.clock.advance(3600)
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # 00:40 the next day
        s.clock.advance(3600)
        data = await stats.series(s.ctx, slot_id=None, period="7d", tz=kolkata.sql)
        days = {kolkata.local(p["period_start"]).date(): p["answered_200"] for p in data["metrics"] if p["answered_200"]}
        local_evening = kolkata.local(evening).date()
        assert days == {local_evening: 1, local_evening + dt.timedelta(days=1): 1}
        utc = await stats.series(s.ctx, slot_id=None, period="7d")
        assert [p["answered_200"] for p in utc["metrics"] if p["answered_200"]] == [2]  # one UTC day


async def test_purged_and_expired_results_leave_the_galleries(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await s.configure("slot-002")
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        assert (await s.ingest("slot-002", photo_bytes))[0] == 200
        async with Browser(s) as b:
            await b.sign_in()
            _, page = await b.get("/admin/slots/slot-001")
            assert page.count('alt="Result thumbnail"') == 1
            await purge.request_purge(s.ctx, "full", actor="t", source="t")
            await sweeper.sweep_once(s.ctx)
            _, page = await b.get("/admin/slots/slot-001")
            assert 'alt="Result thumbnail"' not in page and "No results yet." in page
            _, page = await b.get("/admin/")
            assert 'alt="Last result"' not in page
            assert (await s.ingest("slot-002", photo_bytes))[0] == 200
            s.clock.advance(73 * 3600)  # past the retention: expired, not shown (the sweeper may not have run)
            _, page = await b.get("/admin/slots/slot-002")
            assert 'alt="Result thumbnail"' not in page


async def test_every_new_page_speaks_russian(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        assert (await s.ingest("slot-001", photo_bytes, password="yesterday-pass"))[0] == 401
        async with Browser(s, lang="ru-RU,ru;q=0.9") as b:
            await b.sign_in()
            for path, russian in (("/admin/", "Сегодня"), ("/admin/stats", "По слотам"), ("/admin/templates", "Шаблоны"),
                                  ("/admin/providers", "Провайдеры"), ("/admin/settings", "Публичный адрес"),
                                  ("/admin/slots/slot-001", "Изображение шаблона")):
                status, page = await b.get(path if path != "/admin/slots/slot-001" else "/admin/slots/slot-002")
                assert status == 200 and russian in page, path
            _, page = await b.get("/admin/stats")
            assert "неверный или отсутствующий пароль приёма" in page  # what the booth got, in words
