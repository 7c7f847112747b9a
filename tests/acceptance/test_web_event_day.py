"""An event day from the browser alone: a brand-new studio from its first start, run by an admin who
never opens a terminal — real `photoslot serve` and `photoslot emulate` processes, headless Chromium.

The admin signs in, works through the first-run checklist (provider keys, the public address, a
slot for every operation of both providers with its template uploaded in the slot form, a test
shot), booths on other addresses shoot — some with yesterday's password, some while Gemini is down —
and the admin finds each failing booth and why on the cards and on Statistics. Every action is
reloaded to prove a reload changes nothing. The web session is configured short (idle 15 s, the
day compressed): it outlives its idle time many times over while the page is used, and ends
cleanly when the page is left alone — the live refresh stops visibly, and signing in brings back
the page with what was typed. Screenshots of every state go to docs/images under `make screenshots`.
"""
from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import aiohttp
import jwt
import pytest
import yaml

from tests import logscan
from tests.acceptance import browser, procs
from tests.conftest import EMULATOR_KEY, FIXTURES, free_port, write_config
from tests.dbstate import reset_database

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.async_api", reason="browser tests skipped: playwright is not installed (pip install -e '.[test]')")
expect = playwright_api.expect

IDLE_SECONDS = 15
OPERATIONS = [  # slot, provider, operation, prompt, templates uploaded from the slot form
    ("slot-001", "gemini", "image_edit", "turn the photo into a warm sepia print", {}),
    ("slot-002", "gemini", "style_transfer", "paint it in this style", {"style": "template_style.jpg"}),
    ("slot-003", "gemini", "identity_transfer", "put this face on the guest", {"face": "template_face.png"}),
    ("slot-004", "turbotext", "image_edit", "старинная фотография", {}),
    ("slot-005", "turbotext", "style_transfer", "", {"style": "template_style.jpg"}),
    ("slot-006", "turbotext", "identity_transfer", None, {"face": "template_face.png"}),
]
PHOTO = (FIXTURES / "dslr_landscape.jpg").read_bytes()


def studio_host() -> tuple[str, str]:
    """(the address serve listens on, the name booths and Turbotext are given): this PC's own name
    as a studio network knows it, resolved here to an address of this PC — so every request of the
    test stays on this PC, while the public address is no loopback one."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return "127.0.0.1", "127.0.0.1"
    return address, name


async def booth_shot(base: str, source: str, slot: str, password: str, timeout: float = 30) -> int:
    """One shot as DSLR Remote Pro sends it, from a booth PC of its own (another source address)."""
    form = aiohttp.FormData()
    form.add_field("password", password)
    form.add_field("fileToUpload", PHOTO, filename="IMG_0001.JPG", content_type="image/jpeg")
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(f"{base}/ingest/{slot}", data=form, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            await r.read()
            return r.status


def prompt_box(page):
    """The slot's Prompt (a parameter such as negative_prompt has its own field)."""
    return page.get_by_label(re.compile(r"^Prompt"))


def count(dsn: str, sql: str, *args) -> int:
    return procs.db_rows(dsn, sql, *args)[0][0]


def state(dsn: str) -> tuple:
    """What a repeated form would change: slots, templates, jobs, settings, the audit trail."""
    return (procs.db_rows(dsn, "SELECT id, version FROM slots ORDER BY id"),
            count(dsn, "SELECT count(*) FROM template_media"), count(dsn, "SELECT count(*) FROM jobs"),
            procs.db_rows(dsn, "SELECT key, updated_at FROM settings WHERE key NOT LIKE 'session_epoch%%' "
                               "AND key <> 'served_base_url' ORDER BY key"),
            count(dsn, "SELECT count(*) FROM audit_log"))


async def reload_changes_nothing(page, dsn: str) -> None:
    before = state(dsn)
    await page.reload()
    await page.wait_for_load_state("load")
    assert state(dsn) == before


