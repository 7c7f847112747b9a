"""The web admin in a real browser: headless Chromium (Playwright) against real `photoslot serve`
and `photoslot emulate` processes on loopback.

One browser for the whole session and one studio (serve + emulate) for this module keep the
browser tests fast; each test has its own browser context (cookies), which counts every request
the pages make and keeps every page's headers. The tests walk an admin's day and prove the
security rules; they save a screenshot of every page (docs/images/ under `make screenshots`).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass, field

import aiohttp
import pytest

from photoslot import auth
from photoslot.config import load_config
from tests import logscan
from tests.acceptance import browser, procs
from tests.conftest import FIXTURES

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.async_api", reason="browser tests skipped: playwright is not installed (pip install -e '.[test]')")
expect = playwright_api.expect


@pytest.fixture(scope="session")
async def chromium():
    async with browser.launched_chromium(playwright_api, skip=pytest.skip) as launched:
        yield launched


Studio = browser.WebStudio


@pytest.fixture(scope="module")
async def studio(tmp_path_factory, pg_dsn, chromium):
    async with browser.running_studio(tmp_path_factory.mktemp("web-admin"), pg_dsn, ingest__sync_response_seconds=15) as running:
        yield running


@dataclass
class Watch:
    """What a browser context did: every URL it requested, and each page's response headers."""
    requests: list = field(default_factory=list)
    documents: dict = field(default_factory=dict)

    def outside(self, base: str) -> list[str]:
        return [u for u in self.requests if not u.startswith((base + "/", "data:", "blob:"))]


@pytest.fixture
async def page(chromium, studio):
    context = await chromium.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True,
                                         locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
    watch = Watch()
    context.on("request", lambda req: watch.requests.append(req.url))
    # the pages themselves (a redirect has no page, and keeps the API's allow-nothing policy)
    context.on("response", lambda resp: watch.documents.__setitem__(resp.url, resp.headers)
               if resp.request.resource_type == "document" and not 300 <= resp.status < 400 else None)
    tab = await context.new_page()
    tab.watch = watch
    yield tab
    await context.close()
    # whatever the test did, no page asked anything of another origin
    assert watch.outside(studio.base) == []


async def sign_in(page, studio, user: str = "serg") -> None:
    await page.goto(studio.base + "/")
    await expect(page).to_have_url(studio.base + "/admin/login")
    await page.get_by_label("User").fill(user)
    await page.get_by_label("Password").fill(studio.passwords[user])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Slots")).to_be_visible()


async def shoot(page, studio, name: str) -> None:
    await page.screenshot(path=str(studio.shots / f"{name}.png"), full_page=True)


async def ingest(studio, slot: str, password: str) -> int:
    status, _headers, _body = await procs.post_photo(studio.port, (FIXTURES / "dslr_landscape.jpg").read_bytes(),
                                                     slot=slot, password=password)
    return status


def slot_row(studio, slot_id: str):
    return procs.db_rows(studio.dsn, "SELECT name, provider_id, operation_id, settings_json, enabled, version "
                                     "FROM slots WHERE id = %s", slot_id)[0]


