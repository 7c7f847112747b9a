"""Live settings over the admin API: never a secret out, bounds, password rotation under load."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest

from tests.conftest import INGEST_PASSWORD, emulator_control
from tests.integration.adminapi import logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")



async def test_get_settings_shows_state_and_bounds_but_no_secret(make_cfg, pg_dsn):
    cfg = make_cfg(ingest__sync_response_seconds=3, ingest__sync_response_bounds=[2, 30])
    async with Studio(cfg, pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, _, body = await api.call("GET", "/api/settings")
        assert status == 200
        assert body["dslr_password"] == {"is_set": False, "updated_at": None, "updated_by": None, "revealable": False}
        assert body["ingest"] == {"sync_response_timeout_sec": 3, "ingest_ttl_sec": 3, "bounds": [2, 30]}
        assert body["media_cache"] == {"processed_media_ttl_hours": 72, "public_link_ttl_sec": 3}
        # the test config sets the emulator's key in the config file: configured, value not shown
        assert body["provider_keys"]["gemini"]["is_configured"] is True
        assert body["provider_keys"]["gemini"]["source"] == "config"
        assert "emulator-key" not in json.dumps(body)


async def test_put_rotates_the_password_sets_window_and_retention(make_cfg, pg_dsn, caplog):
    caplog.set_level(logging.DEBUG)
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, _, body = await api.call("PUT", "/api/settings", json={
            "dslr_password": {"value": "new-booth-pass"}, "ingest": {"sync_response_timeout_sec": 4.5},
            "media_cache": {"processed_media_ttl_hours": 24},
            "provider_keys": {"turbotext": {"value": "tt-secret-key-123"}}})
        assert status == 200
        assert body["dslr_password"]["is_set"] is True and body["dslr_password"]["updated_by"] == "admin:serg"
        assert body["ingest"]["sync_response_timeout_sec"] == 4.5 and body["ingest"]["ingest_ttl_sec"] == 4.5
        assert body["media_cache"]["processed_media_ttl_hours"] == 24
        assert body["provider_keys"]["turbotext"]["is_configured"] is True
        assert body["provider_keys"]["turbotext"]["source"] == "settings"
        _, _, shown = await api.call("GET", "/api/settings")
        _, _, audit = await api.call("GET", "/api/audit")
        entry = audit["data"][0]
        assert (entry["actor"], entry["source"], entry["action"]) == ("admin:serg", "http", "settings.update")
        assert entry["details"]["ingest_password"] == "<changed>"
        assert entry["details"]["provider_key.turbotext"] == "<changed>"
        assert entry["details"]["sync_response_seconds"] == 4.5
        everything = json.dumps([body, shown, audit]) + caplog.text
        assert "new-booth-pass" not in everything and "tt-secret-key-123" not in everything
        row = await s.ctx.db.fetchone("settings_all")  # the database holds a hash, not the password
        stored = json.dumps([r for r in await s.ctx.db.fetchall("settings_all")], default=str)
        assert row is not None and "new-booth-pass" not in stored


@pytest.mark.parametrize("body, field", [
    ({"ingest": {"sync_response_timeout_sec": 61}}, "ingest.sync_response_timeout_sec"),
    ({"ingest": {"sync_response_timeout_sec": 0.5}}, "ingest.sync_response_timeout_sec"),
    ({"ingest": {"sync_response_timeout_sec": "48"}}, "ingest.sync_response_timeout_sec"),
    ({"ingest": {"ingest_ttl_sec": 10}}, "ingest.ingest_ttl_sec"),
    ({"media_cache": {"processed_media_ttl_hours": 0}}, "media_cache.processed_media_ttl_hours"),
    ({"dslr_password": {"value": "abc"}}, "dslr_password.value"),
    ({"provider_keys": {"gemini": {"value": "short"}}}, "provider_keys.gemini"),
    ({"provider_keys": {"openai": {"value": "whatever-long"}}}, "provider_keys.openai"),
    ({"t_sync": 50}, "t_sync"),
    ({}, "settings"),
])
async def test_put_out_of_bounds_or_unknown_is_422_and_changes_nothing(make_cfg, pg_dsn, body, field):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, _, answer = await api.call("PUT", "/api/settings", json=body)
        assert status == 422, answer
        assert field in answer["error"]["details"], answer
        _, _, shown = await api.call("GET", "/api/settings")
        assert shown["ingest"]["sync_response_timeout_sec"] == 3 and not shown["dslr_password"]["is_set"]


async def test_put_malformed_body_is_400(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        for raw in (b"nope", b"[]", b'"x"'):
            status, _, body = await api.call("PUT", "/api/settings", data=raw,
                                             headers={"Content-Type": "application/json"})
            assert status == 400 and body["error"]["code"] == "bad_request"


async def test_password_rotation_while_ingests_are_in_flight(make_cfg, pg_dsn, emulator, photo_bytes):
    """The new password works on the very next ingest, the old one stops; a shot already accepted
    with the old one still gets its photo."""
    await emulator_control(emulator, latency_seconds=1.0)
    async with Studio(make_cfg(ingest__sync_response_seconds=5), pg_dsn) as s:
        api = await logged_in(s)
        await s.set_password(INGEST_PASSWORD)
        await s.configure("slot-001")
        in_flight = [asyncio.create_task(s.ingest("slot-001", photo_bytes)) for _ in range(2)]
        await asyncio.sleep(0.4)
        status, _, _ = await api.call("PUT", "/api/settings", json={"dslr_password": {"value": "rotated-pass-2"}})
        assert status == 200
        old, new = await asyncio.gather(s.ingest("slot-001", photo_bytes),
                                        s.ingest("slot-001", photo_bytes, password="rotated-pass-2"))
        assert old[0] == 401 and json.loads(old[2])["failure_reason"] == "invalid_password"
        assert new[0] == 200
        assert [r[0] for r in await asyncio.gather(*in_flight)] == [200, 200]


async def test_new_window_and_retention_apply_to_the_next_job(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        api = await logged_in(s)
        await s.set_password()
        await s.configure("slot-001")
        await api.call("PUT", "/api/settings", json={"ingest": {"sync_response_timeout_sec": 4},
                                                     "media_cache": {"processed_media_ttl_hours": 2}})
        status, headers, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
        job = await s.job(headers["X-Job-Id"])
        assert job["expires_at"] - job["created_at"] == dt.timedelta(seconds=4)
        assert job["result_expires_at"] - job["finalized_at"] == dt.timedelta(hours=2)


async def test_a_provider_key_set_over_the_api_is_used_from_the_next_job(make_cfg, pg_dsn, photo_bytes):
    """The emulator checks API keys: with a wrong key in the config the shot fails; the key PUT over
    the API makes the next one work, without a restart."""
    cfg = make_cfg(providers__gemini__api_key="wrong-config-key")
    async with Studio(cfg, pg_dsn) as s:
        api = await logged_in(s)
        await s.set_password()
        await s.configure("slot-001")
        status, _, body = await s.ingest("slot-001", photo_bytes)
        assert status in (502, 503), body
        status, _, shown = await api.call("PUT", "/api/settings",
                                          json={"provider_keys": {"gemini": {"value": "emulator-key"}}})
        assert status == 200 and shown["provider_keys"]["gemini"]["source"] == "settings"
        status, _, _ = await s.ingest("slot-001", photo_bytes)
        assert status == 200
