"""A Gemini slot's output — model, aspect ratio, image size — is declared once in the catalogue, and
the admin API, the CLI and the web slot form all offer and check the same choices."""
from __future__ import annotations

import re

import pytest

from photoslot.providers import catalogue
from tests.integration.adminapi import logged_in
from tests.integration.studio import Studio
from tests.integration.test_web_pages import signed_in

pytestmark = pytest.mark.usefixtures("clean_state")

PRO_2K = {"model": "gemini-3-pro-image-preview", "aspect_ratio": "16:9", "image_size": "2K"}


async def test_the_api_lists_the_choices_and_saves_or_refuses_them_per_field(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        _, _, providers = await api.call("GET", "/api/providers")
        params = next(p for p in providers["providers"] if p["id"] == "gemini")["operations"][0]["parameters"]
        assert params["model"]["choices"] == list(catalogue.GEMINI_IMAGE_MODELS)
        assert params["aspect_ratio"]["choices"] == list(catalogue.ASPECT_RATIOS)
        body = {"provider_id": "gemini", "operation_id": "image_edit", "settings_json": {"prompt": "p", "params": PRO_2K}}
        status, _, saved = await api.call("PUT", "/api/slots/slot-002", json=body)
        assert status == 200 and saved["slot"]["settings_json"]["params"] == PRO_2K
        body["settings_json"]["params"] = {"image_size": "4K"}
        status, _, refused = await api.call("PUT", "/api/slots/slot-002", json=body)
        assert status == 422
        assert "set model too" in refused["error"]["details"]["settings_json.params.image_size"]


async def test_the_web_slot_form_offers_the_choices_and_saves_what_is_picked(make_cfg, pg_dsn):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        slot = await s.configure("slot-004", prompt="p")
        http, csrf = await signed_in(s, cfg)
        async with http:
            async with http.get(s.base_url + "/admin/slots/slot-004") as r:
                page = await r.text()
            for name, choices in (("model", catalogue.GEMINI_IMAGE_MODELS), ("aspect_ratio", catalogue.ASPECT_RATIOS),
                                  ("image_size", catalogue.IMAGE_SIZES)):
                select = page[page.index(f'<select id="param-gemini-image_edit-{name}"'):]
                select = select[:select.index("</select>")]
                assert re.findall(r'<option value="([^"]+)"', select) == list(choices)
            form = {"csrf": csrf, "version": str(slot["version"]), "name": "pro", "provider_id": "gemini",
                    "operation_id": "image_edit", "prompt": "p", "enabled": "on", "output_format": "",
                    **{f"param.{k}": v for k, v in PRO_2K.items()}}
            async with http.post(s.base_url + "/admin/slots/slot-004", data=form) as r:
                assert r.status in (200, 303), await r.text()
            stored = await s.ctx.db.fetchone("slot_get", slot_id="slot-004")
            assert stored["settings_json"]["params"] == PRO_2K
            async with http.get(s.base_url + "/admin/slots/slot-004") as r:
                page = await r.text()
            assert re.search(r'<option value="2K"[^>]*\bselected>', page)
            assert re.search(r'<option value="16:9"[^>]*\bselected>', page)
            form.update({"version": str(stored["version"]), "param.model": "gemini-2.5-flash-image"})
            async with http.post(s.base_url + "/admin/slots/slot-004", data=form) as r:
                page = await r.text()
                assert r.status == 422
                assert "gemini-2.5-flash-image answers at one size" in page
