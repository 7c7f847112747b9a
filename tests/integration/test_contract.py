"""The admin API keeps the contract it was specified with (tests/fixtures/contract, README there).

One tour of a real studio calls every operation the contract names — with requests written in the
contract's shape, every enum value of every query parameter it names, and the error cases — and
checks each answer twice: against photoslot's own OpenAPI document (adminapi.Api) and against the
contract: a status the contract lists for the operation (or one of the deviations docs/API.md
lists, `DEVIATING_STATUSES` here), a JSON body valid under the contract's schema for it. Finally
every status of every operation must have been seen, but those the tour cannot bring about (each
with its reason, `NOT_IN_THE_TOUR`): the suite fails the day an answer drifts from the contract.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import re

import aiohttp
import pytest

from photoslot import auth
from tests.conftest import FIXTURES, INGEST_PASSWORD, emulator_control
from tests.integration.adminapi import DOC, Api, SchemaError, template_for, validate
from tests.integration.studio import Studio
from tests.integration.test_admin_jobs_stats import make_job

CONTRACT = FIXTURES / "contract"
NO_SUCH = "7b0a2c36-8f1e-4a57-9d3c-2a0e5f1b6c01"  # an id nothing has
OPERATIONS = json.loads((CONTRACT / "operations.json").read_text(encoding="utf-8"))["paths"]

# Statuses photoslot answers that the contract does not list for the operation; each is in
# docs/API.md, "Deviations from the contract", with its reason. ("*" = every /api operation.)
DEVIATING_STATUSES = {
    ("*", "*", "422"): "a query parameter the operation does not take, or one given twice",
    ("/api/jobs", "get", "404"): "slot_id names no slot (404, as every unknown slot)",
    ("/api/jobs", "get", "422"): "a filter value outside its enum or bounds (the contract lists 400)",
    ("/api/stats/{slot_id}", "get", "422"): "a bad range or grouping (the contract lists 400)",
    ("/api/stats/global", "get", "404"): "slot_id names no slot",
    ("/api/stats/global", "get", "422"): "a bad range, grouping, paging or provider (the contract lists 400)",
    ("/api/media/register", "post", "404"): "job_id names no job",
    ("/api/media/register", "post", "422"): "no file, or a job_id that is no UUID",
    ("/api/template-media/register", "post", "413"): "a template over ingest.max_upload_mb",
    ("/api/template-media/register", "post", "422"): "a missing field, or a role the slot's operation has not",
}

# Statuses the contract lists that this tour does not bring about, and why.
NOT_IN_THE_TOUR = {
    ("/api/providers", "get", "500"), ("/api/slots", "get", "500"), ("/api/slots/{slot_id}", "get", "500"),
    ("/api/slots/{slot_id}", "put", "500"), ("/api/slots/{slot_id}/reset_stats", "post", "500"),
    ("/api/settings", "get", "500"), ("/api/settings", "put", "500"), ("/api/media/cache/purge", "post", "500"),
    ("/api/jobs", "get", "500"), ("/api/jobs/{job_id}", "get", "500"), ("/api/media/register", "post", "500"),
    ("/api/template-media/register", "post", "500"), ("/api/template-media/{id}", "delete", "500"),
    ("/public/media/{id}", "get", "500"), ("/public/results/{job_id}", "get", "500"),
    ("/api/stats/{slot_id}", "get", "500"), ("/api/stats/global", "get", "500"),
    # 500 only for a bug; 503 only while PostgreSQL is down (tests/integration/test_db_outage.py)
    # — in the admin error shape, like every other error
    ("/api/media/register", "post", "503"), ("/api/template-media/{id}", "delete", "503"),
    ("/public/media/{id}", "get", "503"), ("/public/results/{job_id}", "get", "503"),
    # photoslot never answers these. Free-text filters: nothing to refuse
    ("/api/slots", "get", "400"),
    # a reset always succeeds on a slot that exists
    ("/api/slots/{slot_id}/reset_stats", "post", "409"),
    # bad query values are 422 (DEVIATING_STATUSES), a malformed id is 404
    ("/api/jobs", "get", "400"), ("/api/stats/{slot_id}", "get", "400"), ("/api/stats/global", "get", "400"),
    ("/public/media/{id}", "get", "400"), ("/public/results/{job_id}", "get", "400"),
    # no rate limit on admins' uploads or on the public links (the booth's door has its own)
    ("/api/media/register", "post", "429"), ("/public/media/{id}", "get", "429"),
    ("/public/results/{job_id}", "get", "429"),
}


@functools.cache
def schema(name: str) -> dict:
    return json.loads((CONTRACT / name).read_text(encoding="utf-8"))


def resolve(node: dict) -> dict:
    while "$ref" in node:
        node = schema(node["$ref"])
    return node


def conforms(value, name_or_schema) -> None:
    """`value` against the contract: its types, enums, required fields — photoslot's added fields allowed."""
    node = schema(name_or_schema) if isinstance(name_or_schema, str) else name_or_schema
    validate(value, node, resolve=resolve, closed=False)