async def test_an_admins_day_from_sign_in_to_sign_out(page, studio):
    await sign_in(page, studio)
    await expect(page.locator(".slot-card")).to_have_count(15)

    # a Gemini slot: the defaults of an empty slot are Gemini / edit by prompt
    await page.goto(studio.base + "/admin/slots/slot-001")
    await page.get_by_label("Name").fill("Sepia booth")
    await page.get_by_label("Prompt").fill("turn the photo sepia")
    await page.get_by_label("Enabled").check()
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    assert slot_row(studio, "slot-001")[:3] == ("Sepia booth", "gemini", "image_edit")

    # a Turbotext slot: the form follows the provider and the operation, keeping what was typed
    await page.goto(studio.base + "/admin/slots/slot-002")
    await page.get_by_label("Name").fill("Van Gogh")
    await page.get_by_label("Provider").select_option("turbotext")
    await page.get_by_label("Operation").select_option("identity_transfer")
    shown = page.locator("fieldset.op:not([hidden])")
    await expect(page.get_by_label("Prompt")).to_be_hidden()          # a face swap takes no prompt
    await expect(shown.get_by_role("group", name="Face template (required)")).to_be_visible()
    await page.get_by_label("Operation").select_option("style_transfer")
    await expect(page.get_by_text("Prompt (optional)")).to_be_visible()
    await expect(page.get_by_label("Name")).to_have_value("Van Gogh")

    # its style template uploaded in the same form: one Save uploads, binds and saves
    await shown.get_by_label("Template image").set_input_files(str(FIXTURES / "template_style.jpg"))
    await shown.get_by_label("Label of the new image").fill("Starry night")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.get_by_role("img", name="Style template")).to_be_visible()
    assert slot_row(studio, "slot-002")[1:3] + (slot_row(studio, "slot-002")[4],) == ("turbotext", "style_transfer", True)

    # the ingest URL and what to type into DSLR Remote Pro
    await expect(page.locator("#ingest-url")).to_have_text(f"{studio.base}/ingest/slot-002")
    await expect(page.get_by_role("button", name="Copy")).to_be_visible()

    # a test shot with a real photo, through the real queue and the (emulated) provider
    await page.get_by_label("Test photo").set_input_files(str(FIXTURES / "dslr_landscape.jpg"))
    await page.get_by_role("button", name="Run test shot").click()
    result = page.get_by_role("img", name="Result", exact=True)
    await expect(result).to_be_visible(timeout=30_000)
    assert await result.evaluate("img => img.complete && img.naturalWidth > 0")
    await expect(page.get_by_role("img", name="Original")).to_be_visible()
    await expect(page.get_by_text("Done in")).to_be_visible()

    # the shot is in the slot's recent results …
    await page.goto(studio.base + "/admin/slots/slot-002")
    thumbs = page.get_by_role("img", name="Result thumbnail")
    await expect(thumbs).to_have_count(1)
    assert await thumbs.first.evaluate("img => img.complete && img.naturalWidth > 0")
    await shoot(page, studio, "slot")
    await page.get_by_role("link", name="RU").click()
    await expect(page.get_by_label("Тестовое фото")).to_be_visible()
    await expect(page.get_by_role("button", name="Сделать тестовый снимок")).to_be_visible()
    await shoot(page, studio, "slot-ru")
    await page.get_by_role("link", name="EN").click()
    await expect(page.get_by_label("Test photo")).to_be_visible()

    # … in the statistics, as a test shot (no booth's) …
    await page.get_by_role("link", name="Statistics").click()
    # a test shot is no guest's shot: counted apart, in none of the booth figures
    await expect(page.locator("#stats-summary dd").first).to_have_text("0")
    await expect(page.locator("#stats-test-shots")).to_contain_text("1 (1 with a result")
    await expect(page.locator(".chart svg")).to_have_count(4)

    # … and in the jobs, with its timeline
    await page.get_by_role("link", name="Jobs").click()
    await shoot(page, studio, "jobs")
    await page.locator("table a").first.click()
    await expect(page.locator("#job-status")).to_have_text("succeeded")
    await shoot(page, studio, "job")

    # rotate the ingest password: shown once; a booth's old one is refused from then on
    assert await ingest(studio, "slot-001", studio.ingest_password) == 200
    await page.get_by_role("link", name="Settings").click()
    await shoot(page, studio, "settings")
    await page.get_by_role("button", name="Generate a new ingest password").click()
    new_password = (await page.locator("#new-ingest-password").text_content()).strip()
    logscan.secret(new_password)
    assert len(new_password) >= 12 and new_password != studio.ingest_password
    assert await ingest(studio, "slot-001", studio.ingest_password) == 401
    assert await ingest(studio, "slot-001", new_password) == 200
    await page.goto(studio.base + "/admin/settings")  # shown once: not on the page any more
    await expect(page.locator("#new-ingest-password")).to_have_count(0)
    studio.ingest_password = new_password

    await page.get_by_role("link", name="Audit").click()
    await expect(page.get_by_title("settings.update").first).to_have_text("Settings changed")  # the id as a tooltip
    await shoot(page, studio, "audit")
    await page.get_by_role("link", name="Slots").click()
    await expect(page.get_by_role("img", name="Last result")).to_have_count(2)

    # sign out: the session's token is refused everywhere afterwards
    token = next(c["value"] for c in await page.context.cookies() if c["name"] == "photoslot_session")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(studio.base + "/admin/login")
    await shoot(page, studio, "sign-in")
    async with aiohttp.ClientSession() as s:
        async with s.get(studio.base + "/api/slots", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 401
    await page.goto(studio.base + "/admin/settings")
    await expect(page).to_have_url(studio.base + "/admin/login?next=/admin/settings")

    # every page came with the page policy: scripts from this origin only, no framing, no sniffing
    pages = {url: h for url, h in page.watch.documents.items() if "/admin" in url}
    assert len(pages) >= 10
    for url, headers in pages.items():
        csp = headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, url
        assert headers.get("x-content-type-options") == "nosniff", url
        assert headers.get("referrer-policy") == "same-origin", url


async def test_a_write_without_the_csrf_token_is_refused_and_changes_nothing(page, studio):
    await sign_in(page, studio)
    before = slot_row(studio, "slot-003")
    settings_before = procs.db_rows(studio.dsn, "SELECT key, value FROM settings ORDER BY key")
    form = {"name": "hijacked", "provider_id": "gemini", "operation_id": "image_edit", "prompt": "x",
            "enabled": "on", "version": str(before[5])}
    refused = await page.context.request.post(studio.base + "/admin/slots/slot-003", form=form)
    assert refused.status == 403
    wrong = await page.context.request.post(studio.base + "/admin/slots/slot-003", form={**form, "csrf": "0" * 64})
    assert wrong.status == 403
    for path, body in (("/admin/settings", {"sync_response_seconds": "50"}),
                       ("/admin/settings/purge", {"scope": "full", "confirm": "on"})):
        assert (await page.context.request.post(studio.base + path, form=body)).status == 403
    assert slot_row(studio, "slot-003") == before
    assert procs.db_rows(studio.dsn, "SELECT key, value FROM settings ORDER BY key") == settings_before
    # the session is still there: sign-out without the token is refused too
    assert (await page.context.request.post(studio.base + "/admin/logout", form={})).status == 403
    await page.goto(studio.base + "/admin/")
    await expect(page.get_by_role("heading", name="Slots")).to_be_visible()


async def test_script_in_a_prompt_or_name_is_shown_as_text(page, studio):
    await sign_in(page, studio)
    await page.goto(studio.base + "/admin/slots/slot-004")
    name = '<b id="bold">Booth</b>'
    prompt = '<script>document.title="owned"</script><img src="http://198.51.100.7/x.png"> make it noir'
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Prompt").fill(prompt)
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.get_by_label("Prompt")).to_have_value(prompt)
    await expect(page.get_by_label("Name")).to_have_value(name)
    assert "owned" not in await page.title()
    await page.goto(studio.base + "/admin/")
    await expect(page.get_by_text(name)).to_be_visible()
    await expect(page.locator("#bold")).to_have_count(0)
    assert "owned" not in await page.title()


