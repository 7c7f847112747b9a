"""Setting a studio up from the web admin alone: every kind of slot with its templates uploaded in
the slot form (one Save, all or nothing), the Templates page (rename, delete with its guard), the
public address every URL follows, the warnings, the first-run checklist — each rule proved through
the pages, which call the same domain functions as the CLI and the API."""
from __future__ import annotations

import re

import pytest

from photoslot import checklist, public_address, slots, templates
from photoslot import settings as live_settings
from photoslot.config import load_config
from photoslot.context import AppContext
from photoslot.public_media import public_url
from photoslot.server.keys import INGEST
from tests.conftest import FIXTURES
from tests.integration.operations import add_template
from tests.integration.studio import Studio
from tests.integration.webclient import Browser

pytestmark = pytest.mark.usefixtures("clean_state")

STYLE = (FIXTURES / "template_style.jpg").read_bytes()
FACE = (FIXTURES / "template_face.png").read_bytes()


def slot_form(version: int, provider: str, operation: str, **fields) -> dict:
    return {"version": str(version), "name": fields.pop("name", "booth"), "provider_id": provider,
            "operation_id": operation, "enabled": "on", "output_format": "", **fields}


async def test_a_style_slot_is_set_up_in_one_save_with_its_template_uploaded_from_the_form(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        async with Browser(s) as b:
            await b.sign_in()
            await b.get("/admin/slots/slot-002")
            status, _, location = await b.post(
                "/admin/slots/slot-002", slot_form(1, "turbotext", "style_transfer", name="Van Gogh",
                                                   **{"upload_label.style": "Starry night"}),
                files={"upload.style": ("starry.jpg", STYLE)})
            assert (status, location) == (303, "/admin/slots/slot-002?done=saved")
            slot = await slots.get(s.ctx.db, "slot-002")
            assert (slot["provider_id"], slot["operation_id"], slot["enabled"]) == ("turbotext", "style_transfer", True)
            bound = slot["settings_json"]["templates"]["style"]
            (row,) = await templates.list_all(s.ctx.db)
            assert row["id"] == bound and row["label"] == "Starry night" and row["used_by"] == ["slot-002"]
            status, page = await b.get("/admin/slots/slot-002?done=saved")
            assert status == 200 and "Saved." in page and f'/admin/templates/{bound}/image' in page


async def test_a_refused_save_stores_nothing_keeps_what_was_typed_and_says_why_at_each_field(make_cfg, pg_dsn):
    """A prompt missing and a damaged image in the same Save: both named at their fields, the slot
    unchanged, no template stored (the good image of another role neither), the typed values back."""
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        async with Browser(s) as b:
            await b.sign_in()
            await b.get("/admin/slots/slot-003")
            status, page, _ = await b.post(
                "/admin/slots/slot-003", slot_form(1, "gemini", "identity_transfer", name="Faces", prompt="",
                                                   **{"param.temperature": "0.4"}),
                files={"upload.face": ("face.png", FACE), "upload.style": ("broken.jpg", b"\xff\xd8\xff" + b"x" * 200)})
            assert status == 422
            assert re.search(r'id="err-settings_json-prompt">a prompt is required', page)
            assert re.search(r'id="err-template_upload-style">the image: ', page)
            assert re.search(r'id="err-template_upload-face">not stored', page)  # the good one: choose it again
            assert 'value="Faces"' in page and 'value="0.4"' in page
            assert 'data-op="gemini/identity_transfer" data-prompt="required">' in page  # the chosen operation shown
            assert await templates.list_all(s.ctx.db) == [] and s.files("templates") == []
            assert not slots.is_configured(await slots.get(s.ctx.db, "slot-003"))


async def test_uploading_over_a_chosen_template_asks_first(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        old = await add_template(s, "style")
        saved = await slots.configure(s.ctx.db, s.clock, "slot-004", actor="t", source="t", provider_id="gemini",
                                      operation_id="style_transfer",
                                      settings_json={"prompt": "paint", "templates": {"style": old}})
        async with Browser(s) as b:
            await b.sign_in()
            await b.get("/admin/slots/slot-004")
            form = slot_form(saved["version"], "gemini", "style_transfer", prompt="paint", **{"template.style": old})
            status, page, _ = await b.post("/admin/slots/slot-004", form, files={"upload.style": ("new.jpg", STYLE)})
            assert status == 422 and re.search(r'id="err-template_upload-style">a template is chosen for this role', page)
            assert len(await templates.list_all(s.ctx.db)) == 1
            status, _, _ = await b.post("/admin/slots/slot-004", {**form, "replace.style": "on"},
                                        files={"upload.style": ("new.jpg", STYLE)})
            assert status == 303
            bound = (await slots.get(s.ctx.db, "slot-004"))["settings_json"]["templates"]["style"]
            assert bound != old  # replaced; the old one stays in the library, used by no slot
            assert {t["id"]: t["used_by"] for t in await templates.list_all(s.ctx.db)} == {old: [], bound: ["slot-004"]}


async def test_the_templates_page_renames_and_deletes_after_naming_the_slots_it_disables(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        face = await add_template(s, "face")
        await slots.configure(s.ctx.db, s.clock, "slot-005", actor="t", source="t", provider_id="turbotext",
                              operation_id="identity_transfer", settings_json={"templates": {"face": face}})
        async with Browser(s) as b:
            await b.sign_in()
            status, page = await b.get("/admin/templates")
            assert status == 200 and 'href="/admin/slots/slot-005">slot-005</a>' in page and "image/png" in page
            assert (await b.post(f"/admin/templates/{face}/label", {"label": "Bride"}))[:1] == (303,)
            assert (await templates.get(s.ctx.db, face))["label"] == "Bride"
            # deleting asks first: a GET page naming what it disables; a POST without the confirmation deletes nothing
            status, page = await b.get(f"/admin/templates/{face}/delete")
            assert status == 200 and "slot-005" in page and "will be disabled" in page
            status, _, location = await b.post(f"/admin/templates/{face}/delete", {})
            assert (status, location) == (303, f"/admin/templates/{face}/delete")
            assert (await templates.get(s.ctx.db, face))["id"] == face
            status, _, location = await b.post(f"/admin/templates/{face}/delete", {"confirm": "yes"})
            assert (status, location) == (303, "/admin/templates?done=deleted")
            assert await templates.list_all(s.ctx.db) == []
            slot = await slots.get(s.ctx.db, "slot-005")
            assert not slot["enabled"] and not (slot["settings_json"].get("templates") or {})
            actions = [r["action"] for r in await s.ctx.db.fetchall("audit_page", limit=20, action=None)]
            assert "template.rename" in actions and "template.remove" in actions


async def test_the_public_address_is_a_live_setting_every_url_follows_at_once(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        cfg.set("server.public_base_url", None)  # the Studio's own default, as if the file set none
        await slots.configure(s.ctx.db, s.clock, "slot-006", actor="t", source="t", provider_id="turbotext",
                              operation_id="image_edit", settings_json={"prompt": "sepia"})
        async with Browser(s) as b:
            await b.sign_in()
            _, page = await b.get("/admin/slots/slot-006")
            assert 'id="address-warning"' in page and 'id="turbotext-warning"' in page  # 127.0.0.1: this PC only
            status, _, location = await b.post("/admin/settings/studio",
                                               {"public_base_url": "http://192.168.1.20:8080/", "time_zone": ""})
            assert (status, location) == (303, "/admin/settings?done=studio")
            assert cfg.public_base_url() == "http://192.168.1.20:8080"
            assert slots.ingest_url(cfg, "slot-006") == "http://192.168.1.20:8080/ingest/slot-006"
            assert public_url(cfg, "x").startswith("http://192.168.1.20:8080/public/media/")
            _, page = await b.get("/admin/slots/slot-006")
            assert "http://192.168.1.20:8080/ingest/slot-006" in page
            assert 'id="address-warning"' not in page and 'id="turbotext-warning"' in page  # private: not Turbotext's
            await b.post("/admin/settings/studio", {"public_base_url": "https://studio.example.com", "time_zone": ""})
            _, page = await b.get("/admin/slots/slot-006")
            assert 'id="turbotext-warning"' not in page
            # a second process (another serve, a `work` host) follows it too: NOTIFY, or its poll
            other_cfg = load_config(cfg.source, environ={})
            other = await AppContext.open(other_cfg, clock=s.clock, dsn=pg_dsn)
            try:
                assert other_cfg.public_base_url() == "https://studio.example.com"
                await b.post("/admin/settings/studio", {"public_base_url": "http://10.0.0.5:8080", "time_zone": ""})
                await public_address.refresh(other)
                assert other_cfg.public_base_url() == "http://10.0.0.5:8080"
            finally:
                await other.close()
            # refused with the field named; nothing changes
            status, page, _ = await b.post("/admin/settings/studio", {"public_base_url": "ftp://x", "time_zone": ""})
            assert status == 422 and "must start with http:// or https://" in page
            assert cfg.public_base_url() == "http://10.0.0.5:8080"
            entry = (await s.ctx.db.fetchall("audit_page", limit=1, action="settings.update"))[0]
            assert entry["details"] == {"public_base_url": "http://10.0.0.5:8080"}


async def test_a_public_address_set_in_the_config_file_is_shown_read_only_and_cannot_be_changed(make_cfg, pg_dsn):
    cfg = make_cfg(server__public_base_url="https://booths.example.com")
    async with Studio(cfg, pg_dsn, workers=0) as s:
        async with Browser(s) as b:
            await b.sign_in()
            _, page = await b.get("/admin/settings")
            field = re.search(r'<input id="public-base-url"[^>]*>', page).group(0)
            assert 'readonly' in field and 'value="https://booths.example.com"' in field
            assert "(server.public_base_url): change it there" in page and str(cfg.source) in page
            status, page, _ = await b.post("/admin/settings/studio",
                                           {"public_base_url": "http://10.1.1.1", "time_zone": "Europe/Moscow"})
            assert status == 303  # the time zone is saved; the address, fixed by the file, is not even sent
            assert cfg.public_base_url() == "https://booths.example.com"
            address = await public_address.load(s.ctx.db, cfg)
            assert (address.source, address.fixed_by, address.kind) == ("config", str(cfg.source), "public")


async def test_a_slot_whose_provider_has_no_key_saves_with_a_warning_and_its_test_shot_says_so_in_words(
        make_cfg, pg_dsn, photo_bytes):
    cfg = make_cfg(providers__turbotext__api_key=None)
    async with Studio(cfg, pg_dsn) as s:
        async with Browser(s) as b:
            await b.sign_in()
            await b.get("/admin/slots/slot-007")
            status, _, location = await b.post("/admin/slots/slot-007",
                                               slot_form(1, "turbotext", "image_edit", prompt="sepia"))
            assert status == 303
            _, page = await b.get(location)
            assert "Saved. But Turbotext has no API key" in page
            status, _, location = await b.post("/admin/slots/slot-007/test-shot", {},
                                               files={"photo": ("shot.jpg", photo_bytes)})
            assert status == 303 and "?shot=" in location
            _, page = await b.get(location)
            assert "Turbotext has no API key: set it on Settings." in page
            assert "TURBOTEXT_API_KEY" not in page and "providers.turbotext.api_key" not in page


async def test_the_first_run_checklist_follows_what_the_studio_did(make_cfg, pg_dsn, photo_bytes):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn) as s:
        cfg.set("server.public_base_url", None)
        done = lambda found: {step.id for step in found if step.done}  # noqa: E731
        assert done(await checklist.steps(s.ctx)) == {"provider_key"}  # the config file holds both keys
        await s.set_password()
        await s.configure("slot-001")
        assert done(await checklist.steps(s.ctx)) == {"provider_key", "slot"}
        answer, *_ = await s.app[INGEST].rehearse("slot-001", photo_bytes)
        assert answer.status == 200
        assert (await s.ingest("slot-001", photo_bytes, password="stale-password-1"))[0] == 401
        await s.ctx.refusals.flush(s.ctx.db)
        assert done(await checklist.steps(s.ctx)) == {"provider_key", "slot", "test_shot"}  # a 401 hands nothing
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        await live_settings.update(s.ctx.db, cfg, s.clock, actor="t", source="t", public_base_url="http://127.0.0.1:8080")
        assert "public_address" not in done(await checklist.steps(s.ctx))  # loopback: this PC only
        await live_settings.update(s.ctx.db, cfg, s.clock, actor="t", source="t", public_base_url="http://192.168.0.9:8080")
        found = await checklist.steps(s.ctx)
        assert checklist.finished(found)
        async with Browser(s) as b:
            await b.sign_in()
            _, page = await b.get("/admin/")
            assert 'id="first-run"' not in page  # shown until done
            await slots.reset(s.ctx.db, s.clock, "slot-001", actor="t", source="t")
            _, page = await b.get("/admin/")
            assert 'id="first-run"' in page and 'href="/admin/slots/slot-001"' in page
