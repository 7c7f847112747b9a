"""The OpenAPI 3.0 document of photoslot's HTTP API, served at `GET /api/openapi.json`.

Built in code next to the handlers so it cannot drift silently: tests/integration/test_openapi.py
calls every endpoint and validates each real answer against the schema declared here.
Schemas use a small JSON-schema subset (type, nullable, properties, required, items, enum,
format, minimum/maximum, additionalProperties, $ref).
"""
from __future__ import annotations

import copy

from aiohttp import web

from photoslot import __version__
from photoslot.auth import PERMISSIONS
from photoslot.jobs import STATES as JOB_STATES
from photoslot.outcomes import CONTRACT_REASONS, CONTRACT_STATUSES, FAILURE_ANSWERS
from photoslot.server.toolkit import answer, endpoint

routes = web.RouteTableDef()


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict, required: list[str] | None = None, *, extra: bool | dict = True) -> dict:
    out = {"type": "object", "properties": props, "required": list(props) if required is None else required}
    if extra is not True:
        out["additionalProperties"] = extra
    return out


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
UUID = {"type": "string", "format": "uuid"}
SLOT_ID = {"type": "string", "pattern": "^slot-[0-9]{3}$"}

COUNTS = {
    "ingest_count": INT, "success": INT, "timeouts": INT, "provider_errors": INT, "cancelled": INT,
    "internal_errors": INT, "errors": INT, "finalized": INT, "in_progress": INT,
    "p50_ms": _nullable(INT), "p95_ms": _nullable(INT), "timeout_share": NUM,
    "gemini_tokens": INT, "gemini_requests": INT, "turbotext_attempts": INT,
    "gemini_cost": NUM, "turbotext_cost": NUM, "estimated_cost": NUM, "currency": STR,
    "requests": INT, "refused": INT, "answered_200": INT, "answered_504": INT, "provider_unavailable": INT,
    "answered_200_share": NUM, "answered_504_share": NUM, "provider_unavailable_share": NUM, "provider_calls": INT,
    "test_shots": INT, "test_shots_succeeded": INT,
    # the admin API contract's names: total_runs = finalized, p95_response_ms = p95_ms,
    # total_cost = estimated_cost, error_rate_percent = 100 × errors / finalized
    "total_runs": INT, "avg_response_ms": _nullable(INT), "p95_response_ms": _nullable(INT),
    "error_rate_percent": NUM, "total_cost": NUM,
}

