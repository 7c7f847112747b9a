"""Slots over the admin API: list and filters, detail, validated PUT with the optimistic check,
reset_stats, and a slot edited while its job runs."""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import emulator_control, emulator_requests
from tests.integration.adminapi import logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

SEPIA = {"provider_id": "gemini", "operation_id": "image_edit", "settings_json": {"prompt": "turn the photo sepia"}}



async def test_providers_lists_the_catalogue(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, _, body = await api.call("GET", "/api/providers")
        assert status == 200
        assert set(body) == {"providers"}  # the contract's envelope
        gemini = next(p for p in body["providers"] if p["id"] == "gemini")
        edit = next(op for op in gemini["operations"] if op["id"] == "image_edit")
        assert "temperature" in edit["parameters"] and edit["needs"] == []


async def test_put_configures_a_slot_and_filters_find_it(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, headers, body = await api.call("PUT", "/api/slots/slot-004", json={"name": "Wedding sepia", **SEPIA})
        assert status == 200, body
        assert body["id"] == "slot-004" and body["slot"]["enabled"] is True and headers["ETag"] == '"2"'
        await api.call("PUT", "/api/slots/slot-009", json={"name": "Kids", **SEPIA})
        _, _, listed = await api.call("GET", "/api/slots", params={"provider_id": "gemini"})
        assert [r["id"] for r in listed["data"]] == ["slot-004", "slot-009"] and listed["meta"] == {"total": 2}
        assert all("recent_results" not in r for r in listed["data"])
        _, _, everything = await api.call("GET", "/api/slots")
        assert everything["meta"]["total"] == len(everything["data"]) == 15
        # a slot not configured yet: strings, as the contract types them, and `configured` says so
        fresh = next(r for r in everything["data"] if r["id"] == "slot-001")
        assert (fresh["provider_id"], fresh["operation_id"], fresh["configured"]) == ("", "", False)
        _, _, listed = await api.call("GET", "/api/slots", params={"search": "wedd"})
        assert [r["id"] for r in listed["data"]] == ["slot-004"]
        _, _, listed = await api.call("GET", "/api/slots", params={"operation_id": "style_transfer_nope"})
        assert listed["data"] == []
        status, _, slot = await api.call("GET", "/api/slots/slot-004")
        assert status == 200 and slot["settings_json"]["prompt"] == "turn the photo sepia"
        assert slot["recent_results"] == [] and slot["ingest_url"].endswith("/ingest/slot-004")
        assert slot["updated_at"] == body["updated_at"]


async def test_unknown_slots_are_404(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        for method, path in (("GET", "/api/slots/slot-016"), ("GET", "/api/slots/slot-000"),
                             ("PUT", "/api/slots/slot-016"), ("POST", "/api/slots/nope/reset_stats")):
            status, _, body = await api.call(method, path, json=SEPIA if method == "PUT" else None)
            assert status == 404 and body["error"]["code"] == "not_found", (method, path)


async def test_put_reports_catalogue_violations_per_field(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, _, body = await api.call("PUT", "/api/slots/slot-002", json={
            "provider_id": "gemini", "operation_id": "image_edit",
            "settings_json": {"params": {"temperature": 9, "bogus": 1}, "output_format": "gif"}})
        assert status == 422 and body["error"]["code"] == "validation_error"
        assert set(body["error"]["details"]) >= {"settings_json.prompt", "settings_json.params.temperature",
                                                 "settings_json.params.bogus", "settings_json.output_format"}
        status, _, body = await api.call("PUT", "/api/slots/slot-002", json={"provider_id": "nope",
                                                                            "operation_id": "x"})
        assert status == 422 and "provider_id" in body["error"]["details"]
        status, _, body = await api.call("PUT", "/api/slots/slot-002", json={**SEPIA, "setting_json": {}})
        assert status == 422 and body["error"]["details"] == {"setting_json": "unknown field"}
        status, _, body = await api.call("PUT", "/api/slots/slot-002", json={**SEPIA, "enabled": "yes"})
        assert status == 422 and "enabled" in body["error"]["details"]
        status, _, _ = await api.call("PUT", "/api/slots/slot-002", data=b"{oops",
                                      headers={"Content-Type": "application/json"})
        assert status == 400
        _, _, slot = await api.call("GET", "/api/slots/slot-002")
        assert slot["provider_id"] == "" and slot["version"] == 1  # nothing was saved


async def test_a_stale_updated_at_or_if_match_is_409(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        _, headers, first = await api.call("GET", "/api/slots/slot-003")
        s.clock.advance(1)
        status, _, saved = await api.call("PUT", "/api/slots/slot-003",
                                          json={**SEPIA, "updated_at": first["updated_at"]})
        assert status == 200
        # a second admin still holding the first read loses, whichever way they send it
        status, _, body = await api.call("PUT", "/api/slots/slot-003", json={**SEPIA, "name": "late",
                                                                            "updated_at": first["updated_at"]})
        assert status == 409 and body["error"]["code"] == "conflict"
        status, _, _ = await api.call("PUT", "/api/slots/slot-003", json={**SEPIA, "name": "late"},
                                      headers={"If-Match": headers["ETag"]})
        assert status == 409
        status, _, _ = await api.call("PUT", "/api/slots/slot-003", json={**SEPIA, "name": "late"},
                                      headers={"If-Match": first["updated_at"]})
        assert status == 409
        status, _, _ = await api.call("PUT", "/api/slots/slot-003", json={**SEPIA, "name": "fresh"},
                                      headers={"If-Match": f'"{saved["version"]}"'})
        assert status == 200
        _, _, slot = await api.call("GET", "/api/slots/slot-003")
        assert slot["name"] == "fresh"


async def test_slot_writes_are_audited_with_the_admin_and_the_changed_fields(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        await api.call("PUT", "/api/slots/slot-005", json={"name": "Booth", **SEPIA})
        assert (await api.call("POST", "/api/slots/slot-005/reset_stats", json={}))[0] == 204
        _, _, audit = await api.call("GET", "/api/audit")
        reset, update = audit["data"][:2]
        assert (update["actor"], update["source"], update["action"], update["target"]) == \
            ("admin:serg", "http", "slot.update", "slot-005")
        assert update["details"]["name"] == "Booth" and update["details"]["provider_id"] == "gemini"
        assert (reset["action"], reset["target"]) == ("slot.reset_stats", "slot-005")
        _, _, slot = await api.call("GET", "/api/slots/slot-005")
        assert slot["last_reset_at"] is not None


async def test_a_slot_edited_while_its_job_runs_keeps_the_jobs_snapshot(make_cfg, pg_dsn, emulator, photo_bytes):
    await emulator_control(emulator, latency_seconds=1.2)
    async with Studio(make_cfg(ingest__sync_response_seconds=5), pg_dsn) as s:
        api = await logged_in(s)
        await s.set_password()
        _, _, saved = await api.call("PUT", "/api/slots/slot-001", json={
            "provider_id": "gemini", "operation_id": "image_edit", "settings_json": {"prompt": "OLD prompt"}})
        running = asyncio.create_task(s.ingest("slot-001", photo_bytes))
        for _ in range(100):
            _, _, page = await api.call("GET", "/api/jobs", params={"status": "processing", "is_finalized": "false"})
            if page["data"]:
                break
            await asyncio.sleep(0.05)
        assert page["meta"]["total"] == 1, "the job never started"
        status, _, _ = await api.call("PUT", "/api/slots/slot-001", json={
            "settings_json": {"prompt": "NEW prompt"}, "updated_at": saved["updated_at"]})
        assert status == 200
        status, headers, _ = await running
        assert status == 200
        _, _, first = await api.call("GET", f"/api/jobs/{headers['X-Job-Id']}")
        assert first["job"]["state"] == "succeeded"
        await emulator_control(emulator, latency_seconds=0)
        status, _, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
    prompts = [r["prompt"] for r in await emulator_requests(emulator) if r["provider"] == "gemini"]
    assert prompts == ["OLD prompt", "NEW prompt"]
