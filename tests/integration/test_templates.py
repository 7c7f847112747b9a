"""Template media service: checks, bindings, and removal rules (CLI and admin API share these)."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from photoslot import audit, slots, templates
from photoslot.errors import Conflict, NotFound, ValidationError
from photoslot.media import MediaTooLarge, UnsupportedMedia
from tests.conftest import FIXTURES
from tests.integration.operations import setup_slot
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

STYLE = (FIXTURES / "template_style.jpg").read_bytes()
FACE = (FIXTURES / "template_face.png").read_bytes()


async def audit_actions(s) -> list[str]:
    return [r["action"] for r in reversed(await audit.entries(s.ctx.db, limit=100))]


async def test_register_stores_the_file_with_type_size_hash_and_uploader(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        row = await templates.register(s.ctx, data=STYLE, label="Van Gogh", actor="os:serg", source="cli")
        assert row["mime"] == "image/jpeg" and row["size_bytes"] == len(STYLE) and row["label"] == "Van Gogh"
        assert row["uploaded_by"] == "os:serg" and len(row["sha256"]) == 64
        assert s.files("templates") == [f"{row['id']}.jpg"]
        assert (s.ctx.media.templates / f"{row['id']}.jpg").read_bytes() == STYLE
        assert "template.add" in await audit_actions(s)


async def test_register_refuses_non_images_415_and_oversize_413_leaving_no_file(make_cfg, pg_dsn):
    async with Studio(make_cfg(ingest__max_upload_mb=1), pg_dsn, workers=0) as s:
        with pytest.raises(UnsupportedMedia) as e415:
            await templates.register(s.ctx, data=b"%PDF-1.4 not an image", label=None, actor="t", source="test")
        assert e415.value.http_status == 415
        with pytest.raises(UnsupportedMedia):  # JPEG magic, garbage after it
            await templates.register(s.ctx, data=b"\xff\xd8\xff" + b"x" * 100, label=None, actor="t", source="test")
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "PNG")
        with pytest.raises(MediaTooLarge) as e413:
            await templates.register(s.ctx, data=buf.getvalue() + b"\0" * (1024 * 1024), label=None, actor="t",
                                     source="test")
        assert e413.value.http_status == 413
        assert s.files("templates") == [] and await templates.list_all(s.ctx.db) == []


async def test_register_for_slot_binds_the_role_and_refuses_a_second_one_unless_replace(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        first = await setup_slot(s, "slot-002", "gemini", "style_transfer", prompt="paint", roles=("style",))
        with pytest.raises(Conflict):
            await templates.register_for_slot(s.ctx, slot_id="slot-002", role="style", data=STYLE, label=None,
                                              replace=False, actor="t", source="test")
        out = await templates.register_for_slot(s.ctx, slot_id="slot-002", role="style", data=STYLE, label="new",
                                                replace=True, actor="t", source="test")
        assert out["slot_id"] == "slot-002" and out["setting_key"] == "style" and out["label"] == "new"
        slot = await slots.get(s.ctx.db, "slot-002")
        assert slot["settings_json"]["templates"] == {"style": out["id"]}
        listed = {t["id"]: t["used_by"] for t in await templates.list_all(s.ctx.db)}
        assert listed == {first["style"]: [], out["id"]: ["slot-002"]}
        with pytest.raises(ValidationError) as bad_role:
            await templates.register_for_slot(s.ctx, slot_id="slot-002", role="face", data=FACE, label=None,
                                              replace=False, actor="t", source="test")
        assert "setting_key" in bad_role.value.details
        with pytest.raises(ValidationError):  # an unconfigured slot has no roles yet
            await templates.register_for_slot(s.ctx, slot_id="slot-009", role="style", data=STYLE, label=None,
                                              replace=False, actor="t", source="test")
        with pytest.raises(NotFound):
            await templates.register_for_slot(s.ctx, slot_id="slot-016", role="style", data=STYLE, label=None,
                                              replace=False, actor="t", source="test")
        assert len(s.files("templates")) == 2  # refused registrations left nothing behind


async def test_template_in_use_cannot_be_removed_and_force_unbinds_disables_and_reports(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await s.set_password()
        bound = await setup_slot(s, "slot-002", "gemini", "style_transfer", prompt="paint", roles=("style",))
        tid = bound["style"]
        await slots.configure(s.ctx.db, s.clock, "slot-003", actor="t", source="test", provider_id="gemini",
                              operation_id="identity_transfer",
                              settings_json={"prompt": "p", "templates": {"face": await _face(s), "style": tid}})
        with pytest.raises(Conflict) as refused:
            await templates.remove(s.ctx, tid, force=False, actor="t", source="test")
        assert "slot-002 (style)" in refused.value.message and "slot-003 (style)" in refused.value.message
        assert s.files("templates").count(f"{tid}.jpg") == 1
        report = await templates.remove(s.ctx, tid, force=True, actor="t", source="test")
        assert report["removed"] is True
        assert report["unbound_from"] == [{"slot_id": "slot-002", "role": "style", "disabled": True},
                                          {"slot_id": "slot-003", "role": "style", "disabled": False}]
        assert f"{tid}.jpg" not in s.files("templates")
        s2 = await slots.get(s.ctx.db, "slot-002")
        assert s2["enabled"] is False and s2["settings_json"].get("templates") == {}
        s3 = await slots.get(s.ctx.db, "slot-003")  # style was optional there: still enabled
        assert s3["enabled"] is True and list(s3["settings_json"]["templates"]) == ["face"]
        status, _, _ = await s.ingest("slot-002", (FIXTURES / "small_photo.png").read_bytes())
        assert status == 404  # the disabled slot takes no photos
        assert {"template.unbind", "template.remove"} <= set(await audit_actions(s))
        with pytest.raises(NotFound):
            await templates.get(s.ctx.db, tid)


async def _face(s) -> str:
    return (await templates.register(s.ctx, data=FACE, label=None, actor="t", source="test"))["id"]


async def test_unbind_from_one_slot_is_refused_while_another_slot_uses_it(make_cfg, pg_dsn):
    """The admin API's DELETE /api/template-media/{id}?slot_id=&setting_key= semantics."""
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        tid = await _face(s)
        for slot_id in ("slot-004", "slot-005"):
            await slots.configure(s.ctx.db, s.clock, slot_id, actor="t", source="test", provider_id="turbotext",
                                  operation_id="identity_transfer", settings_json={"templates": {"face": tid}})
        with pytest.raises(Conflict) as conflict:
            await templates.unbind(s.ctx, tid, slot_id="slot-004", role="face", force=False, actor="t", source="test")
        assert conflict.value.details["used_by"] == [{"slot_id": "slot-005", "role": "face"}]
        # once slot-005 lets go, unbinding from slot-004 removes the file too
        out = await templates.unbind(s.ctx, tid, slot_id="slot-005", role="face", force=True, actor="t",
                                     source="test")
        assert out["removed"] is True and {b["slot_id"] for b in out["unbound_from"]} == {"slot-004", "slot-005"}
        with pytest.raises(NotFound):
            await templates.unbind(s.ctx, tid, slot_id="slot-004", role="face", force=False, actor="t", source="test")
        tid2 = await _face(s)
        await slots.configure(s.ctx.db, s.clock, "slot-006", actor="t", source="test", provider_id="turbotext",
                              operation_id="identity_transfer", settings_json={"templates": {"face": tid2}})
        with pytest.raises(Conflict) as guard:  # slot-006 is enabled and needs its face: not without force
            await templates.unbind(s.ctx, tid2, slot_id="slot-006", role="face", force=False, actor="t",
                                   source="test")
        assert guard.value.details["disables"] == ["slot-006"] and "disables slot-006" in guard.value.message
        assert (await slots.get(s.ctx.db, "slot-006"))["enabled"] is True  # nothing changed
        out = await templates.unbind(s.ctx, tid2, slot_id="slot-006", role="face", force=True, actor="t",
                                     source="test")
        assert out == {"removed": True, "unbound_from": [{"slot_id": "slot-006", "role": "face", "disabled": True}],
                       "disabled": ["slot-006"]}
        assert (await slots.get(s.ctx.db, "slot-006"))["enabled"] is False
        assert s.files("templates") == []


