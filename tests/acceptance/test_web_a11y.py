"""Every admin, every screen: the web admin in a real browser for a Russian-speaking admin with a
phone and no mouse — headless Chromium (Playwright) against real `photoslot serve` and `photoslot
emulate` processes.

* axe-core (the copy `axe-playwright-python` ships: nothing is downloaded) runs on every page,
  signed out and in, in English and Russian, at 1366 px and at 390 px, in an empty studio and a
  busy one (booth shots answered and refused, a provider down, templates, test shots, refused
  saves): no violation of any kind.
* At 390 px no page scrolls sideways (document.documentElement.scrollWidth ≤ 390).
* The keyboard: a skip link first; a refused save puts the focus on the first field in error, tied
  to its message; the focus ring shows on dark buttons; the Slots page's live refresh never moves
  the focus while a booth shoots (a real booth POST during the test).

One browser, one context per language (the language cookie), axe injected once per page load and
run at both widths: the whole matrix takes about a minute. Phone screenshots go to docs/images
under `make screenshots`.
"""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.acceptance import browser, procs
from tests.conftest import FIXTURES, INGEST_PASSWORD

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.async_api", reason="browser tests skipped: playwright is not installed (pip install -e '.[test]')")
axe_module = pytest.importorskip("axe_playwright_python.async_playwright",
                                 reason="a11y tests skipped: axe-playwright-python is not installed (pip install -e '.[test]')")
expect = playwright_api.expect
DESKTOP, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}
AXE_SCRIPT = axe_module.Axe().axe_script  # axe.min.js as the package ships it
PHOTO = (FIXTURES / "dslr_landscape.jpg").read_bytes()
FIGURES: dict[str, dict] = {}  # page → {state/lang: scrollWidth at 390 px}, printed for the docs


Studio = browser.WebStudio


@pytest.fixture(scope="module")
async def chromium():
    async with browser.launched_chromium(playwright_api, skip=pytest.skip) as launched:
        yield launched


@pytest.fixture(scope="module")
async def studio(tmp_path_factory, pg_dsn, chromium):
    async with browser.running_studio(tmp_path_factory.mktemp("web-a11y"), pg_dsn, ingest__sync_response_seconds=15,
                                      providers__gemini__down_after_failures=1, providers__gemini__max_attempts=1,
                                      providers__gemini__down_cooldown_seconds=600) as running:
        yield running


async def control(studio, **body) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(studio.emulator_url + "/emulator/control", json=body) as r:
            assert r.status == 200, await r.text()


async def booth(studio, slot: str, password: str = INGEST_PASSWORD) -> int:
    status, _headers, _body = await procs.post_photo(studio.port, PHOTO, slot=slot, password=password)
    return status


async def new_tab(chromium, studio, lang: str):
    context = await chromium.new_context(viewport=DESKTOP, locale="ru-RU" if lang == "ru" else "en-US",
                                         extra_http_headers={"Accept-Language": lang})
    await context.add_cookies([{"name": "photoslot_lang", "value": lang, "url": studio.base}])
    requests: list[str] = []
    context.on("request", lambda req: requests.append(req.url))
    tab = await context.new_page()
    tab.requests = requests
    return context, tab


async def sign_in(tab, studio, user: str = "serg") -> None:
    await tab.goto(studio.base + "/admin/login")
    await tab.locator("#username").fill(user)
    await tab.locator("#password").fill(studio.passwords[user])
    await tab.locator("#password").press("Enter")
    await tab.wait_for_url(studio.base + "/admin/")


async def axe(tab) -> list[dict]:
    """axe-core's violations on the page as it is now (every rule axe runs by default)."""
    found = await tab.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"rule": v["id"], "impact": v["impact"], "help": v["help"],
             "where": [n["target"] for n in v["nodes"]][:5]} for v in found]


async def check_page(tab, studio, path: str, label: str, problems: list) -> None:
    """One page at both widths: axe at 1366 px and at 390 px, and no sideways scroll at 390 px."""
    await tab.set_viewport_size(DESKTOP)
    response = await tab.goto(studio.base + path)
    assert response is not None and response.status < 500, (path, response and response.status)
    await tab.wait_for_load_state("load")
    await tab.evaluate(AXE_SCRIPT)  # once per page load: the CSP does not apply to the test's own script
    for width, size in (("1366", DESKTOP), ("390", PHONE)):
        await tab.set_viewport_size(size)
        for v in await axe(tab):
            problems.append(f"{label} {path} at {width} px: {json.dumps(v, ensure_ascii=False)}")
    scroll = await tab.evaluate("document.documentElement.scrollWidth")
    FIGURES.setdefault(path.split("?")[0] if "/jobs/" not in path else "/admin/jobs/{id}", {})[label] = scroll
    if scroll > 390:
        problems.append(f"{label} {path}: scrollWidth {scroll} px at 390 px")