@pytest.fixture
async def new_studio(tmp_path, pg_dsn, chromium_path):
    reset_database(pg_dsn)
    address, name = studio_host()
    emu_port, port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emu_port}"
    config = write_config(
        tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn, emulator_url=emulator_url, port=port,
        server__host=address, ingest__sync_response_seconds=10, providers__gemini__api_key=None,
        providers__turbotext__api_key=None, providers__gemini__down_after_failures=1,
        providers__gemini__max_attempts=1, providers__gemini__down_cooldown_seconds=3,
        providers__turbotext__poll_interval_seconds=0.5, auth__web_session_idle_minutes=IDLE_SECONDS / 60,
        stats__flush_seconds=1)
    emulator = await procs.start(config, pg_dsn, "emulate", "--port", str(emu_port), name="emulate")
    await emulator.wait_for_line("photoslot emulator listening")
    serve = await procs.start(config, pg_dsn, "serve", "--port", str(port), name="serve")
    await serve.wait_for_line("first-start passwords written", timeout=60)
    secrets_file = Path(yaml.safe_load(config.read_text())["data_dir"]) / "secrets" / "first-start-passwords.txt"
    ingest_password = re.search(r"^ingest password .*: (\S+)$", secrets_file.read_text(encoding="utf-8"), re.M).group(1)
    logscan.secret(ingest_password)
    try:
        yield {"base": f"http://{address}:{port}", "public": f"http://{name}:{port}", "port": port, "dsn": pg_dsn,
               "passwords": procs.first_start_passwords(config), "ingest_password": ingest_password,
               "emulator": emulator_url, "shots": browser.screenshot_dir(tmp_path / "screenshots")}
    finally:
        await serve.stop()
        await emulator.stop()


@pytest.fixture(scope="module")
def chromium_path():
    path, why = browser.ensure_chromium()
    if path is None:
        pytest.skip(why)
    return path


async def control(studio, **body) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(studio["emulator"] + "/emulator/control", json=body) as r:
            assert r.status == 200, await r.text()


async def test_an_event_day_run_from_the_browser_alone(new_studio, chromium_path):
    studio = new_studio
    base, dsn = studio["base"], studio["dsn"]
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = await chromium.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True,
                                             locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        requests: list[str] = []
        context.on("request", lambda req: requests.append(req.url))
        page = await context.new_page()
        try:
            await run_the_day(page, context, studio)
        finally:
            await context.close()
            await chromium.close()
    # nothing left this studio: every request of every page went to photoslot itself
    assert [u for u in requests if not u.startswith((base + "/", "data:", "blob:"))] == []
    # no token of any kind in a URL
    assert [u for u in requests if "csrf" in u or "token" in u] == []


async def shoot(page, studio, name: str) -> None:
    await page.screenshot(path=str(studio["shots"] / f"{name}.png"), full_page=True)