async def test_a_read_only_session_sees_no_save_and_its_writes_are_refused(page, studio):
    cfg = load_config(studio.config, environ={})
    epoch = procs.db_rows(studio.dsn, "SELECT coalesce((SELECT (value->>'epoch')::bigint FROM settings "
                                      "WHERE key = 'session_epoch.igor'), 0)")[0][0]
    token = auth.issue_token(cfg, "igor", now=dt.datetime.now(dt.timezone.utc), epoch=int(epoch),
                             permissions=("slots:read", "settings:read", "stats:read"))["access_token"]
    await page.context.add_cookies([{"name": "photoslot_session", "value": token, "url": studio.base}])
    await page.goto(studio.base + "/admin/slots/slot-001")
    await expect(page.get_by_text("Read-only: this session may not change slots.")).to_be_visible()
    await expect(page.get_by_role("button", name="Save")).to_have_count(0)
    await expect(page.get_by_role("button", name="Run test shot")).to_have_count(0)
    csrf = await page.locator("input[name=csrf]").first.input_value()
    before = slot_row(studio, "slot-001")
    answer = await page.context.request.post(studio.base + "/admin/slots/slot-001", form={
        "csrf": csrf, "name": "read-only write", "provider_id": "gemini", "operation_id": "image_edit",
        "prompt": "x", "version": str(before[5])})
    assert answer.status == 403
    assert slot_row(studio, "slot-001") == before
    await page.goto(studio.base + "/admin/settings")
    await expect(page.get_by_role("button", name="Save")).to_have_count(0)


async def test_an_admin_cancels_a_stuck_job_and_the_booth_gets_its_answer_at_once(page, studio):
    r = procs.cli(studio.config, studio.dsn, "slot", "set", "slot-006", "--provider", "gemini", "--operation",
                  "image_edit", "--prompt", "hold still")
    assert r.returncode == 0, r.stderr
    async with aiohttp.ClientSession() as s:
        async with s.post(studio.emulator_url + "/emulator/control", json={"hang": True}) as resp:
            assert resp.status == 200
    booth = asyncio.create_task(ingest(studio, "slot-006", studio.ingest_password))
    try:
        rows = await procs.wait_for_row(studio.dsn, "SELECT id FROM jobs WHERE slot_id = 'slot-006' "
                                                    "AND status = 'processing'", timeout=10)
        job_id = str(rows[0][0])
        await sign_in(page, studio)
        await page.get_by_role("link", name="Jobs").click()
        await page.get_by_label("Status").select_option("processing")
        await page.get_by_role("button", name="Filter").click()
        await page.get_by_role("link").filter(has_text=":").first.click()
        await expect(page).to_have_url(f"{studio.base}/admin/jobs/{job_id}")
        await page.get_by_role("link", name="Cancel job").click()  # it asks first, on a page of its own
        await page.get_by_role("button", name="Yes, cancel the job").click()
        await expect(page.get_by_role("status")).to_have_text("Cancelled.")
        await expect(page.locator("#job-status")).to_have_text("cancelled")
        await expect(page.get_by_role("link", name="Cancel job")).to_have_count(0)
        status = await asyncio.wait_for(booth, 5)  # not at the end of its 15 s window
        assert status != 200
        assert procs.db_rows(studio.dsn, "SELECT status, failure_reason FROM jobs WHERE id = %s",
                             job_id) == [("cancelled", "admin_cancelled")]
    finally:
        async with aiohttp.ClientSession() as s:
            await s.post(studio.emulator_url + "/emulator/control", json={"hang": False})
        if not booth.done():
            booth.cancel()