def signed_in_pages(ids: dict) -> list[str]:
    pages = ["/admin/", "/admin/slots/slot-001", "/admin/slots/slot-002", "/admin/slots/slot-010", "/admin/jobs",
             "/admin/stats", "/admin/stats?period=range&from=2026-12-01&to=2026-11-01", "/admin/templates",
             "/admin/providers", "/admin/settings", "/admin/audit", "/admin/no-such-page"]
    if ids.get("job"):
        pages += [f"/admin/jobs/{ids['job']}", f"/admin/jobs/{ids['job']}/cancel"]
    if ids.get("template"):
        pages.append(f"/admin/templates/{ids['template']}/delete")
    return pages


async def run_matrix(chromium, studio, state: str, ids: dict, problems: list) -> None:
    for lang in ("en", "ru"):
        context, tab = await new_tab(chromium, studio, lang)
        try:
            await check_page(tab, studio, "/admin/login", f"{state}/{lang}/signed-out", problems)
            await check_page(tab, studio, "/admin/no-such-page", f"{state}/{lang}/signed-out", problems)
            await sign_in(tab, studio)
            for path in signed_in_pages(ids):
                await check_page(tab, studio, path, f"{state}/{lang}", problems)
            assert [u for u in tab.requests if not u.startswith((studio.base + "/", "data:", "blob:"))] == []
        finally:
            await context.close()


def configure_slots(studio) -> None:
    for slot, provider, operation, extra in (
            ("slot-001", "gemini", "image_edit", ["--prompt", "сепия", "--param", "temperature=0.4"]),
            ("slot-002", "gemini", "style_transfer", ["--prompt", "в стиле", "--template",
                                                      f"style={FIXTURES / 'template_style.jpg'}"]),
            ("slot-004", "turbotext", "image_edit", ["--prompt", "ретро", "--param", "strength=40"]),
            ("slot-006", "turbotext", "identity_transfer", ["--template", f"face={FIXTURES / 'template_face.png'}"])):
        r = procs.cli(studio.config, studio.dsn, "slot", "set", slot, "--name", f"Будка {slot[-1]}", "--provider",
                      provider, "--operation", operation, *extra)
        assert r.returncode == 0, r.stderr


async def make_it_busy(chromium, studio) -> dict:
    """Slots of every operation, templates, booth shots answered and refused, a test shot, Gemini
    down — through the CLI, the pages and the booths' own door, as a studio gets busy."""
    configure_slots(studio)
    assert await booth(studio, "slot-001") == 200
    assert await booth(studio, "slot-004") == 200
    assert await booth(studio, "slot-003", "yesterdays-password") == 401
    assert await booth(studio, "slot-016") == 404
    context, tab = await new_tab(chromium, studio, "en")
    try:
        await sign_in(tab, studio)
        await tab.goto(studio.base + "/admin/slots/slot-004")
        await tab.get_by_label("Test photo").set_input_files(str(FIXTURES / "dslr_landscape.jpg"))
        await tab.get_by_role("button", name="Run test shot").click()
        await expect(tab.get_by_role("img", name="Result", exact=True)).to_be_visible(timeout=30_000)
    finally:
        await context.close()
    await control(studio, provider="gemini", fail_rate=1.0, fail_status=503)
    assert await booth(studio, "slot-001") == 503  # Gemini is down after this failed call
    job = procs.db_rows(studio.dsn, "SELECT id FROM jobs WHERE status = 'succeeded' ORDER BY created_at LIMIT 1")[0][0]
    template = procs.db_rows(studio.dsn, "SELECT id FROM template_media ORDER BY created_at LIMIT 1")[0][0]
    return {"job": str(job), "template": str(template)}


async def test_every_page_passes_axe_in_both_languages_at_both_widths_and_fits_a_phone(chromium, studio):
    started = time.monotonic()
    problems: list[str] = []
    # the check itself can fail: axe, as injected here, finds what a page without names has wrong
    context, tab = await new_tab(chromium, studio, "en")
    await tab.set_content('<html><body><img src="data:,"><input id="x"><button></button></body></html>')
    await tab.evaluate(AXE_SCRIPT)
    assert {"image-alt", "label", "button-name", "html-has-lang"} <= {v["rule"] for v in await axe(tab)}
    await context.close()
    await run_matrix(chromium, studio, "empty", {}, problems)
    ids = await make_it_busy(chromium, studio)
    await run_matrix(chromium, studio, "busy", ids, problems)
    try:
        assert problems == [], "\n".join(problems)
    finally:
        print(f"\na11y matrix: {sum(len(v) for v in FIGURES.values())} page loads, 2 axe runs each, "
              f"{time.monotonic() - started:.0f} s; the widest page at 390 px:")
        for page, by in sorted(FIGURES.items()):
            print(f"  {page}: {max(by.values())} px")