async def run_the_day(page, context, studio) -> None:
    base, dsn = studio["base"], studio["dsn"]

    # ---------------------------------------------------------------- first start: sign in, the checklist
    await page.goto(base + "/")
    await page.get_by_label("User").fill("serg")
    await page.get_by_label("Password").fill(studio["passwords"]["serg"])
    await page.get_by_role("button", name="Sign in").click()
    checklist = page.locator("#first-run")
    await expect(checklist).to_be_visible()
    await expect(checklist.locator("li.todo")).to_have_count(5)
    await shoot(page, studio, "first-run")

    # 1. provider keys (Settings), from the checklist's link
    await checklist.get_by_role("link", name="An API key for each provider").click()
    await page.get_by_label("Gemini API key").fill(EMULATOR_KEY)
    await page.get_by_label("Turbotext API key").fill(EMULATOR_KEY)
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await reload_changes_nothing(page, dsn)

    # 2. the public address: booths on other PCs and Turbotext use the PC's name
    field = page.get_by_label("Public address")
    if base.startswith("http://127."):  # serve listens on a loopback address: said so before anything is set
        await expect(page.locator("#studio .warning")).to_contain_text("Works on this PC only")
    await field.fill(studio["public"])
    await page.get_by_role("button", name="Apply").click()
    await expect(page.get_by_role("status")).to_contain_text("Every address handed out follows it")
    await expect(field).to_have_value(studio["public"])
    await shoot(page, studio, "settings-studio")
    await reload_changes_nothing(page, dsn)

    # 3. a slot for every operation of both providers, templates uploaded in the slot form
    for slot_id, provider, operation, prompt, uploads in OPERATIONS:
        await page.goto(f"{base}/admin/slots/{slot_id}")
        await page.get_by_label("Name").fill(f"{provider} {operation}")
        await page.get_by_label("Provider").select_option(provider)
        await page.get_by_label("Operation").select_option(operation)
        shown = page.locator("fieldset.op")
        if prompt is None:
            await expect(prompt_box(page)).to_be_hidden()
        else:
            await prompt_box(page).fill(prompt)
        await expect(page.get_by_label("Name")).to_have_value(f"{provider} {operation}")  # kept across the switch
        for role, file in uploads.items():
            group = shown.get_by_role("group", name=f"Template: {role}")
            await group.get_by_label("Template image").set_input_files(str(FIXTURES / file))
            await group.get_by_label("Label of the new image").fill(f"{role} for {slot_id}")
        if slot_id == "slot-006":
            await shoot(page, studio, "slot-template-upload")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("Saved.")
        for role in uploads:
            await expect(page.get_by_role("img", name=f"Template {role}")).to_be_visible()
        await reload_changes_nothing(page, dsn)
        assert procs.db_rows(dsn, "SELECT provider_id, operation_id, enabled FROM slots WHERE id = %s", slot_id) == [
            (provider, operation, True)]
    await expect(page.locator("#ingest-url")).to_have_text(f"{studio['public']}/ingest/slot-006")
    if "." not in studio["public"].split("//")[1].split(":")[0]:  # a private name: not Turbotext's
        await expect(page.locator("#turbotext-warning")).to_be_visible()

    # the Templates page: one template per upload, which slots use each
    await page.get_by_role("link", name="Templates", exact=True).click()
    await expect(page.locator("#templates tbody tr")).to_have_count(4)
    await expect(page.locator("#templates")).to_contain_text("slot-005")
    await shoot(page, studio, "templates")
    row = page.locator("#templates tbody tr").filter(has_text="slot-006")
    await row.get_by_role("link", name="Delete").click()
    await expect(page.get_by_role("alert")).to_contain_text("slot-006")  # would be disabled: it needs it
    await shoot(page, studio, "template-delete")
    await page.get_by_role("link", name="No, keep it").click()

    # 4. a test shot: progress while it runs, the result full size, its download named by slot and time
    await control(studio, latency_seconds=2)
    await page.goto(f"{base}/admin/slots/slot-001")
    await page.get_by_label("Test photo").set_input_files(str(FIXTURES / "dslr_landscape.jpg"))
    await page.get_by_role("button", name="Run test shot").click()
    await expect(page.get_by_role("status").filter(has_text="Running:")).to_be_visible()
    await shoot(page, studio, "test-shot-running")
    result = page.get_by_role("img", name="Result", exact=True)
    await expect(result).to_be_visible(timeout=20_000)
    await control(studio, latency_seconds=0)
    await shoot(page, studio, "test-shot")
    jobs_before = count(dsn, "SELECT count(*) FROM jobs")
    await reload_changes_nothing(page, dsn)  # F5 on the result: no second (paid) call
    await expect(result).to_be_visible()
    async with context.expect_page() as opened:
        await page.get_by_role("link", name="Open full size").click()
    full = await opened.value
    await full.wait_for_load_state()
    assert re.search(r"/admin/jobs/[0-9a-f-]{36}/result$", full.url)
    await full.close()
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Download").first.click()
    assert re.fullmatch(r"slot-001_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.jpg", (await download.value).suggested_filename)
    assert count(dsn, "SELECT count(*) FROM jobs") == jobs_before

    # ---------------------------------------------------------------- the booths shoot
    password = studio["ingest_password"]
    good = await asyncio.gather(*(booth_shot(base, f"127.0.0.{10 + i}", slot_id, password)
                                  for i, (slot_id, *_rest) in enumerate(OPERATIONS)))
    assert good == [200] * 6
    await page.goto(base + "/admin/")
    if not studio["public"].startswith("http://127."):  # every step done: the checklist is gone
        await expect(page.locator("#first-run")).to_have_count(0)
    else:  # a PC without a name of its own: the address stays this PC's, and the checklist says so
        await expect(page.locator("#first-run li.todo")).to_have_count(1)
    stale = [await booth_shot(base, "127.0.0.3", "slot-003", "yesterdays-password") for _ in range(5)]
    assert stale == [401] * 5
    assert await booth_shot(base, "127.0.0.4", "slot-016", password) == 404  # a mistyped slot address

    # a Gemini outage: the first shots fail, then Gemini is down and its booths are refused at once
    await control(studio, provider="gemini", fail_rate=1.0, fail_status=503)
    outage = [await booth_shot(base, "127.0.0.2", "slot-001", password) for _ in range(3)]
    assert outage == [503, 503, 503]
    await page.goto(base + "/admin/")
    banner = page.locator(".banner[role=alert]")
    await expect(banner).to_contain_text("Google Gemini is down")
    await expect(banner).to_contain_text("get HTTP 503 provider_unavailable")
    await expect(page.locator(".slot-card").filter(has_text="slot-001").get_by_text("provider down")).to_be_visible()
    await shoot(page, studio, "slots-outage")
    await page.get_by_role("link", name="Providers").first.click()
    gemini = page.locator("section.provider").filter(has_text="Google Gemini")
    await expect(gemini).to_contain_text("Down since")
    await expect(gemini).to_contain_text("HTTP 503")
    await shoot(page, studio, "providers-down")
    await control(studio, provider="gemini", fail_rate=0.0)
    await asyncio.sleep(3.2)  # the cool-down: then one shot is the probe, and Gemini is back
    assert await booth_shot(base, "127.0.0.2", "slot-001", password) == 200
    assert await booth_shot(base, "127.0.0.10", "slot-004", password) == 200

    # ---------------------------------------------------------------- the admin finds each failing booth
    await page.goto(base + "/admin/")
    await expect(page.locator(".banner")).to_have_count(0)
    card = page.locator(".slot-card").filter(has_text="slot-003")
    await expect(card).to_contain_text("refused × 5")
    await expect(card).to_contain_text("HTTP 401 — wrong or missing ingest password")
    await shoot(page, studio, "slots-event-day")
    await page.get_by_role("link", name="Statistics").click()
    by_slot = page.get_by_role("table", name="By slot")
    row3 = by_slot.get_by_role("row").filter(has_text="slot-003")
    await expect(row3).to_contain_text("401 — wrong or missing ingest password")
    await expect(row3.get_by_role("cell").nth(4)).to_have_text("5")  # refused
    row1 = by_slot.get_by_role("row").filter(has_text="slot-001")
    await expect(row1).to_contain_text("503")
    await expect(by_slot.get_by_role("row").filter(has_text="unknown slot address")).to_be_visible()
    failures = page.locator("ol.failures")
    await expect(failures).to_contain_text("HTTP 401 invalid_password — wrong or missing ingest password")
    await expect(failures).to_contain_text("5 times since")
    await expect(failures).to_contain_text("from 127.0.0.3")
    await expect(failures).to_contain_text("provider_unavailable")
    await expect(page.locator("#refused-by-reason")).to_contain_text("wrong or missing ingest password")
    await expect(page.locator("#stats-summary")).to_contain_text("1 with a result")  # the test shot, apart
    await shoot(page, studio, "statistics-event-day")

    # in use, the session was renewed again and again: it has long outlived its first idle time
    token = next(c["value"] for c in await context.cookies() if c["name"] == "photoslot_session")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["auth_time"] > IDLE_SECONDS + 10

    # ---------------------------------------------------------------- left alone, the session ends cleanly
    cards = await context.new_page()  # a second tab on the live Slots page
    await cards.goto(base + "/admin/")
    await expect(cards.locator(".refresh-state")).to_have_text("Updated every 5 s.")
    await page.goto(f"{base}/admin/slots/slot-004")
    await prompt_box(page).fill("typed, never sent: the session ends first")
    ended = page.locator("#session-ended")
    await expect(ended).to_be_visible(timeout=(IDLE_SECONDS + 20) * 1000)
    await expect(ended).to_contain_text("Session ended — sign in again")
    await expect(cards.locator("#session-ended")).to_be_visible(timeout=10_000)
    await expect(cards.locator(".refresh-state")).to_have_text("Live updates stopped: the session ended.")
    await shoot(cards, studio, "session-ended")
    await ended.get_by_role("link", name="Sign in").click()
    await expect(page.locator("#session-ended-notice")).to_contain_text("Session ended — sign in again")
    await shoot(page, studio, "sign-in-session-ended")
    await page.get_by_label("User").fill("serg")
    await page.get_by_label("Password").fill(studio["passwords"]["serg"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/admin/slots/slot-004")
    await expect(page.locator("#draft-restored")).to_be_visible()
    await expect(prompt_box(page)).to_have_value("typed, never sent: the session ends first")
    assert procs.db_rows(dsn, "SELECT settings_json->>'prompt' FROM slots WHERE id = 'slot-004'") == [("старинная фотография",)]
    await page.get_by_role("button", name="Save", exact=True).click()  # signed in again: the Save works
    await expect(page.get_by_role("status")).to_contain_text("Saved.")
    await cards.close()

    # ---------------------------------------------------------------- sign out: this browser
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(base + "/admin/login")