SCHEMAS: dict[str, dict] = {
    "Error": _obj({"error": _obj({"code": STR, "message": STR, "details": {"type": "object"}})}),
    "LoginRequest": _obj({"username": STR, "password": STR}),
    "Token": _obj({"access_token": STR, "token_type": {"type": "string", "enum": ["bearer"]},
                   "expires_in_sec": INT}),
    "Parameter": _obj({"type": {"type": "string", "enum": ["int", "float", "str", "bool"]}, "description": STR,
                       "required": BOOL, "choices": {"type": "array", "items": STR},
                       "max_words": INT}, ["type", "description", "required"]),
    "Operation": _obj({"id": STR, "name": STR, "description": STR, "prompt_required": BOOL,
                       "needs": {"type": "array", "items": STR},
                       "parameters": {"type": "object", "additionalProperties": _ref("Parameter")}}),
    "Provider": _obj({"id": STR, "name": STR, "operations": {"type": "array", "items": _ref("Operation")}},
                     ["id", "name", "operations"]),
    "ProviderList": _obj({"providers": {"type": "array", "items": _ref("Provider")}}),
    "ProviderHealth": _obj({"provider": STR, "state": {"type": "string", "enum": ["up", "down"]}, "up": BOOL,
                            "reason": _nullable(STR), "quota_remaining": _nullable(INT),
                            "quota_remaining_at": _nullable(TIME),
                            "consecutive_failures": INT, "last_problem": _nullable(STR),
                            "last_failure_at": _nullable(TIME), "down_since": _nullable(TIME),
                            "retry_at": _nullable(TIME), "probe_running": BOOL, "retry_after_s": _nullable(INT),
                            "changed_at": _nullable(TIME), "summary": STR}),
    "RecentResult": _obj({"job_id": UUID, "thumbnail_url": STR, "download_url": STR, "completed_at": TIME,
                          "result_expires_at": TIME, "mime": STR, "size_bytes": INT}),
    # provider_id / operation_id are "" for a slot not configured yet (`configured` false)
    "Slot": _obj({"id": SLOT_ID, "name": STR, "provider_id": STR, "operation_id": STR,
                  "settings_json": {"type": "object"}, "enabled": BOOL, "configured": BOOL, "version": INT,
                  "last_reset_at": _nullable(TIME), "created_at": TIME, "updated_at": TIME, "ingest_url": STR,
                  "last_result_at": _nullable(TIME)},
                 ["id", "name", "provider_id", "operation_id", "settings_json", "enabled", "version",
                  "last_reset_at", "created_at", "updated_at", "ingest_url"]),
    "SlotList": _obj({"data": {"type": "array", "items": _ref("Slot")},
                      "meta": _obj({"total": {"type": "integer", "minimum": 0}})}),
    "SlotDetail": {"allOf": [_ref("Slot"), _obj({"recent_results": {"type": "array", "items": _ref("RecentResult"),
                                                                     "maxItems": 10}})]},
    "SlotUpdate": _obj({"name": STR, "provider_id": STR, "operation_id": STR, "settings_json": {"type": "object"},
                        "enabled": BOOL, "updated_at": TIME, "version": INT}, []),
    "SlotSaved": _obj({"id": SLOT_ID, "updated_at": TIME, "version": INT, "slot": _ref("Slot")}),
    # `source`: where the key in use comes from; absent while there is none
    "ProviderKeyState": _obj({"is_configured": BOOL, "source": {"type": "string", "enum": ["settings", "config"]},
                              "updated_at": _nullable(TIME), "updated_by": _nullable(STR)}, ["is_configured"]),
    "Settings": _obj({
        "dslr_password": _obj({"is_set": BOOL, "updated_at": _nullable(TIME), "updated_by": _nullable(STR),
                               "revealable": BOOL}, ["is_set", "updated_at", "updated_by"]),
        "provider_keys": _obj({"gemini": _ref("ProviderKeyState"), "turbotext": _ref("ProviderKeyState")}),
        "ingest": _obj({"sync_response_timeout_sec": NUM, "ingest_ttl_sec": NUM,
                        "bounds": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2}}),
        "media_cache": _obj({"processed_media_ttl_hours": NUM, "public_link_ttl_sec": NUM}),
    }),
    "SettingsUpdate": _obj({
        "dslr_password": _obj({"value": STR}),
        # {"api_key": …} (the contract's) or {"value": …} (photoslot's earlier spelling): exactly one
        "provider_keys": _obj({"gemini": _obj({"api_key": STR, "value": STR}, [], extra=False),
                               "turbotext": _obj({"api_key": STR, "value": STR}, [], extra=False)}, [], extra=False),
        "ingest": _obj({"sync_response_timeout_sec": NUM}),
        "media_cache": _obj({"processed_media_ttl_hours": NUM}),
    }, [], extra=False),
    "IngestPassword": _obj({"value": STR, "updated_at": TIME, "updated_by": STR}),
    "IngestError": _obj({"status": {"type": "string", "enum": ["error", "timeout"]}, "failure_reason": STR,
                         "details": STR, "job_id": UUID, "retry_after": INT}, ["status", "failure_reason", "details"]),
    "MediaObject": _obj({"id": UUID, "public_url": STR, "expires_at": TIME}),
    "TemplateMedia": _obj({"id": UUID, "slot_id": SLOT_ID, "setting_key": STR, "label": _nullable(STR),
                           "mime": STR, "size_bytes": INT, "created_at": TIME}),
    # the body is optional; without a scope, the temporary links only (purge.DEFAULT_SCOPE)
    "PurgeRequest": _obj({"scope": {"type": "string", "enum": ["full", "media_objects"],
                                    "default": "media_objects"}}, [], extra=False),
    "PurgeAccepted": _obj({"status": {"type": "string", "enum": ["queued_for_gc"]},
                           "scope": {"type": "string", "enum": ["full", "media_objects"]}, "job_id": UUID,
                           "expires_cutoff": TIME}),
    # status / failure_reason: the contract's coarser view; state / failure_code: photoslot's own
    # (docs/API.md, "The contract's view of a job")
    "Job": _obj({
        "id": UUID, "slot_id": SLOT_ID, "status": {"type": "string", "enum": list(CONTRACT_STATUSES)},
        "state": {"type": "string", "enum": list(JOB_STATES)}, "is_finalized": BOOL,
        "failure_reason": _nullable({"type": "string", "enum": list(CONTRACT_REASONS)}),
        "failure_code": _nullable({"type": "string", "enum": list(FAILURE_ANSWERS)}),
        "failure_detail": _nullable(STR), "provider_id": STR, "operation_id": STR,
        "provider_job_reference": _nullable(STR), "attempts": INT, "result_file_path": _nullable(STR),
        "result_mime_type": _nullable(STR), "result_size_bytes": _nullable(INT), "result_checksum": _nullable(STR),
        "result_expires_at": _nullable(TIME), "expires_at": TIME, "created_at": TIME, "updated_at": TIME,
        "finalized_at": _nullable(TIME), "started_at": _nullable(TIME), "answer_status": _nullable(INT),
        "provider_requests": INT, "provider_tokens": _nullable(INT), "poll_count": INT, "is_test": BOOL,
        "download_url": _nullable(STR)}),
    "JobAdminView": _obj({
        "job": _ref("Job"),
        "deadline": _obj({"expires_at": TIME, "remaining_ms": {"type": "integer", "minimum": 0},
                          "is_expired": BOOL}),
        "metrics": _obj({"queue_wait_ms": _nullable(INT), "processing_ms": _nullable(INT),
                         "total_elapsed_ms": _nullable(INT)}),
    }),
    "PageMeta": _obj({"page": {"type": "integer", "minimum": 1}, "page_size": {"type": "integer", "minimum": 1},
                      "total": {"type": "integer", "minimum": 0}}),
    "JobsPage": _obj({"data": {"type": "array", "items": _ref("JobAdminView")}, "meta": _ref("PageMeta")}),
    "Counts": _obj(COUNTS),
    "PeriodCounts": _obj({"period_start": TIME, "period_end": TIME, **COUNTS}),
    # a global period: whole UTC days, weeks or months, named by dates (period_end: the day after)
    "DatedPeriodCounts": _obj({"period_start": DATE, "period_end": DATE, **COUNTS}),
    "StatsRange": _obj({"from": TIME, "to": TIME, "group_by": {"type": "string",
                                                               "enum": ["hour", "day", "week", "month"]}}),
    "SlotStats": _obj({
        "slot_id": SLOT_ID, "range": _ref("StatsRange"),
        "summary": _obj({**COUNTS, "title": STR, "last_reset_at": _nullable(TIME), "counted_from": TIME}),
        "metrics": {"type": "array", "items": _ref("PeriodCounts")},
    }),
    "StatsSeries": _obj({
        "slot_id": _nullable(SLOT_ID), "period": {"type": "string", "enum": ["24h", "7d", "30d"]},
        "range": _ref("StatsRange"), "summary": _ref("Counts"),
        "metrics": {"type": "array", "items": _ref("PeriodCounts")},
    }),
    "GlobalStats": _obj({"range": _ref("StatsRange"), "summary": _ref("Counts"),
                         "data": {"type": "array", "items": _ref("DatedPeriodCounts")}, "meta": _ref("PageMeta")}),
    "AuditEntry": _obj({"id": INT, "at": TIME, "actor": STR, "source": STR, "action": STR,
                        "target": _nullable(STR), "details": {"type": "object"}}),
    "AuditPage": _obj({"data": {"type": "array", "items": _ref("AuditEntry")}}),
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict:
    return _json(_ref("Error"), description)