async def test_the_keyboard_reaches_the_content_and_a_refused_save_lands_on_its_first_error(chromium, studio):
    context, tab = await new_tab(chromium, studio, "ru")
    try:
        await sign_in(tab, studio)
        await tab.goto(studio.base + "/admin/slots/slot-001")
        await tab.keyboard.press("Tab")  # the first stop is the skip link
        assert await tab.evaluate("document.activeElement.className") == "skip"
        assert await tab.evaluate("document.activeElement.textContent") == "Перейти к содержимому"
        await tab.keyboard.press("Enter")
        assert await tab.evaluate("document.activeElement.id") == "main"
        # a visible focus ring, on a dark button too (the slot form's Save)
        save = tab.locator("#slot-form button[type=submit]")
        await tab.locator("#enabled").focus()
        await tab.keyboard.press("Tab")
        assert await save.evaluate("b => b === document.activeElement")
        ring = await save.evaluate("b => { const s = getComputedStyle(b); return [s.outlineStyle, s.outlineWidth, "
                                   "s.outlineColor, s.backgroundColor]; }")
        assert ring[0] == "solid" and float(ring[1][:-2]) >= 3 and ring[2] != ring[3], ring
        # a refused save (the prompt this operation needs is empty): focus on the field, tied to its message
        await tab.locator("#prompt").fill("")
        await tab.locator("#prompt").evaluate("t => t.required = false")  # as a browser without the check sends it
        await save.press("Enter")
        await tab.wait_for_load_state("load")
        await expect(tab.locator("#form-errors")).to_contain_text("Не сохранено")
        focused = await tab.evaluate("""() => { const el = document.activeElement;
            const ids = (el.getAttribute('aria-describedby') || '').split(' ');
            return [el.id, el.getAttribute('aria-invalid'), ids.map(i => document.getElementById(i)?.textContent).join(' ')]; }""")
        assert focused[0] == "prompt" and focused[1] == "true" and "нужен промпт" in focused[2], focused
        # a paste longer than the limit is kept whole and said to be too long, never cut
        await tab.locator("#prompt").fill("д" * 4100)
        assert len(await tab.locator("#prompt").input_value()) == 4100
        await expect(tab.locator("#prompt-count")).to_contain_text("4100 из 4000")
        await expect(tab.locator("#prompt")).to_have_attribute("aria-invalid", "true")
        await tab.locator("#name").press("Enter")
        await expect(tab.locator("#err-settings_json-prompt")).to_contain_text("4000")
        assert len(await tab.locator("#prompt").input_value()) == 4100  # what was typed is back, whole
    finally:
        await context.close()


async def test_the_live_refresh_keeps_the_focus_while_a_booth_shoots(chromium, studio):
    await control(studio, provider="gemini", fail_rate=0.0)
    configure_slots(studio)
    context, tab = await new_tab(chromium, studio, "ru")
    try:
        await sign_in(tab, studio)
        card4, card6 = tab.locator("#card-slot-004"), tab.locator("#card-slot-006")
        before4, before6 = await card4.inner_text(), await card6.inner_text()
        link = card6.get_by_role("link")
        await link.focus()
        await link.evaluate("a => a.dataset.marked = 'yes'")
        assert await booth(studio, "slot-004") == 200  # a booth shoots meanwhile: slot-004's card changes …
        assert await booth(studio, "slot-006") == 200  # … and so would slot-006's, which has the focus
        await expect(card4).not_to_have_text(before4, timeout=12_000)  # the refresh came, in place
        assert await tab.evaluate("document.activeElement.dataset.marked") == "yes"  # the focus never moved
        assert await card6.inner_text() == before6  # the focused card waits …
        await tab.evaluate("document.activeElement.blur()")
        await expect(card6).not_to_have_text(before6, timeout=12_000)  # … and follows once it is left
        if studio.shots:
            await tab.set_viewport_size(PHONE)
            await tab.screenshot(path=str(studio.shots / "slots-phone.png"), full_page=True)
            for path, name in (("/admin/slots/slot-002", "slot-phone"), ("/admin/jobs", "jobs-phone"),
                               ("/admin/stats", "statistics-phone"), ("/admin/audit", "audit-phone")):
                await tab.goto(studio.base + path)
                await tab.screenshot(path=str(studio.shots / f"{name}.png"), full_page=True)
    finally:
        await context.close()