def contract_template(path: str) -> str:
    found = [t for t in OPERATIONS if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path)]
    assert found, f"{path} is no operation of the contract"
    return min(found, key=lambda t: t.count("{"))  # /api/stats/global before /api/stats/{slot_id}


class ContractApi(Api):
    """An admin client whose every answer is checked against photoslot's document (Api.call) and the contract."""

    def __init__(self, studio) -> None:
        super().__init__(studio)
        self.seen: set[tuple[str, str, str]] = set()

    async def own(self, method: str, path: str, **kw):
        """An operation of photoslot's own, not the contract's (checked against photoslot's document only)."""
        return await super().call(method, path, **kw)

    async def call(self, method: str, path: str, **kw):
        status, headers, body = await super().call(method, path, **kw)
        template, verb = contract_template(path), method.lower()
        op = OPERATIONS[template][verb]
        code = str(status)
        self.seen.add((template, verb, code))
        if code in op["responses"]:
            spec = op["responses"][code]
        else:
            deviation = (template, verb, code) in DEVIATING_STATUSES or (
                template.startswith("/api/") and ("*", "*", code) in DEVIATING_STATUSES)
            assert deviation, f"{method} {template} answered {code}, which the contract does not list: {body!r:.300}"
            spec = "Error.json"
        if spec is None:
            assert body in (None, b""), f"{method} {template} {code} has a body"
        elif isinstance(spec, dict):  # a binary answer
            assert headers["Content-Type"].split(";")[0] in spec["content"], headers["Content-Type"]
        else:
            try:
                conforms(body, spec)
            except SchemaError as exc:
                raise AssertionError(f"{method} {path} {code} breaks the contract's {spec}: {exc}") from None
        return status, headers, body


def _form(file: bytes | None, **fields) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    if file is not None:
        form.add_field("file", file, filename="x.jpg", content_type="image/jpeg")
    return form


def contract_request(name: str, body: dict) -> dict:
    """A request body checked against the contract's request schema first, closed: no field of ours."""
    validate(body, schema(name), resolve=resolve, closed=True)
    return body


def test_the_contract_files_are_valid_and_refuse_what_the_contract_forbids():
    for path in CONTRACT.glob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        refs = re.findall(r'"\$ref": "([^"]+)"', path.read_text(encoding="utf-8"))
        assert all((CONTRACT / r).is_file() for r in refs), path.name
        assert path.name == "operations.json" or doc["$schema"].endswith("2020-12/schema"), path.name
    for template, ops in OPERATIONS.items():
        for op in ops.values():
            for spec in op["responses"].values():
                assert spec is None or isinstance(spec, dict) or (CONTRACT / spec).is_file(), (template, spec)
    job = {"id": NO_SUCH, "slot_id": "slot-001", "status": "processing",
           "is_finalized": True, "failure_reason": None, "expires_at": "2026-05-01T12:00:48Z",
           "created_at": "2026-05-01T12:00:00Z", "updated_at": "2026-05-01T12:00:02Z"}
    conforms(job, "Job.json")
    for bad in ({"status": "succeeded"}, {"failure_reason": "admin_cancelled"}, {"slot_id": "slot-016"},
                {"expires_at": "tomorrow"}, {"is_finalized": "yes"}):
        with pytest.raises(SchemaError):
            conforms({**job, **bad}, "Job.json")
    with pytest.raises(SchemaError):
        conforms([], "ProviderListResponse.json")  # the bare list photoslot used to answer
    with pytest.raises(SchemaError):
        conforms({"data": []}, "SlotListResponse.json")  # without meta.total
    with pytest.raises(SchemaError):
        conforms({"data": [], "meta": {"page": 1, "page_size": 10, "total": 0},
                  "summary": {"timeouts": 0, "provider_errors": 0, "cancelled": 0, "errors": 0, "ingest_count": 0}},
                 "GlobalStatsResponse.json")  # without summary.total_runs
    with pytest.raises(SchemaError):
        contract_request("SettingsUpdateRequest.json", {"provider_keys": {"gemini": {"api_key": ""}}})
    with pytest.raises(SchemaError):  # closed: a request of ours is not the contract's shape
        contract_request("SlotUpdateRequest.json", {"name": "x", "provider_id": "gemini", "operation_id": "image_edit",
                                                    "settings_json": {}, "enabled": True})
    conforms({"error": {"code": "not_found", "message": "m", "details": {}}, "extra": 1}, "Error.json")  # open