AUTH_ERRORS = {"401": _err("no, invalid, expired or forged token"), "403": _err("the token lacks the permission")}
# Every /api operation refuses a query parameter it does not name below, or one given twice
# (toolkit.check_query reads the names from this document).
QUERY_ERROR = _err("a query parameter this operation does not take, or one given twice (details names it)")


def _op(summary: str, permission: str | None, responses: dict, *, params: list | None = None,
        body: dict | None = None, tag: str = "admin") -> dict:
    op = {"summary": summary + (f" — needs `{permission}`" if permission else ""), "tags": [tag],
          "responses": {**({"422": QUERY_ERROR} if tag != "public" else {}), **responses,
                        **(AUTH_ERRORS if permission else {})}}
    if permission:
        op["security"] = [{"bearer": []}]
        op["x-permission"] = permission
    else:
        op["security"] = []
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def _q(name: str, schema: dict, description: str = "", *, default=None, required: bool = False) -> dict:
    if default is not None:
        schema = {**schema, "default": default}
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _p(name: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _body(schema: dict, content_type: str = "application/json", *, required: bool = True) -> dict:
    return {"required": required, "content": {content_type: {"schema": schema}}}


MULTIPART_MEDIA = _obj({"file": {"type": "string", "format": "binary"}, "job_id": UUID}, ["file"])
MULTIPART_TEMPLATE = _obj({"file": {"type": "string", "format": "binary"}, "slot_id": SLOT_ID,
                           "setting_key": {"type": "string", "enum": ["style", "face"]}, "label": STR,
                           "replace": BOOL}, ["file", "slot_id", "setting_key"])
BINARY = {"type": "string", "format": "binary"}

PATHS: dict[str, dict] = {
    "/api/login": {"post": _op("Log in as serg or igor; returns a bearer JWT", None, {
        "200": _json(_ref("Token"), "a token"), "400": _err("malformed body"),
        "401": _err("wrong pair or unknown user"), "429": _err("throttled after repeated failures (Retry-After)"),
    }, body=_body(_ref("LoginRequest")), tag="auth")},
    "/api/logout": {"post": {**_op("Sign out: ends every session (token) of the signed-in admin, on every "
                                   "process", None, {
        "204": {"description": "signed out; every token of this admin now answers 401"},
        "401": _err("no, invalid, expired or already ended token")}, tag="auth"), "security": [{"bearer": []}]}},
    "/api/openapi.json": {"get": _op("This document", None, {"200": _json({"type": "object"}, "OpenAPI 3.0")},
                                     tag="docs")},
    "/api/providers": {"get": _op("The provider → operation → parameter catalogue", "slots:read", {
        "200": _json(_ref("ProviderList"), "providers")})},
    "/api/providers/health": {"get": _op("Each provider's health, shared by every process: up or down "
                                         "(consecutive failed calls, or an answer that no call can work), why in "
                                         "words, the last problem, when the next call may go, what the provider "
                                         "says is left on the account",
                                         "slots:read", {
        "200": _json(_obj({"data": {"type": "array", "items": _ref("ProviderHealth")}}), "health")})},
    "/api/slots": {"get": _op("The 15 slots (without recent_results); meta.total: how many matched", "slots:read", {
        "200": _json(_ref("SlotList"), "slots")},
        params=[_q("provider_id", STR), _q("operation_id", STR), _q("search", STR, "substring of the name")])},
    "/api/slots/{slot_id}": {
        "get": _op("One slot with its last 10 results", "slots:read", {
            "200": _json(_ref("SlotDetail"), "the slot (ETag: its version)"), "404": _err("no such slot")},
            params=[_p("slot_id", SLOT_ID)]),
        "put": _op("Configure a slot (validated against the catalogue; optimistic check by updated_at, "
                   "version or If-Match)", "slots:write", {
            "200": _json(_ref("SlotSaved"), "saved"), "400": _err("malformed body"), "404": _err("no such slot"),
            "409": _err("changed since your read"), "422": _err("per-field catalogue violations in details")},
            params=[_p("slot_id", SLOT_ID)], body=_body(_ref("SlotUpdate"))),
    },
    "/api/slots/{slot_id}/reset_stats": {"post": _op("The slot's stats count from now", "slots:write", {
        "204": {"description": "reset"}, "404": _err("no such slot")}, params=[_p("slot_id", SLOT_ID)])},
    "/api/slots/{slot_id}/test_shot": {"post": _op(
        "A test shot: the photo goes through the real queue and provider under the slot's window, as a booth's "
        "would, without the ingest password; the answer is the booth's (the image, or the ingest's JSON error), "
        "with X-Job-Id, X-Test-Shot-Ms and X-Test-Shot-Outcome", "slots:write", {
            "200": {"description": "the processed image", "content": {"image/jpeg": {"schema": BINARY},
                                                                      "image/png": {"schema": BINARY},
                                                                      "image/webp": {"schema": BINARY}}},
            "400": _err("not multipart"), "404": _err("no such slot"), "422": _err("no file"),
            "429": _json(_ref("IngestError"), "a test shot of this slot is still running (test_shot_running), or "
                                              "this admin ran ingest.test_shots_per_minute already "
                                              "(too_many_test_shots); the ingest's JSON, with Retry-After")},
        params=[_p("slot_id", SLOT_ID)], body=_body(_obj({"file": BINARY}, ["file"]), "multipart/form-data"))},
    "/api/settings": {
        "get": _op("Live settings, never a secret value", "settings:read", {"200": _json(_ref("Settings"),
                                                                                           "settings")}),
        "put": _op("Change live settings: ingest password (stored hashed), provider keys, T_sync_response, "
                   "result retention", "settings:write", {
            "200": _json(_ref("Settings"), "the new settings"), "400": _err("malformed body"),
            "422": _err("out of bounds or unknown field")}, body=_body(_ref("SettingsUpdate"))),
    },
    "/api/settings/ingest-password/reveal": {"post": _op(
        "The current ingest password, to give a new booth without changing it on the others; audited "
        "(settings.ingest_password_revealed), never logged; POST so it is never in a URL or a cache",
        "settings:write", {
            "200": _json(_ref("IngestPassword"), "the password"), "404": _err("no ingest password is set"),
            "409": _err("set by an older photoslot that kept only a hash: showable after the next booth shot "
                        "with it, or generate a new one")})},
    "/api/settings/ingest-password/generate": {"post": _op(
        "A new ingest password made by photoslot (four groups of four, no look-alike characters), stored and "
        "returned; every booth needs the new one", "settings:write", {
            "200": _json(_ref("IngestPassword"), "the new password")})},
    "/api/media/register": {"post": _op("A temporary public link to an image, for providers that fetch by URL",
                                        "media:write", {
        "201": _json(_ref("MediaObject"), "registered"), "400": _err("not multipart"),
        "404": _err("unknown job_id"), "413": _err("too large"), "415": _err("not an image"),
        "422": _err("missing file / bad job_id")}, body=_body(MULTIPART_MEDIA, "multipart/form-data"))},
    "/api/template-media/register": {"post": _op("Store a template image and bind it to a slot's role",
                                                 "media:write", {
        "201": _json(_ref("TemplateMedia"), "registered and bound"), "400": _err("not multipart"),
        "404": _err("no such slot"), "409": _err("the role is bound already and replace is not set"),
        "413": _err("too large"), "415": _err("not an image"), "422": _err("missing or invalid field")},
        body=_body(MULTIPART_TEMPLATE, "multipart/form-data"))},
    "/api/template-media/{template_id}": {"delete": _op("Unbind a template from a slot's role; the file goes "
                                                        "when no slot uses it", "media:write", {
        "204": {"description": "unbound; with force, `X-Slots-Disabled` names the slots it disabled"},
        "404": _err("no such template"),
        "409": _err("force is not set and an enabled slot needs it (details.disables names the slot), or another "
                    "slot still uses it")},
        params=[_p("template_id", UUID), _q("slot_id", SLOT_ID, required=True),
                _q("setting_key", STR, required=True), _q("force", BOOL)])},
    "/api/media/cache/purge": {"post": _op("Queue a media cache purge for the sweeper", "settings:write", {
        "202": _json(_ref("PurgeAccepted"), "queued"), "400": _err("malformed body"),
        "422": _err("unknown scope or field")}, body=_body(_ref("PurgeRequest"), required=False))},
    "/api/jobs": {"get": _op("Jobs, filtered, sorted and paged (by default the soonest deadline first)", "stats:read", {
        "200": _json(_ref("JobsPage"), "one page"), "404": _err("no such slot"), "422": _err("bad filter")},
        params=[_q("status", {"type": "string", "enum": list(CONTRACT_STATUSES) + [
                    s for s in JOB_STATES if s not in CONTRACT_STATUSES]},
                   "the contract's pending/processing (a finalized job keeps the last it reached); a final state "
                   "here is the earlier spelling of `state`"),
                _q("state", {"type": "string", "enum": list(JOB_STATES)}, "photoslot's own state"),
                _q("is_finalized", BOOL),
                _q("failure_reason", {"type": "string", "enum": list(CONTRACT_REASONS) + [
                    r for r in FAILURE_ANSWERS if r not in CONTRACT_REASONS]},
                   "the contract's timeout / provider_error / cancelled, each finding every job whose finer reason "
                   "it covers; a finer reason matches exactly"),
                _q("failure_code", {"type": "string", "enum": list(FAILURE_ANSWERS)}, "photoslot's finer reason"),
                _q("is_test", BOOL, "admins' test shots only (true) or booth shots only (false)"),
                _q("slot_id", SLOT_ID),
                _q("from", TIME, "only jobs created at or after"), _q("to", TIME, "only jobs created before"),
                _q("page", {"type": "integer", "minimum": 1}, default=1),
                _q("page_size", {"type": "integer", "minimum": 1, "maximum": 100}, default=20),
                _q("sort_by", {"type": "string", "enum": ["created_at", "expires_at"]}, default="expires_at"),
                _q("sort_order", {"type": "string", "enum": ["asc", "desc"]}, default="asc")])},
    "/api/jobs/{job_id}": {"get": _op("One job with its deadline and timings", "stats:read", {
        "200": _json(_ref("JobAdminView"), "the job"), "404": _err("no such job")}, params=[_p("job_id", UUID)])},
    "/api/jobs/{job_id}/cancel": {"post": _op("Cancel a pending or processing job: it ends cancelled / "
                                              "admin_cancelled, its provider call is stopped and the waiting booth "
                                              "is answered 503 admin_cancelled at once; audited (job.cancel)",
                                              "slots:write", {
        "200": _json(_ref("JobAdminView"), "the cancelled job"), "404": _err("no such job"),
        "409": _err("the job is already finalized")}, params=[_p("job_id", UUID)])},
    "/api/stats/global": {"get": _op("Every slot (or one provider's, or one slot's): counts, ingest time, timeout "
                                     "share, provider spend per period", "stats:read", {
        "200": _json(_ref("GlobalStats"), "stats"), "404": _err("no such slot"),
        "422": _err("bad range, grouping, paging or provider")},
        params=[_q("from", TIME, "default: 7 days before to"), _q("to", TIME, "at most 90 days after from; default: now"),
                _q("group_by", {"type": "string", "enum": ["day", "week", "month"]}, default="week"),
                _q("page", {"type": "integer", "minimum": 1}, default=1),
                _q("page_size", {"type": "integer", "minimum": 1, "maximum": 50}, default=10),
                _q("sort_by", {"type": "string", "enum": ["period_start", "success", "errors", "ingest_count"]},
                   default="period_start"),
                _q("sort_order", {"type": "string", "enum": ["asc", "desc"]}, default="desc"),
                _q("provider_id", {"type": "string", "enum": ["gemini", "turbotext"]}),
                _q("slot_id", SLOT_ID, "one slot's figures (all of its history in the range, whatever its last "
                                       "reset)")])},
    "/api/stats/series": {"get": _op("The charts' series: one slot or all, the last 24 h per hour or 7 / 30 "
                                     "days per day", "stats:read", {
        "200": _json(_ref("StatsSeries"), "the series"), "404": _err("no such slot"), "422": _err("bad period")},
        params=[_q("slot_id", SLOT_ID, "omit for all slots"),
                _q("period", {"type": "string", "enum": ["24h", "7d", "30d"]})])},
    "/api/stats/{slot_id}": {"get": _op("One slot since its last reset: counts, ingest time, timeout share, "
                                        "provider spend per period", "stats:read", {
        "200": _json(_ref("SlotStats"), "stats"), "404": _err("no such slot"),
        "422": _err("bad range or grouping")},
        params=[_p("slot_id", SLOT_ID), _q("from", TIME, "default: 1 day before to"),
                _q("to", TIME, "at most 31 days after from; default: now"),
                _q("group_by", {"type": "string", "enum": ["hour", "day", "week"]}, default="day"),
                _q("provider_id", {"type": "string", "enum": ["gemini", "turbotext"]})])},
    "/api/audit": {"get": _op("The audit log of admin writes (HTTP and CLI), newest first", "settings:read", {
        "200": _json(_ref("AuditPage"), "entries"), "422": _err("bad limit")},
        params=[_q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}), _q("action", STR)])},
    "/public/media/{media_id}": {"get": _op("A temporary input file for a provider that fetches by URL", None, {
        "200": {"description": "the image", "content": {"image/jpeg": {"schema": BINARY},
                                                        "image/png": {"schema": BINARY},
                                                        "image/webp": {"schema": BINARY}}},
        "404": _err("unknown id"), "410": _err("expired, or its job is finalized")},
        params=[_p("media_id", UUID)], tag="public")},
    "/public/results/{job_id}": {"get": _op("Download a result (Content-Disposition: attachment)", None, {
        "200": {"description": "the image", "content": {"image/jpeg": {"schema": BINARY},
                                                        "image/png": {"schema": BINARY},
                                                        "image/webp": {"schema": BINARY}}},
        "404": _err("no result with this id"), "410": _err("expired (result retention is over)")},
        params=[_p("job_id", UUID)], tag="public")},
    "/public/results/{job_id}/thumbnail": {"get": _op("A JPEG thumbnail of a result, at most 160 px", None, {
        "200": {"description": "the thumbnail", "content": {"image/jpeg": {"schema": BINARY}}},
        "404": _err("no result with this id"), "410": _err("expired")}, params=[_p("job_id", UUID)],
        tag="public")},
}