async def test_unbinding_a_template_an_enabled_slot_needs_asks_for_force_over_the_api(
        make_cfg, pg_dsn):
    from tests.integration.adminapi import logged_in

    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        tid = await _face(s)
        await slots.configure(s.ctx.db, s.clock, "slot-007", actor="t", source="test", provider_id="turbotext",
                              operation_id="identity_transfer", settings_json={"templates": {"face": tid}})
        api = await logged_in(s)
        path = f"/api/template-media/{tid}"
        status, _, body = await api.call("DELETE", path, params={"slot_id": "slot-007", "setting_key": "face"})
        assert status == 409 and body["error"]["details"]["disables"] == ["slot-007"]
        assert "disables slot-007" in body["error"]["message"]
        status, headers, _ = await api.call("DELETE", path, params={"slot_id": "slot-007", "setting_key": "face",
                                                                    "force": "true"})
        assert status == 204 and headers["X-Slots-Disabled"] == "slot-007"



async def test_slot_validation_rejects_missing_or_malformed_template_bindings(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        with pytest.raises(ValidationError) as missing:
            await slots.configure(s.ctx.db, s.clock, "slot-007", actor="t", source="test", provider_id="turbotext",
                                  operation_id="style_transfer", settings_json={})
        assert "settings_json.templates.style" in missing.value.details
        with pytest.raises(ValidationError) as malformed:
            await slots.configure(s.ctx.db, s.clock, "slot-007", actor="t", source="test", provider_id="turbotext",
                                  operation_id="style_transfer", settings_json={"templates": {"style": "../etc"}})
        assert "UUID" in malformed.value.details["settings_json.templates.style"]