@pytest.mark.usefixtures("clean_state")
async def test_every_operation_of_the_contract_answers_in_its_shape(make_cfg, pg_dsn, emulator):
    photo = (FIXTURES / "small_photo.png").read_bytes()
    large = (FIXTURES / "dslr_landscape.jpg").read_bytes()
    style = (FIXTURES / "template_style.jpg").read_bytes()
    cfg = make_cfg(ingest__sync_response_seconds=48, ingest__sync_response_bounds=[45, 60], ingest__max_upload_mb=1,
                   auth__login_max_failures=2, auth__login_backoff_seconds=60)
    async with Studio(cfg, pg_dsn) as s:
        api = ContractApi(s)
        call = api.call
        await s.set_password()

        # ---- POST /api/login
        await api.login()
        assert (await call("POST", "/api/login", json=contract_request(
            "LoginRequest.json", {"username": "igor", "password": "not-it"}), auth=False))[0] == 401
        assert (await call("POST", "/api/login", json={"username": "igor", "password": "x"}, auth=False))[0] == 401
        assert (await call("POST", "/api/login", json={"username": "igor", "password": "x"}, auth=False))[0] == 429
        assert (await call("POST", "/api/login", data=b"[1]", headers={"Content-Type": "application/json"},
                           auth=False))[0] == 400

        # ---- 401 without a token, 403 without the operation's permission, on every protected operation
        for template, ops in OPERATIONS.items():
            for method, op in ops.items():
                if op.get("auth") is False:
                    continue
                path = template.replace("{slot_id}", "slot-001").replace("{job_id}", NO_SUCH).replace("{id}", NO_SUCH)
                assert (await call(method.upper(), path, auth=False))[0] == 401, (method, template)
                # the permission the operation needs, as photoslot's own document names it
                needed = DOC["paths"][template_for(path)][method]["x-permission"]
                token = auth.issue_token(s.cfg, "serg", now=s.clock.now(),
                                         permissions=[p for p in auth.PERMISSIONS if p != needed])["access_token"]
                assert (await call(method.upper(), path, token=token))[0] == 403, (method, template)

        # ---- GET /api/providers
        _, _, body = await call("GET", "/api/providers")
        assert {p["id"] for p in body["providers"]} == {"gemini", "turbotext"}

        # ---- PUT /api/slots/{slot_id}, GET /api/slots/{slot_id}, GET /api/slots
        _, _, before = await call("GET", "/api/slots/slot-001")
        s.clock.advance(0.01)
        sepia = contract_request("SlotUpdateRequest.json", {
            "name": "Sepia booth", "provider_id": "gemini", "operation_id": "image_edit",
            "settings_json": {"prompt": "turn the photo sepia"}, "updated_at": before["updated_at"]})
        status, _, saved = await call("PUT", "/api/slots/slot-001", json=sepia)
        assert status == 200 and saved["id"] == "slot-001"
        assert (await call("PUT", "/api/slots/slot-001", json=sepia))[0] == 409  # that updated_at is stale now
        s.clock.advance(0.01)
        again = contract_request("SlotUpdateRequest.json", {**{k: v for k, v in sepia.items() if k != "updated_at"},
                                                            "name": "Sepia"})
        assert (await call("PUT", "/api/slots/slot-001", json=again, headers={"If-Match": saved["updated_at"]}))[0] == 200
        assert (await call("PUT", "/api/slots/slot-001", json=again, headers={"If-Match": saved["updated_at"]}))[0] == 409
        assert (await call("PUT", "/api/slots/slot-002", json={**again, "operation_id": "no_such_op"}))[0] == 422
        assert (await call("PUT", "/api/slots/slot-016", json=again))[0] == 404
        assert (await call("PUT", "/api/slots/slot-002", data=b"{", headers={"Content-Type": "application/json"}))[0] == 400
        # an operation that needs a template: saved disabled until one is bound (photoslot's `enabled`, a
        # deviation: the contract has no way to save a slot its booth could not use yet)
        status, _, _ = await call("PUT", "/api/slots/slot-002", json={
            "name": "Style", "provider_id": "gemini", "operation_id": "style_transfer",
            "settings_json": {"prompt": "in this style"}, "enabled": False})
        assert status == 200
        assert (await call("GET", "/api/slots/slot-000"))[0] == 404
        _, _, listed = await call("GET", "/api/slots")
        assert listed["meta"]["total"] == len(listed["data"]) == 15  # unconfigured slots too, in the contract's types
        for params, expected in (({"provider_id": "gemini"}, {"slot-001", "slot-002"}),
                                 ({"operation_id": "style_transfer"}, {"slot-002"}), ({"search": "sEPIA"}, {"slot-001"}),
                                 ({"provider_id": "turbotext"}, set())):
            _, _, listed = await call("GET", "/api/slots", params=params)
            assert {r["id"] for r in listed["data"]} == expected and listed["meta"]["total"] == len(expected), params

        # ---- GET / PUT /api/settings, in the contract's request shape
        _, _, settings = await call("GET", "/api/settings")
        assert settings["ingest"]["sync_response_timeout_sec"] == 48
        body = contract_request("SettingsUpdateRequest.json", {
            "dslr_password": {"value": "booth-password-2"}, "provider_keys": {"gemini": {"api_key": "not-the-key"}},
            "ingest": {"sync_response_timeout_sec": 50}})
        status, _, settings = await call("PUT", "/api/settings", json=body)
        assert status == 200 and settings["dslr_password"]["is_set"] and settings["ingest"]["sync_response_timeout_sec"] == 50
        assert settings["provider_keys"]["gemini"]["updated_by"] == "admin:serg"
        # the key was taken: the provider now refuses photoslot's calls …
        status, headers, answer = await s.ingest("slot-001", photo, password="booth-password-2", content_type="image/png")
        assert status == 502, answer
        refused_job = headers["X-Job-Id"]
        status, _, _ = await call("PUT", "/api/settings", json=contract_request("SettingsUpdateRequest.json", {
            "provider_keys": {"gemini": {"api_key": "emulator-key"}}, "dslr_password": {"value": INGEST_PASSWORD}}))
        assert status == 200  # … and takes them again with the right one
        status, headers, _ = await s.ingest("slot-001", photo, content_type="image/png")
        assert status == 200
        booth_job = headers["X-Job-Id"]
        assert (await call("PUT", "/api/settings", json={"ingest": {"sync_response_timeout_sec": 61}}))[0] == 422
        assert (await call("PUT", "/api/settings", data=b"-", headers={"Content-Type": "application/json"}))[0] == 400

        # ---- template media
        status, _, template = await call("POST", "/api/template-media/register",
                                         data=_form(style, slot_id="slot-002", setting_key="style", label="oil"))
        assert status == 201 and template["slot_id"] == "slot-002"
        assert (await call("POST", "/api/template-media/register",
                           data=_form(style, slot_id="slot-002", setting_key="style")))[0] == 409
        assert (await call("POST", "/api/template-media/register",
                           data=_form(style, slot_id="slot-099", setting_key="style")))[0] == 404
        assert (await call("POST", "/api/template-media/register",
                           data=_form(b"GIF89a not a photo" * 9, slot_id="slot-002", setting_key="style",
                                      replace="true")))[0] == 415
        assert (await call("POST", "/api/template-media/register",
                           data=_form(large, slot_id="slot-002", setting_key="style", replace="true")))[0] == 413
        assert (await call("POST", "/api/template-media/register",
                           data=_form(style, slot_id="slot-002", setting_key="face", replace="true")))[0] == 422
        assert (await call("POST", "/api/template-media/register", data=b"x",
                           headers={"Content-Type": "text/plain"}))[0] == 400
        await call("PUT", "/api/slots/slot-003", json=contract_request("SlotUpdateRequest.json", {
            "name": "Style too", "provider_id": "gemini", "operation_id": "style_transfer",
            "settings_json": {"prompt": "p", "templates": {"style": template["id"]}}}))
        where = {"slot_id": "slot-002", "setting_key": "style"}
        assert (await call("DELETE", f"/api/template-media/{template['id']}", params=where))[0] == 409  # slot-003 too
        assert (await call("DELETE", f"/api/template-media/{template['id']}", params={**where, "force": "true"}))[0] == 204
        assert (await call("DELETE", f"/api/template-media/{template['id']}", params=where))[0] == 404
        assert (await call("DELETE", f"/api/template-media/{template['id']}", params={"slot_id": "slot-002"}))[0] == 422

        # ---- media links and the cache purge
        status, _, link = await call("POST", "/api/media/register", data=_form(photo, job_id=booth_job))
        assert status == 201
        status, _, link = await call("POST", "/api/media/register", data=_form(photo))
        assert status == 201 and link["public_url"].startswith(s.cfg.public_base_url())
        media_path = link["public_url"][len(s.cfg.public_base_url()):]
        assert (await call("GET", media_path, auth=False))[0] == 200
        assert (await call("POST", "/api/media/register", data=_form(large)))[0] == 413
        assert (await call("POST", "/api/media/register", data=_form(b"%PDF-1.7 no" * 9)))[0] == 415
        assert (await call("POST", "/api/media/register", data=_form(photo, job_id="nope")))[0] == 422
        assert (await call("POST", "/api/media/register", data=_form(photo, job_id=NO_SUCH)))[0] == 404
        assert (await call("POST", "/api/media/register", data=b"x", headers={"Content-Type": "text/plain"}))[0] == 400
        assert (await call("GET", f"/public/media/{NO_SUCH}", auth=False))[0] == 404
        s.clock.advance(60)
        assert (await call("GET", media_path, auth=False))[0] == 410
        s.clock.advance(-60)
        status, _, queued = await call("POST", "/api/media/cache/purge")  # the contract's body is optional
        assert status == 202 and queued["scope"] == "media_objects"
        status, _, queued = await call("POST", "/api/media/cache/purge", json=contract_request(
            "MediaCachePurgeRequest.json", {"scope": "media_objects"}))
        assert status == 202
        assert (await call("POST", "/api/media/cache/purge", json={"scope": "everything"}))[0] == 422
        assert (await call("POST", "/api/media/cache/purge", data=b"[", headers={"Content-Type": "application/json"}))[0] == 400

        # ---- jobs: a booth shot (above), a test shot, and finished ones of every kind
        status, headers, _ = await api.own("POST", "/api/slots/slot-001/test_shot", data=_form(photo))
        assert status == 200
        test_job = headers["X-Job-Id"]
        made = {}
        for reason, claimed in (("timeout", True), ("provider_refused", True), ("client_gone", True),
                                ("admin_cancelled", False), ("internal_error", True)):
            made[reason] = str((await make_job(s, "slot-004", provider="nobody", ms=300, reason=reason,
                                               claimed=claimed))["id"])
        waiting = str(await s.queue_job("slot-005", slot={"id": "slot-005", "provider_id": "nobody",
                                                          "operation_id": "image_edit", "settings_json": {}}))
        _, _, page = await call("GET", "/api/jobs")
        assert page["meta"] == {"page": 1, "page_size": 20, "total": 9}  # the contract's default page
        deadlines = [v["job"]["expires_at"] for v in page["data"]]
        assert deadlines == sorted(deadlines)  # its default order: expires_at ascending
        for param in OPERATIONS["/api/jobs"]["get"]["query"]:
            for value in param["schema"].get("enum", ()):
                status, _, _ = await call("GET", "/api/jobs", params={param["name"]: value})
                assert status == 200, (param["name"], value)

        async def found(**params) -> set[str]:
            _, _, page = await call("GET", "/api/jobs", params={**params, "page_size": "100"})
            return {v["job"]["id"] for v in page["data"]}

        assert await found(failure_reason="cancelled") == {made["client_gone"], made["admin_cancelled"]}
        assert await found(failure_reason="provider_error") == {made["provider_refused"], made["internal_error"],
                                                                refused_job}
        assert await found(failure_reason="timeout") == {made["timeout"]}
        assert await found(status="pending", is_finalized="false") == {waiting}
        assert await found(status="pending") == {waiting, made["admin_cancelled"]}  # cancelled before a worker took it
        assert await found(is_finalized="true", slot_id="slot-001") == {refused_job, booth_job, test_job}
        assert await found(failure_reason="provider_error", slot_id="slot-001") == {refused_job}
        assert booth_job in await found(status="processing", is_finalized="true")
        _, _, small = await call("GET", "/api/jobs", params={"page": "2", "page_size": "3", "sort_by": "created_at",
                                                             "sort_order": "desc"})
        assert small["meta"] == {"page": 2, "page_size": 3, "total": 9} and len(small["data"]) == 3
        assert (await call("GET", "/api/jobs", params={"slot_id": "slot-016"}))[0] == 404
        assert (await call("GET", "/api/jobs", params={"failure_reason": "oops"}))[0] == 422
        _, _, view = await call("GET", f"/api/jobs/{booth_job}")
        assert view["job"]["is_finalized"] and view["job"]["failure_reason"] is None
        assert (await call("GET", f"/api/jobs/{NO_SUCH}"))[0] == 404

        # ---- stats: every enum value, the defaults, the filters
        for template in ("/api/stats/{slot_id}", "/api/stats/global"):
            path = template.replace("{slot_id}", "slot-001")
            for param in OPERATIONS[template]["get"]["query"]:
                for value in param["schema"].get("enum", ()):
                    status, _, _ = await call("GET", path, params={param["name"]: value})
                    assert status == 200, (template, param["name"], value)
        _, _, slot_stats = await call("GET", "/api/stats/slot-001")
        assert slot_stats["range"]["group_by"] == "day" and slot_stats["summary"]["title"] == "Sepia"
        assert slot_stats["summary"]["ingest_count"] == 2  # the 502 and the 200; not the test shot
        _, _, overall = await call("GET", "/api/stats/global")
        assert overall["range"]["group_by"] == "week" and overall["meta"]["page_size"] == 10
        starts = [p["period_start"] for p in overall["data"]]
        assert starts == sorted(starts, reverse=True)  # the contract's default order: newest first
        assert overall["summary"]["total_runs"] == 7  # the finished booth shots: the test shot is not one
        _, _, one = await call("GET", "/api/stats/global", params={"slot_id": "slot-004"})
        assert one["summary"]["total_runs"] == 5 and one["summary"]["cancelled"] == 2
        _, _, by_provider = await call("GET", "/api/stats/global", params={"provider_id": "gemini"})
        assert by_provider["summary"]["total_runs"] == 2
        _, _, ranged = await call("GET", "/api/stats/global", params={
            "from": (s.clock.now() - dt.timedelta(days=30)).isoformat(), "to": s.clock.now().isoformat(),
            "group_by": "day", "sort_by": "ingest_count", "page_size": "50"})
        assert ranged["meta"]["total"] == len(ranged["data"]) in (30, 31)
        assert (await call("GET", "/api/stats/global", params={"slot_id": "slot-016"}))[0] == 404
        assert (await call("GET", "/api/stats/global", params={"group_by": "hour"}))[0] == 422
        assert (await call("GET", "/api/stats/slot-001", params={"group_by": "month"}))[0] == 422
        assert (await call("GET", "/api/stats/slot-016"))[0] == 404

        # ---- reset_stats, with and without the contract's optional empty body
        assert (await call("POST", "/api/slots/slot-001/reset_stats"))[0] == 204
        assert (await call("POST", "/api/slots/slot-001/reset_stats", json={}))[0] == 204
        assert (await call("POST", "/api/slots/slot-016/reset_stats"))[0] == 404

        # ---- the result download, then its end
        status, headers, _ = await call("GET", f"/public/results/{booth_job}", auth=False)
        assert status == 200 and headers["Content-Disposition"].startswith("attachment; filename=")
        assert (await call("GET", f"/public/results/{NO_SUCH}", auth=False))[0] == 404
        s.clock.advance(73 * 3600)
        assert (await call("GET", f"/public/results/{booth_job}", auth=False))[0] == 410
        await emulator_control(emulator, reset=True)

    every = {(t, m, code) for t, ops in OPERATIONS.items() for m, op in ops.items() for code in op["responses"]}
    assert not NOT_IN_THE_TOUR - every, "NOT_IN_THE_TOUR names a status the contract does not list"
    missing = every - api.seen - NOT_IN_THE_TOUR
    assert not missing, f"the contract lists these, and the tour never saw them: {sorted(missing)}"
    assert not NOT_IN_THE_TOUR & api.seen, f"answered after all: {sorted(NOT_IN_THE_TOUR & api.seen)}"
