"""The OpenAPI document tells the truth: one tour calls every endpoint for every status the
document declares, and each real answer is validated against the declared schema (adminapi.Api
does the validation on every call)."""
from __future__ import annotations

import asyncio

import aiohttp
import psycopg2
import pytest

from photoslot import auth
from photoslot.passwords import hash_password
from tests import logscan
from tests.conftest import FIXTURES, INGEST_PASSWORD
from tests.integration import adminapi
from tests.integration.adminapi import DOC, Api, all_api_operations, all_secured_routes, validate
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


def _documented() -> set[tuple[str, str, str]]:
    return {(path, method, status) for path, ops in DOC["paths"].items() for method, op in ops.items()
            for status in op["responses"]}


def _form(file: bytes | None = None, **fields) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    if file is not None:
        form.add_field("file", file, filename="x.jpg", content_type="image/jpeg")
    return form


async def test_served_document_is_openapi_3_and_matches_the_code(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        status, _, doc = await Api(s).call("GET", "/api/openapi.json", auth=False)
        assert status == 200 and doc["openapi"].startswith("3.")
        assert doc["paths"] == DOC["paths"] and doc["components"] == DOC["components"]
        assert doc["servers"] == [{"url": s.cfg.public_base_url()}]
        # every $ref resolves
        refs = set()

        def walk(node):
            if isinstance(node, dict):
                if "$ref" in node:
                    refs.add(node["$ref"].rsplit("/", 1)[-1])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(doc)
        assert refs <= set(doc["components"]["schemas"])


def test_the_validator_rejects_what_the_schema_forbids():
    slot = DOC["components"]["schemas"]["SlotSaved"]
    with pytest.raises(AssertionError):
        validate({"id": "slot-001", "updated_at": "yesterday", "version": 1, "slot": {}}, slot)
    with pytest.raises(AssertionError):
        validate({"error": {"code": "x", "message": "m"}}, {"$ref": "#/components/schemas/Error"})
    with pytest.raises(AssertionError):
        validate({"scope": "all"}, {"$ref": "#/components/schemas/PurgeRequest"})
    validate({"error": {"code": "x", "message": "m", "details": {}}}, {"$ref": "#/components/schemas/Error"})


def _remove_ingest_password(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM settings WHERE key = 'ingest_password'")
    finally:
        conn.close()


async def test_every_documented_status_of_every_endpoint_is_real(make_cfg, pg_dsn, emulator):
    adminapi.EXERCISED.clear()
    photo = (FIXTURES / "dslr_landscape.jpg").read_bytes()  # ~1.8 MB
    small = (FIXTURES / "small_photo.png").read_bytes()
    style = (FIXTURES / "template_style.jpg").read_bytes()
    cfg = make_cfg(ingest__max_upload_mb=1, ingest__sync_response_seconds=3,
                   auth__login_max_failures=2, auth__login_backoff_seconds=60)
    assert len(photo) > 1024 * 1024 > len(small)
    async with Studio(cfg, pg_dsn) as s:
        api = Api(s)
        call = api.call
        await s.set_password()
        await s.configure("slot-001")

        # auth
        await api.login()
        assert (await call("POST", "/api/login", data=b"[]", headers={"Content-Type": "application/json"},
                           auth=False))[0] == 400
        for _ in range(2):
            assert (await call("POST", "/api/login", json={"username": "igor", "password": "x"}, auth=False))[0] == 401
        assert (await call("POST", "/api/login", json={"username": "igor", "password": "x"}, auth=False))[0] == 429
        await call("GET", "/api/openapi.json", auth=False)
        for method, path, permission in all_secured_routes():
            assert (await call(method, path, auth=False))[0] == 401
            token = auth.issue_token(s.cfg, "serg", now=s.clock.now(),
                                     permissions=[p for p in auth.PERMISSIONS if p != permission])["access_token"]
            assert (await call(method, path, token=token))[0] == 403
        # every /api operation refuses a query parameter it does not name (before doing anything)
        for method, path in all_api_operations():
            status, _, body = await call(method, path, params={"bogus": "1"})
            assert status == 422 and "unknown query parameter" in body["error"]["details"]["bogus"], (method, path)
        status, _, body = await call("GET", "/api/jobs", params=[("page", "1"), ("page", "2")])
        assert status == 422 and body["error"]["details"] == {"page": "given more than once"}
        assert (await call("POST", "/api/logout"))[0] == 204
        assert (await call("POST", "/api/logout"))[0] == 401  # that session has ended
        await api.login()

        # catalogue and slots
        await call("GET", "/api/providers")
        await call("GET", "/api/providers/health")
        await call("GET", "/api/slots", params={"provider_id": "gemini"})
        _, _, slot = await call("GET", "/api/slots/slot-002")
        assert (await call("GET", "/api/slots/slot-099"))[0] == 404
        put = "/api/slots/slot-002"
        assert (await call("PUT", put, json={"provider_id": "gemini", "operation_id": "style_transfer",
                                             "settings_json": {"prompt": "paint it"}}))[0] == 422
        assert (await call("PUT", put, data=b"{", headers={"Content-Type": "application/json"}))[0] == 400
        assert (await call("PUT", "/api/slots/slot-016", json={}))[0] == 404
        s.clock.advance(0.01)
        assert (await call("PUT", put, json={"name": "Style", "provider_id": "gemini", "operation_id": "image_edit",
                                             "settings_json": {"prompt": "p"}, "updated_at": slot["updated_at"]}))[0] == 200
        assert (await call("PUT", put, json={"name": "x", "updated_at": slot["updated_at"]}))[0] == 409
        assert (await call("POST", "/api/slots/slot-002/reset_stats", json={}))[0] == 204
        assert (await call("POST", "/api/slots/slot-020/reset_stats", json={}))[0] == 404

        # settings
        await call("GET", "/api/settings")
        assert (await call("PUT", "/api/settings", json={"ingest": {"sync_response_timeout_sec": 3}}))[0] == 200
        assert (await call("PUT", "/api/settings", json={"ingest": {"sync_response_timeout_sec": 600}}))[0] == 422
        assert (await call("PUT", "/api/settings", data=b"x", headers={"Content-Type": "application/json"}))[0] == 400
        _, _, shown = await call("POST", "/api/settings/ingest-password/reveal")
        assert shown["value"] == INGEST_PASSWORD
        _, _, made = await call("POST", "/api/settings/ingest-password/generate")
        assert (await call("POST", "/api/settings/ingest-password/reveal"))[2]["value"] == made["value"]
        logscan.secret(made["value"])
        await s.ctx.db.execute("setting_upsert", key="ingest_password", value=hash_password(INGEST_PASSWORD),
                               now=s.clock.now(), actor="an older photoslot")
        assert (await call("POST", "/api/settings/ingest-password/reveal"))[0] == 409  # a hash only: nothing to show
        _remove_ingest_password(pg_dsn)
        assert (await call("POST", "/api/settings/ingest-password/reveal"))[0] == 404
        await s.set_password()

        # template media (slot-003 on style transfer needs a 'style' template)
        _, _, saved = await call("PUT", "/api/slots/slot-003", json={
            "provider_id": "gemini", "operation_id": "image_edit", "settings_json": {"prompt": "p"}})
        status, _, _ = await call("POST", "/api/template-media/register",
                                  data=_form(style, slot_id="slot-004", setting_key="style"))
        assert status == 422  # slot-004 is not configured
        await call("PUT", "/api/slots/slot-004", json={"provider_id": "gemini", "operation_id": "style_transfer",
                                                       "settings_json": {"prompt": "in this style"},
                                                       "enabled": False})
        status, _, first = await call("POST", "/api/template-media/register",
                                      data=_form(style, slot_id="slot-004", setting_key="style", label="oil"))
        assert status == 201 and first["setting_key"] == "style"
        assert (await call("POST", "/api/template-media/register",
                           data=_form(style, slot_id="slot-004", setting_key="style")))[0] == 409
        assert (await call("POST", "/api/template-media/register",
                           data=_form(style, slot_id="slot-016", setting_key="style")))[0] == 404
        assert (await call("POST", "/api/template-media/register",
                           data=_form(photo, slot_id="slot-004", setting_key="style", replace="true")))[0] == 413
        assert (await call("POST", "/api/template-media/register",
                           data=_form(b"GIF89a not for us" * 10, slot_id="slot-004", setting_key="style",
                                     replace="true")))[0] == 415
        assert (await call("POST", "/api/template-media/register", data=b"plain",
                           headers={"Content-Type": "text/plain"}))[0] == 400
        # a second slot uses the same template → deleting it for slot-004 alone is refused
        await call("PUT", "/api/slots/slot-005", json={"provider_id": "gemini", "operation_id": "style_transfer",
                                                       "settings_json": {"prompt": "p",
                                                                         "templates": {"style": first["id"]}}})
        tpl_path = f"/api/template-media/{first['id']}"
        assert (await call("DELETE", tpl_path, params={"slot_id": "slot-004", "setting_key": "style"}))[0] == 409
        assert (await call("DELETE", tpl_path, params={"slot_id": "slot-004", "setting_key": "style",
                                                       "force": "true"}))[0] == 204
        assert (await call("DELETE", tpl_path, params={"slot_id": "slot-004", "setting_key": "style"}))[0] == 404

        # public media links
        status, _, link = await call("POST", "/api/media/register", data=_form(small))
        assert status == 201
        media_path = link["public_url"].replace(s.cfg.public_base_url(), "")
        assert (await call("GET", media_path, auth=False))[0] == 200
        assert (await call("POST", "/api/media/register", data=_form(photo)))[0] == 413
        assert (await call("POST", "/api/media/register", data=_form(b"%PDF-1.4 nope" * 10)))[0] == 415
        assert (await call("POST", "/api/media/register", data=_form(small, job_id="x")))[0] == 422
        assert (await call("POST", "/api/media/register",
                           data=_form(small, job_id="00000000-0000-0000-0000-000000000000")))[0] == 404
        assert (await call("POST", "/api/media/register", data=b"x", headers={"Content-Type": "text/plain"}))[0] == 400
        assert (await call("GET", "/public/media/00000000-0000-0000-0000-000000000000", auth=False))[0] == 404
        s.clock.advance(10)
        assert (await call("GET", media_path, auth=False))[0] == 410
        s.clock.advance(-10)

        # purge
        assert (await call("POST", "/api/media/cache/purge", json={"scope": "media_objects"}))[0] == 202
        assert (await call("POST", "/api/media/cache/purge", json={"scope": "everything"}))[0] == 422
        assert (await call("POST", "/api/media/cache/purge", data=b"-", headers={"Content-Type": "application/json"}))[0] == 400

        # a real job, then jobs, stats, results
        status, headers, _ = await s.ingest("slot-001", small)
        assert status == 200, _
        job_id = headers["X-Job-Id"]
        await call("GET", "/api/jobs", params={"is_finalized": "true"})
        _, _, window = await call("GET", "/api/jobs", params={"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"})
        assert window["meta"]["total"] == 0
        assert (await call("GET", "/api/jobs", params={"from": "yesterday"}))[0] == 422
        assert (await call("GET", "/api/jobs", params={"page": "0"}))[0] == 422
        assert (await call("GET", "/api/jobs", params={"slot_id": "slot-777"}))[0] == 404
        await call("GET", f"/api/jobs/{job_id}")
        assert (await call("GET", "/api/jobs/00000000-0000-0000-0000-000000000000"))[0] == 404
        assert (await call("POST", f"/api/jobs/{job_id}/cancel"))[0] == 409  # it succeeded already
        assert (await call("POST", "/api/jobs/00000000-0000-0000-0000-000000000000/cancel"))[0] == 404
        parked = await s.queue_job(slot={"id": "slot-001", "provider_id": "nobody", "operation_id": "image_edit",
                                         "settings_json": {}})  # no worker claims it: it stays pending
        assert (await call("POST", f"/api/jobs/{parked}/cancel"))[0] == 200
        await call("GET", "/api/stats/slot-001")
        assert (await call("GET", "/api/stats/slot-001", params={"group_by": "year"}))[0] == 422
        assert (await call("GET", "/api/stats/slot-000"))[0] == 404
        await call("GET", "/api/stats/series", params={"slot_id": "slot-001", "period": "7d"})
        _, _, series = await call("GET", "/api/stats/series")
        assert series["slot_id"] is None and series["summary"]["success"] >= 1
        assert (await call("GET", "/api/stats/series", params={"period": "1y"}))[0] == 422
        assert (await call("GET", "/api/stats/series", params={"slot_id": "slot-000"}))[0] == 404
        status, shot_headers, _ = await call("POST", "/api/slots/slot-001/test_shot", data=_form(small))
        assert status == 200 and shot_headers["X-Test-Shot-Outcome"] == "succeeded"
        both = await asyncio.gather(*(call("POST", "/api/slots/slot-001/test_shot", data=_form(small))
                                      for _ in range(2)))
        assert sorted(status for status, _, _ in both) == [200, 429]  # one test shot of a slot at a time
        assert (await call("POST", "/api/slots/slot-001/test_shot", data=b"x",
                           headers={"Content-Type": "text/plain"}))[0] == 400
        no_file = aiohttp.FormData()
        no_file.add_field("label", b"x", filename="x.txt")  # multipart, but no `file` field
        assert (await call("POST", "/api/slots/slot-001/test_shot", data=no_file))[0] == 422
        assert (await call("POST", "/api/slots/slot-099/test_shot", data=_form(small)))[0] == 404
        await call("GET", "/api/stats/global", params={"group_by": "week", "slot_id": "slot-001"})
        assert (await call("GET", "/api/stats/global", params={"slot_id": "slot-099"}))[0] == 404
        assert (await call("GET", "/api/stats/global", params={"page": "-1"}))[0] == 422
        await call("GET", "/api/audit", params={"limit": "5"})
        assert (await call("GET", "/api/audit", params={"limit": "0"}))[0] == 422
        for suffix in ("", "/thumbnail"):
            assert (await call("GET", f"/public/results/{job_id}{suffix}", auth=False))[0] == 200
            assert (await call("GET", f"/public/results/{'0' * 8}-0000-0000-0000-{'0' * 12}{suffix}",
                               auth=False))[0] == 404
        s.clock.advance(73 * 3600)
        for suffix in ("", "/thumbnail"):
            assert (await call("GET", f"/public/results/{job_id}{suffix}", auth=False))[0] == 410

    missing = sorted(_documented() - adminapi.EXERCISED)
    assert not missing, f"documented but never produced by the tour: {missing}"