async def ingest_from(studio, address: str, password: str) -> int:
    """A booth on another PC (another loopback address)."""
    form = aiohttp.FormData()
    form.add_field("password", password)
    form.add_field("fileToUpload", (FIXTURES / "dslr_landscape.jpg").read_bytes(), filename="IMG.JPG",
                   content_type="image/jpeg")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as http:
        async with http.post(f"{studio.base}/ingest/slot-001", data=form) as r:
            await r.read()
            return r.status


def audit_count(studio, action: str) -> int:
    return procs.db_rows(studio.dsn, "SELECT count(*) FROM audit_log WHERE action = %s", action)[0][0]


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="another loopback address as the new booth")
async def test_the_ingest_password_is_handed_to_a_new_booth_without_changing_the_others(page, studio):
    """Reveal (POST, audited, once), a typed password confirmed, generate (once, even on reload) —
    and a new booth shooting with what the page showed, while the first booth keeps its password."""
    if procs.db_rows(studio.dsn, "SELECT count(*) FROM slots WHERE id = 'slot-001' AND enabled")[0][0] == 0:
        r = procs.cli(studio.config, studio.dsn, "slot", "set", "slot-001", "--provider", "gemini", "--operation",
                      "image_edit", "--prompt", "sepia")
        assert r.returncode == 0, r.stderr
    await sign_in(page, studio)
    await page.get_by_role("link", name="Settings").click()
    revealed_before = audit_count(studio, "settings.ingest_password_revealed")
    await page.get_by_role("button", name="Show the current ingest password").click()
    await expect(page).to_have_url(studio.base + "/admin/settings")  # POST, then a redirect: nothing in the URL
    shown = (await page.locator("#new-ingest-password").text_content()).strip()
    assert shown == studio.ingest_password
    await shoot(page, studio, "settings-password-revealed")
    assert audit_count(studio, "settings.ingest_password_revealed") == revealed_before + 1
    await page.reload()  # a reload shows it no more and reveals nothing again
    await expect(page.locator("#new-ingest-password")).to_have_count(0)
    assert audit_count(studio, "settings.ingest_password_revealed") == revealed_before + 1
    assert await ingest_from(studio, "127.0.0.7", shown) == 200  # the new booth, with what the page showed
    assert await ingest(studio, "slot-001", studio.ingest_password) == 200  # the first booth, unchanged

    # a typed password must be typed twice alike
    await page.get_by_label("Ingest password", exact=True).fill("typo-password-one")
    await page.get_by_label("Confirm ingest password").fill("typo-password-two")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#err-ingest_password_confirm")).to_be_visible()
    assert await ingest(studio, "slot-001", studio.ingest_password) == 200  # nothing changed
    typed = "studio-typed-password-9"
    logscan.secret(typed)
    await page.get_by_label("Ingest password", exact=True).fill(typed)
    await page.get_by_label("Confirm ingest password").fill(typed)
    await page.get_by_role("button", name="Save").click()
    await expect(page).to_have_url(studio.base + "/admin/settings?done=saved")
    assert await ingest(studio, "slot-001", typed) == 200
    studio.ingest_password = typed

    # generate: once, whatever the reloads; no look-alike characters, in groups
    updates = audit_count(studio, "settings.update")
    await page.get_by_role("button", name="Generate a new ingest password").click()
    made = (await page.locator("#new-ingest-password").text_content()).strip()
    logscan.secret(made)
    assert len(made) == 19 and made.count("-") == 3 and not set(made) & set("IlO01o")
    await shoot(page, studio, "settings-password-generated")
    await page.reload()
    await expect(page.locator("#new-ingest-password")).to_have_count(0)
    assert audit_count(studio, "settings.update") == updates + 1
    assert await ingest_from(studio, "127.0.0.7", made) == 200
    assert await ingest(studio, "slot-001", typed) == 401
    studio.ingest_password = made
    assert not [u for u in page.watch.requests if made in u or typed in u or shown in u]  # never in a URL
