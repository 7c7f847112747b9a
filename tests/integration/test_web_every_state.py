"""Every page of the web admin, in Russian and in English, with data in every state: an empty
studio, then a busy one — every operation of both providers, booth shots answered and refused for
every reason a booth can bring about, jobs in every state and with every failure reason, a provider
down, templates uploaded, renamed and deleted, refused saves, test shots, audit entries of every
action — and the error pages (403, 404, 409, 422, 429).

Two checks on each page: no text the page asked for is missing from the catalogue (i18n.MISSES,
filled at render time, whatever the language), and a Russian page has no English word left outside
code, ids and the test's own data (tests/pagetext.py reads the page as a person does)."""
from __future__ import annotations

import uuid

import pytest
from yarl import URL

from photoslot import audit, auth, job_control, jobs, outcomes, purge, secrets, slots, stats, templates, users
from photoslot import settings as live_settings
from photoslot.providers.base import Problems
from photoslot.web import i18n
from tests.conftest import FIXTURES, emulator_control
from tests.integration.studio import Studio
from tests.integration.webclient import Browser
from tests.pagetext import english_words
from tests.unit.test_web_catalogue import audited_actions

pytestmark = pytest.mark.usefixtures("clean_state")

# the test's own data, typed by "admins": shown as it is in either language
DATA = {"Sepia", "booth", "Starry", "night", "face", "serg", "igor", "root", "anna", "mallory", "gemini", "turbotext",
        "Europe/Moscow", "studio.tar.gz", "Mars/Olympus"}
OPERATIONS = [("slot-001", "gemini", "image_edit", {"prompt": "Sepia booth", "params": {"temperature": 0.4, "seed": 7}}),
              ("slot-002", "gemini", "style_transfer", {"prompt": "в стиле", "templates": {"style": None}}),
              ("slot-003", "gemini", "identity_transfer", {"prompt": "лицо", "templates": {"face": None}}),
              ("slot-004", "turbotext", "image_edit", {"prompt": "ретро", "params": {"strength": 40,
                                                                                    "negative_prompt": "шум"}}),
              ("slot-005", "turbotext", "style_transfer", {"templates": {"style": None}}),
              ("slot-006", "turbotext", "identity_transfer", {"templates": {"face": None},
                                                              "params": {"face_restore": True}})]


class Pages:
    """Reads pages in both languages and keeps what is wrong with each."""

    def __init__(self, en: Browser, ru: Browser) -> None:
        self.en, self.ru = en, ru
        self.problems: list[str] = []
        self.read = 0

    async def check(self, path: str, status: int = 200) -> str:
        i18n.MISSES.clear()
        english = ""
        for lang, browser in (("en", self.en), ("ru", self.ru)):
            got, page = await browser.get(path)
            self.read += 1
            if got != status:
                self.problems.append(f"{lang} {path}: HTTP {got}, expected {status}")
            if lang == "en":
                english = page
            else:
                assert 'lang="ru"' in page, path
                self.problems += [f"ru {path}: English {w}" for w in english_words(page, DATA)]
        self.problems += [f"{path}: not in the catalogue: {m!r}" for m in sorted(i18n.MISSES)]
        i18n.MISSES.clear()
        return english

    async def post(self, path: str, fields: dict, status: int, files: dict | None = None) -> None:
        i18n.MISSES.clear()
        for lang, browser in (("en", self.en), ("ru", self.ru)):
            await browser.get(path.split("/test-shot")[0] if "/test-shot" in path else "/admin/")  # its CSRF token
            got, page, _ = await browser.post(path, fields, files=files)
            self.read += 1
            if got != status:
                self.problems.append(f"{lang} POST {path}: HTTP {got}, expected {status}")
            if lang == "ru":
                self.problems += [f"ru POST {path}: English {w}" for w in english_words(page, DATA)]
        self.problems += [f"POST {path}: not in the catalogue: {m!r}" for m in sorted(i18n.MISSES)]


ADMIN_PAGES = ["/admin/", "/admin/slots/slot-001", "/admin/slots/slot-010", "/admin/jobs", "/admin/stats",
               "/admin/stats?period=today", "/admin/stats?period=7d", "/admin/stats?period=30d",
               "/admin/templates", "/admin/providers", "/admin/settings", "/admin/audit"]