def query_parameters() -> dict[tuple[str, str], tuple[str, ...]]:
    """(path template, method) → the query parameters the document names for that operation: the
    only ones toolkit.check_query lets through."""
    return {(path, method): tuple(p["name"] for p in op.get("parameters", ()) if p["in"] == "query")
            for path, ops in PATHS.items() for method, op in ops.items()}


def document(cfg=None) -> dict:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "photoslot API", "version": __version__,
                 "description": "Admin API (JWT bearer, HS256; permissions: " + ", ".join(PERMISSIONS) +
                                ") and public result links. Ingest (POST /ingest/{slot_id}) is the DSLR "
                                "Remote Pro contract, documented in docs/API.md: 200 with the processed "
                                "image, or JSON errors 400 invalid_request, 401 invalid_password, 404 "
                                "slot_not_found, 413 payload_too_large, 415 unsupported_media_type (also "
                                "any request body with a Content-Encoding other than identity, on every route), 422 "
                                "invalid_image (a damaged JPEG/PNG/WebP: cut short, corrupt, or a header "
                                "lying about its size), 429 queue_full, 502, 503, 504 timeout."},
        "paths": copy.deepcopy(PATHS),
        "components": {"schemas": copy.deepcopy(SCHEMAS),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
    if cfg is not None:
        doc["servers"] = [{"url": cfg.public_base_url()}]
    return doc


@routes.get("/api/openapi.json")
@endpoint(None)
async def openapi_document(request, ctx, _):
    return answer(document(ctx.cfg))