async def test_every_page_in_every_state_speaks_both_languages_from_the_catalogue(make_cfg, pg_dsn, emulator):
    cfg = make_cfg(ingest__sync_response_bounds=[2, 60], ingest__sync_response_seconds=4,
                   providers__turbotext__poll_interval_seconds=0.2,
                   providers__gemini__down_after_failures=1, providers__gemini__max_attempts=1,
                   providers__gemini__down_cooldown_seconds=600, ingest__password_max_failures=2,
                   auth__login_max_failures=2, auth__login_backoff_seconds=60)
    async with Studio(cfg, pg_dsn, workers=2) as s, Browser(s) as en, Browser(s, lang="ru") as ru:
        pages = Pages(en, ru)

        # ---------------------------------------------------------------- signed out, and an empty studio
        for path in ("/admin/login", "/admin/nothing-here"):
            await pages.check(path, 200 if path.endswith("login") else 404)
        assert await en.sign_in() == 200 and await ru.sign_in(password=en.password) == 200
        for path in ADMIN_PAGES:
            await pages.check(path)

        # ---------------------------------------------------------------- a busy studio
        await s.set_password()
        style = await templates.register(s.ctx, data=(FIXTURES / "template_style.jpg").read_bytes(),
                                         label="Starry night", actor="admin:serg", source="web")
        face = await templates.register(s.ctx, data=(FIXTURES / "template_face.png").read_bytes(), label="face",
                                        actor="admin:igor", source="http")
        spare = await templates.register(s.ctx, data=(FIXTURES / "template_style.jpg").read_bytes(), label=None,
                                         actor="os:root", source="cli")
        bound = {"style": str(style["id"]), "face": str(face["id"])}
        for slot_id, provider, operation, settings in OPERATIONS:
            settings = {**settings, **({"templates": {r: bound[r] for r in settings["templates"]}}
                                       if "templates" in settings else {})}
            await slots.configure(s.ctx.db, s.clock, slot_id, actor="admin:serg", source="web", name=f"{provider} booth",
                                  provider_id=provider, operation_id=operation, settings_json=settings, enabled=True)
        await slots.configure(s.ctx.db, s.clock, "slot-001", actor="admin:serg", source="web", name="Sepia booth",
                              settings_json={"prompt": "Sepia booth", "params": {"temperature": 0.7}})
        await slots.configure(s.ctx.db, s.clock, "slot-007", actor="admin:igor", source="web", provider_id="gemini",
                              operation_id="image_edit", settings_json={"prompt": "x"}, enabled=False)
        await templates.rename(s.ctx, spare["id"], "Starry night", actor="admin:serg", source="web")
        await templates.register_for_slot(s.ctx, slot_id="slot-003", role="style",
                                          data=(FIXTURES / "template_style.jpg").read_bytes(), label=None,
                                          replace=False, actor="admin:serg", source="web")

        photo = (FIXTURES / "dslr_landscape.jpg").read_bytes()
        assert (await s.ingest("slot-001", photo))[0] == 200
        assert (await s.ingest("slot-004", photo))[0] == 200
        refusals = [("slot-001", photo, {"password": "yesterdays-password"}, 401),
                    ("slot-007", photo, {}, 404), ("slot-016", photo, {}, 404),
                    ("slot-001", b"%PDF-1.4 not a photo" * 20, {}, 415),
                    ("slot-001", photo[:4000], {}, 422), ("slot-001", None, {}, 400)]
        for slot_id, data, kw, expected in refusals:
            assert (await s.ingest(slot_id, data, **kw))[0] == expected, slot_id
        await emulator_control(emulator, provider="gemini", fail_rate=1.0, fail_status=503)
        assert (await s.ingest("slot-001", photo))[0] == 503  # the failed call: Gemini is down after it (its job ended 503)
        assert (await s.ingest("slot-002", photo))[0] == 503  # refused at once meanwhile
        await emulator_control(emulator, provider="turbotext", latency_seconds=6)
        assert (await s.ingest("slot-004", photo, timeout=20))[0] == 504  # no result within the 4 s window
        await emulator_control(emulator, provider="turbotext", latency_seconds=0)
        for _ in range(3):  # past the free wrong passwords of this address: a 401 that comes late
            status = (await s.ingest("slot-004", photo, password="guess-guess-guess"))[0]
        assert status == 401

        # jobs in every state, and a failed one for every reason (as the worker and the ingest write them)
        await s.pool.stop(grace=0)
        s.pool = None
        problems = Problems("gemini")
        for _ in range(3):
            problems.add("HTTP 503 UNAVAILABLE The model is overloaded. Please try again later.")
        # each with a detail as the code that finalizes such a job writes it (worker, ingest, providers)
        details = {"provider_error": problems.summary() + " (max_attempts 3)",
                   "timeout": "no result within the response window",
                   "quota_exhausted": "gemini quota of 10 requests per minute is spent; retry in 42 s",
                   "provider_unavailable": "gemini is down after 3 failed calls in a row (last: HTTP 503 "
                                           "UNAVAILABLE); next try in 30 s",
                   "provider_refused": "Gemini blocked the request: SAFETY",
                   "invalid_result": "Turbotext queue 4711 answered without an image",
                   "client_gone": "the client disconnected before the answer",
                   "internal_error": "the server is shutting down; send the photo again",
                   "cancelled": "", "admin_cancelled": "cancelled by admin:serg"}
        job_ids = {}
        for reason in outcomes.FAILURE_ANSWERS:
            job_id = await s.queue_job("slot-001")
            await jobs.finalize_failure(s.ctx.db, s.ctx.media, job_id=job_id, now=s.clock.now(), reason=reason,
                                        detail=details[reason])
            job_ids[reason] = job_id
        pending = await s.queue_job("slot-004")
        processing = await s.queue_job("slot-002")
        claimed = await jobs.claim(s.ctx.db, provider_id="gemini", worker_id="test:1", now=s.clock.now(),
                                   lease_seconds=60, max_parallel=4)
        assert claimed["id"] == processing and claimed["status"] == "processing"
        cancelled = await s.queue_job("slot-004")
        await job_control.cancel(s.ctx, str(cancelled), actor="admin:serg", source="web")

        # every audited action: through the real functions, sign-ins through the form
        await stats.reset_stats(s.ctx, "slot-006", actor="admin:igor", source="web")
        await slots.reset(s.ctx.db, s.clock, "slot-008", actor="os:anna", source="cli")
        await templates.remove(s.ctx, face["id"], force=True, actor="admin:serg", source="web")
        await purge.request_purge(s.ctx, "media_objects", actor="admin:serg", source="web")
        await purge.request_purge(s.ctx, "full", actor="admin:igor", source="http")
        await s.set_password("a-new-ingest-password")
        await live_settings.reveal_ingest_password(s.ctx.db, cfg, s.clock, actor="admin:igor", source="web")
        await live_settings.generate_ingest_password(s.ctx.db, cfg, s.clock, actor="admin:serg", source="web")
        await live_settings.update(s.ctx.db, cfg, s.clock, actor="admin:serg", source="web", sync_response_seconds=3,
                                   result_retention_hours=48, time_zone="Europe/Moscow",
                                   provider_keys={"turbotext": "a-turbotext-key"})
        await users.end_sessions(s.ctx, "igor", actor="os:root", source="cli")
        await users.reset_password(s.ctx, "igor", actor="os:root", source="cli")
        await secrets.rotate(s.ctx, actor="os:root", source="cli")
        # written where no test can bring them about cheaply: at a start with plain stored keys, and by
        # `photoslot restore` / `restore --undo` / `--discard-previous` (backup.py) — each with the
        # details its function writes
        await audit.record(s.ctx.db, s.clock, actor="system", source="start", action="secrets.encrypt_stored",
                           target="provider_keys", details={"encrypted": 1})
        await audit.record(s.ctx.db, s.clock, actor="os:root", source="cli", action="studio.restore",
                           target="studio.tar.gz", details={"created_at": "2026-11-28T20:00:00+00:00",
                                                            "photoslot_version": "1.0.0", "schema_version": 6,
                                                            "migrated": False, "results_restored": 12,
                                                            "replaced_existing": True, "previous_kept": True})
        await audit.record(s.ctx.db, s.clock, actor="os:root", source="cli", action="studio.restore_undo",
                           target="studio.tar.gz", details={"kept_now": "photoslot_restore_kept_1"})
        await audit.record(s.ctx.db, s.clock, actor="os:root", source="cli", action="studio.restore_discard_previous",
                           target="studio.tar.gz", details={"database": "photoslot_restore_kept_1",
                                                            "paths": ["media.before-restore"]})
        async with Browser(s) as intruder:
            assert await intruder.sign_in("serg", password="wrong-wrong") == 401
            assert await intruder.sign_in("mallory", password="wrong-wrong") == 401
        other = Browser(s)
        async with other:
            await other.sign_in("serg", password=en.password)
            await other.get("/admin/")
            await other.post("/admin/logout", {})
        actions = {r["action"] for r in await audit.entries(s.ctx.db, limit=500)}
        assert actions == audited_actions(), audited_actions() - actions  # every action is on the Audit page

        # ---------------------------------------------------------------- every page of the busy studio
        for path in ADMIN_PAGES + [f"/admin/slots/slot-00{i}" for i in range(1, 8)] + [
                "/admin/jobs?status=failed", "/admin/jobs?kind=test", "/admin/jobs?slot_id=slot-099",
                f"/admin/jobs/{pending}", f"/admin/jobs/{processing}", f"/admin/jobs/{cancelled}",
                f"/admin/jobs/{pending}/cancel", f"/admin/jobs/{cancelled}/cancel",
                f"/admin/templates/{style['id']}/delete", "/admin/audit?page=2", "/admin/audit?user=admin:serg",
                "/admin/stats?period=range&from=2026-11-01&to=2026-11-29", "/admin/stats?slot_id=slot-001"]:
            await pages.check(path)
        for job_id in job_ids.values():
            await pages.check(f"/admin/jobs/{job_id}")
        await pages.check("/admin/stats?period=range&from=2026-12-01&to=2026-11-01")  # refused: said at the field
        await pages.check("/admin/stats?period=range&from=2026-01-01&to=2026-11-29")
        # error pages
        await pages.check("/admin/no-such-page", 404)
        await pages.check(f"/admin/jobs/{uuid.uuid4()}", 404)
        await pages.check("/admin/jobs/not-a-job", 404)
        await pages.check(f"/admin/templates/{uuid.uuid4()}/delete", 404)
        await pages.post(f"/admin/jobs/{cancelled}/cancel", {"confirm": "yes"}, 409)
        # refused saves: every message at its field
        await pages.post("/admin/slots/slot-001", {"version": "0", "name": "x", "provider_id": "gemini",
                                                   "operation_id": "image_edit", "prompt": "p"}, 409)
        version = str((await slots.get(s.ctx.db, "slot-002"))["version"])
        await pages.post("/admin/slots/slot-002", {"version": version, "name": "x" * 101, "provider_id": "gemini",
                                                   "operation_id": "style_transfer", "prompt": "p" * 4001,
                                                   "param.temperature": "9", "param.seed": "1.5",
                                                   "template.style": str(uuid.uuid4())}, 422)
        await pages.post("/admin/slots/slot-003", {"version": version, "name": "x", "provider_id": "gemini",
                                                   "operation_id": "identity_transfer", "prompt": ""}, 422)
        await pages.post("/admin/settings", {"sync_response_seconds": "99", "result_retention_hours": "0",
                                             "ingest_password": "short", "key.gemini": "has spaces in it"}, 422)
        await pages.post("/admin/settings/studio", {"public_base_url": "ftp://x", "time_zone": "Mars/Olympus"}, 422)
        await pages.post("/admin/settings/purge", {"scope": "full"}, 422)
        await pages.post("/admin/templates", {"label": "x" * 201}, 422, files={"file": ("a.jpg", b"not an image")})
        # test shots: refused (Gemini down), and one with a result
        for slot_id in ("slot-001", "slot-004"):
            for browser in (en, ru):
                await browser.get(f"/admin/slots/{slot_id}")
                status, _, location = await browser.post(f"/admin/slots/{slot_id}/test-shot", {},
                                                         files={"photo": ("IMG.JPG", photo)})
                assert status == 303, location
                await pages.check(location.split("#")[0]) if browser is ru else None
        # a read-only session: 403 pages
        epoch = await users.session_epoch(s.ctx.db, "igor")
        token = auth.issue_token(cfg, "igor", now=s.clock.now(), epoch=epoch,
                                 permissions=("slots:read", "stats:read"))["access_token"]
        for browser in (en, ru):
            browser.http.cookie_jar.clear()
            browser.http.cookie_jar.update_cookies({"photoslot_session": token}, response_url=URL(s.base_url))
        await pages.check("/admin/settings", 403)
        await pages.check(f"/admin/jobs/{pending}/cancel", 403)
        # the sign-in refused, then throttled
        for browser in (en, ru):
            browser.http.cookie_jar.clear()
        await pages.post("/admin/login", {"username": "igor", "password": "not-it-at-all"}, 401)
        await pages.post("/admin/login", {"username": "igor", "password": "not-it-at-all"}, 429)

        assert pages.problems == [], "\n".join(pages.problems)
        assert pages.read > 150


async def test_a_text_missing_from_the_catalogue_fails_both_checks(make_cfg, pg_dsn, monkeypatch):
    """The two checks above can fail: one label taken out of the Russian catalogue is found by both —
    remembered as missing when the page asks for it, and read as English on the Russian page."""
    async with Studio(make_cfg(), pg_dsn, workers=0) as s, Browser(s, lang="ru") as ru:
        await s.configure("slot-001")
        await ru.sign_in()
        i18n.MISSES.clear()
        _, page = await ru.get("/admin/slots/slot-001")
        assert i18n.MISSES == set() and english_words(page, DATA) == []
        monkeypatch.delitem(i18n.catalogue("ru"), "Temperature")
        _, page = await ru.get("/admin/slots/slot-001")
        assert i18n.MISSES == {"Temperature"}
        assert [w.split(" in ")[0] for w in english_words(page, DATA)] == ["'Temperature'"]
        i18n.MISSES.clear()
