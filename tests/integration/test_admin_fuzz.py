"""Hostile admin input (issue 5, item 3): a hypothesis fuzz of the admin JSON bodies and query strings.

Against the real app (Studio, real PostgreSQL, a logged-in admin token) every answer must be a status
the OpenAPI document declares for that endpoint, with a body that validates against the declared
schema (errors in the one admin shape), never a 500 and never traceback text; the server keeps
answering /healthz after every example.

Hypothesis drives plain functions, not coroutines, so each test keeps the Studio on pytest's session
loop (where its aiopg pool lives) and runs the @given function in a worker thread with a blocking
HTTP client; the loop stays free to serve while the thread waits.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import math
import os
import urllib.parse
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photoslot import SLOT_IDS
from tests.integration.adminapi import Api, check_response, logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

# PHOTOSLOT_FUZZ_EXAMPLES=2000 digs deeper by hand; the default keeps the file inside the CI budget.
FUZZ = settings(max_examples=int(os.environ.get("PHOTOSLOT_FUZZ_EXAMPLES", 100)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- a blocking client for hypothesis' thread

class Wire:
    """One admin over plain http.client; every answer is checked against the document as it arrives."""

    def __init__(self, base_url: str, token: str | None) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.token = token

    def raw(self, method: str, target: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()

    def call(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
             query: str = "", headers: dict | None = None, auth: bool = True):
        hdrs = dict(headers or {})
        if auth and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        target = path + (f"?{query}" if query else "")
        status, ctype, raw = self.raw(method, target, body, hdrs)
        where = f"{method} {target[:200]!r} → {status}: {raw[:300]!r}"
        assert status < 500, where
        assert b"Traceback" not in raw and b'File "' not in raw, where
        parsed = check_response(method, path, status, ctype, raw)  # documented status + schema
        if status >= 400:
            assert set(parsed) == {"error"}, where
            assert set(parsed["error"]) == {"code", "message", "details"}, where
            assert isinstance(parsed["error"]["details"], dict), where
        assert self.alive(), f"/healthz stopped answering 200 after {where}"
        return status, parsed

    def alive(self) -> bool:
        return self.raw("GET", "/healthz")[0] == 200


async def _fuzz(s: Studio, fn, **kw) -> None:
    wire = Wire(s.base_url, await Api(s).login("serg"))
    await asyncio.to_thread(partial(fn, wire, **kw))


# ---------------------------------------------------------------- strategies

def mostly(valid, hostile, odds: int = 3):
    """`valid` `odds` times out of `odds + 1`: deep code is only reached past the first checks.
    (st.one_of's own choice of branch is far from even, hence the explicit draw.)"""
    return st.integers(0, odds).flatmap(lambda pick: hostile if pick == 0 else valid)


def either(*choices):
    """One of `choices`, each equally likely (st.one_of favours its first branches)."""
    return st.integers(0, len(choices) - 1).flatmap(lambda i: choices[i])


NASTY = ["", " ", "\x00", "a\x00b", "\ud800", "\udfff", "x\ud83d", "\u202e", "\ufeff", "../", "..\\..\\",
         "/etc/passwd", "%00", "%2e%2e%2f", "${jndi:ldap://x}", "'; DROP TABLE slots; --", "<script>",
         "NaN", "Infinity", "-1", "0", "1e309", "9" * 40, "true", "null", "[]", "{}", "é" * 3, "\u0085",
         "slot-001", "gemini", "image_edit", "2024-05-01T00:00:00Z"]
short_nasty_text = either(  # short enough for a URL (aiohttp refuses request lines over 8 KB at the HTTP layer)
    st.text(max_size=40),
    st.text(st.characters(categories=["Cs", "Cc", "Zs", "Mn"]), max_size=10),
    st.sampled_from(NASTY),
    # NUL and lone surrogates: valid in JSON escapes and percent-encoding, not storable as text
    st.builds(lambda a, bad, b: a + bad + b, st.text(max_size=8), st.sampled_from(["\x00", "\ud800", "\udc00"]),
              st.text(max_size=8)),
)
nasty_text = either(
    short_nasty_text,
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "\x00", "🙂"]), st.integers(1_000, 300_000)),
)
texts = mostly(st.text(max_size=40), nasty_text)  # a field's value: usually text the server can store
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])  # Python's json.loads takes NaN, Infinity
numbers = st.one_of(
    NON_FINITE, st.integers(), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 63, -(2 ** 63) - 1, 10 ** 30, 1e308, 0.5, 1e-300]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)


def nested(leaf=scalars, keys=texts, max_leaves: int = 12):
    return st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=4)),
                        max_leaves=max_leaves)


json_values = nested()
deep = st.builds(lambda n, opener: (opener[0] * n + opener[1] * n).encode(), st.integers(500, 200_000),
                 st.sampled_from([("[", "]"), ('{"a":', "}")]))


def encode(value, ensure_ascii: bool) -> bytes:
    # allow_nan: Python's json.loads accepts NaN/Infinity, so a hostile client may send them;
    # surrogatepass: a lone surrogate becomes bytes that are not UTF-8
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=True).encode("utf-8", "surrogatepass")


def json_body(values):
    """(body bytes, content type): mostly JSON of `values`, sometimes bytes that are not JSON at all."""
    as_json = st.builds(encode, values, st.booleans())
    content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                     "application/json; charset=latin-1", ""])
    hostile = st.one_of(st.binary(max_size=300), deep,
                        st.builds(lambda s: s.encode("utf-8", "surrogatepass"), nasty_text),
                        st.just(b'{"username": "serg", "password": '), st.just(b"\xff\xfe{\x00}\x00"))
    return mostly(st.tuples(as_json, st.just("application/json")),
                  st.tuples(as_json | hostile, content_types))


def shaped(fields: dict, extra_keys=texts):
    """Objects built from the real field names (all or some present, each maybe of the wrong type),
    plus now and then a field nobody asked for."""
    values = {k: mostly(v, json_values, odds=5) for k, v in fields.items()}
    known = mostly(st.fixed_dictionaries(values), st.fixed_dictionaries({}, optional=values))
    return st.builds(lambda k, extra: {**extra, **k}, known,
                     mostly(st.just({}), st.dictionaries(extra_keys, json_values, max_size=2), odds=7))


def near_valid(valid: st.SearchStrategy[dict]):
    """A body the server accepts, or that body with one field dropped or replaced by any JSON value:
    the checks behind the first one only run on bodies that are almost right."""
    def spoil(body: dict, pick: int, value, drop: bool) -> dict:
        if not body:
            return body
        key = sorted(body)[pick % len(body)]
        return {k: v for k, v in body.items() if k != key} if drop else {**body, key: value}

    return mostly(valid, st.builds(spoil, valid, st.integers(0, 50), json_values, st.booleans()), odds=1)


hostile_slot_ids = st.one_of(
    st.sampled_from(["slot-000", "slot-016", "slot-999", "SLOT-001", "slot-01", "slot-0001", "slot-001 ",
                     " slot-001", "slot-001\x00", "slot-001/../slot-002", "../slot-001", "..", ".", "...",
                     "..%2fslot-001", "%2e%2e", "slot-%30%30%31", "slot-\u0661\u0662\u0663", "slot-１２３",
                     "~", "slot-001;x=1", "slot-001?x", "slot-001#x"]),
    short_nasty_text.filter(bool),
)


def seg(text: str) -> str:
    """A path segment as a hostile client would write it: percent-encoded, bytes that are not UTF-8 kept."""
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


query_values = st.one_of(
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(str),
    st.sampled_from(["0", "1", "-1", "100", "101", "50", "51", "1e3", "1.5", " 7 ", "1_0", "٣", "²", "0x10",
                     "9" * 25, "", "true", "false", "TRUE", "yes", "2"]),
    short_nasty_text,
)
pages = mostly(st.integers(min_value=1, max_value=10 ** 30).map(str), query_values)


def times():
    offsets = st.sampled_from(["Z", "+00:00", "-05:00", "+14:00", "-23:59", "+23:59", ""])
    return st.one_of(
        st.builds(lambda d, off: d.isoformat() + off, st.datetimes(), offsets),
        st.sampled_from(["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                         "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-05-01",
                         "2024-05-01T25:00:00Z", "now", "yesterday", "2024-05-01T00:00:00.123456789Z",
                         "+002024-05-01T00:00:00Z"]),
        query_values,
    )


def _window(start: dt.datetime, days: float, offset: str, keep: tuple) -> dict:
    try:
        end = start + dt.timedelta(days=days)
    except OverflowError:
        end = dt.datetime.max
    pair = {"from": start.isoformat() + offset, "to": end.isoformat() + offset}
    return {k: pair[k] for k in keep}


def windows(max_days: int):
    """{from?, to?}: mostly a well-formed range of at most `max_days` (any offset), so the stats queries
    run, not only the validation in front of them; sometimes at the edges of what Python can represent."""
    starts = either(st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(8999, 1, 1)), st.datetimes(),
                    st.sampled_from([dt.datetime.min, dt.datetime(1, 1, 1, 12), dt.datetime(9999, 12, 1),
                                     dt.datetime(9999, 12, 31, 23, 59), dt.datetime(1970, 1, 1)]))
    valid = st.builds(_window, starts, st.floats(min_value=0.001, max_value=max_days),
                      st.sampled_from(["Z", "+00:00", "-05:00", "+14:00", "-23:59"]),
                      st.sampled_from([("from", "to"), ("from", "to"), ("from",), ("to",), ()]))
    return mostly(valid, st.fixed_dictionaries({}, optional={"from": times(), "to": times()}))


def query_string(params: dict, base=st.just({})) -> st.SearchStrategy[str]:
    """A query string of some of the named parameters (hostile values) plus raw percent-encoded junk."""
    known = st.builds(lambda b, k: {**b, **k}, base, st.fixed_dictionaries({}, optional=params))
    junk = st.lists(st.tuples(short_nasty_text, query_values), max_size=2)
    raw = st.binary(max_size=30).map(lambda b: "x=" + urllib.parse.quote_from_bytes(b))

    def render(k, j, r, repeat):
        pairs = [(name.encode("utf-8", "surrogatepass"), value.encode("utf-8", "surrogatepass"))
                 for name, value in [*k.items(), *j]]
        if repeat and pairs:
            pairs.append(pairs[0])  # a repeated parameter
        text = urllib.parse.urlencode(pairs)
        return f"{text}&{r}" if r and text else (r or text)

    return st.builds(render, known, mostly(st.just([]), junk), mostly(st.just(""), raw), st.booleans())


# ---------------------------------------------------------------- POST /api/login

login_objects = shaped({"username": st.sampled_from(["serg", "igor", "root", "SERG"]) | texts, "password": texts})


@FUZZ
@given(body=json_body(mostly(login_objects, json_values)))
def fuzz_login(wire: Wire, body) -> None:
    data, ctype = body
    status, answer = wire.call("POST", "/api/login", body=data, content_type=ctype, auth=False)
    assert status in (400, 401, 429), answer  # nobody guesses an admin password


async def test_login_survives_hostile_bodies(make_cfg, pg_dsn):
    # throttling would answer 429 before most of the login code ran; lift it to reach that code
    async with Studio(make_cfg(auth__login_max_failures=10 ** 6), pg_dsn, workers=0) as s:
        await _fuzz(s, fuzz_login)


# ---------------------------------------------------------------- PUT /api/slots/{slot_id}

params = st.fixed_dictionaries({}, optional={
    "temperature": mostly(st.floats(allow_nan=True, allow_infinity=True), numbers), "seed": numbers,
    "strength": numbers, "scale": numbers, "negative_prompt": texts, "original_language": texts,
    "face_restore": scalars})
slot_settings = shaped({
    "prompt": mostly(st.text(min_size=1, max_size=50), nasty_text),
    "output_format": st.sampled_from(["jpeg", "png", "webp", "gif"]),
    "params": mostly(params, st.dictionaries(nasty_text, json_values, max_size=3)),
    "templates": st.dictionaries(st.sampled_from(["style", "face", "x"]),
                                 st.one_of(st.uuids().map(str), nasty_text, scalars), max_size=2)})
slot_objects = st.builds(lambda fields, check: {**fields, **check}, shaped({
    "name": texts, "provider_id": st.sampled_from(["gemini", "turbotext", "GEMINI", "x"]),
    "operation_id": st.sampled_from(["image_edit", "style_transfer", "identity_transfer", "x"]),
    "settings_json": slot_settings, "enabled": st.booleans()}),
    # the optimistic check and read-only fields a client echoes back from its last read
    mostly(st.just({}), st.fixed_dictionaries({}, optional={
        "version": mostly(st.just(1), numbers), "updated_at": times(), "id": texts, "created_at": times(),
        "recent_results": json_values})))
valid_slot = st.fixed_dictionaries({
    "name": st.text(max_size=30), "provider_id": st.just("gemini"), "operation_id": st.just("image_edit"),
    "settings_json": st.fixed_dictionaries({
        "prompt": st.text(min_size=1, max_size=60).filter(str.strip),
        "params": st.fixed_dictionaries({}, optional={"temperature": st.floats(0, 2) | NON_FINITE,
                                                      "seed": st.integers(0, 2 ** 31 - 1) | numbers}),
    }, optional={"output_format": st.sampled_from(["jpeg", "png", "webp"])}),
}, optional={"enabled": st.booleans()})
if_match = st.one_of(st.none(), st.none(), st.sampled_from([
    '"1"', 'W/"2"', '"²"', '"٣"', "*", '""', '"1e3"', "garbage", '"2024-05-01T00:00:00Z"',
    '"0001-01-01T00:00:00+05:00"']), query_values.filter(lambda t: t.isprintable()))  # the rest is no HTTP


@FUZZ
@given(slot_id=mostly(st.sampled_from(SLOT_IDS), hostile_slot_ids),
       body=json_body(mostly(near_valid(valid_slot), mostly(slot_objects, json_values), odds=1)),
       tag=if_match)
def fuzz_put_slot(wire: Wire, slot_id, body, tag) -> None:
    data, ctype = body
    status, answer = wire.call("PUT", f"/api/slots/{seg(slot_id)}", body=data, content_type=ctype,
                               headers={"If-Match": tag.encode("utf-8", "surrogatepass")} if tag else None)
    if slot_id not in SLOT_IDS:
        assert status in (400, 404), answer


async def test_slot_update_survives_hostile_bodies_and_ids(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _fuzz(s, fuzz_put_slot)


# ---------------------------------------------------------------- PUT /api/settings

key_text = st.text(st.characters(exclude_categories=["Z", "Cc", "Cs"]), min_size=8, max_size=80)
valid_settings = st.fixed_dictionaries({}, optional={
    "dslr_password": st.fixed_dictionaries({"value": st.text(min_size=4, max_size=80)}),
    "provider_keys": st.fixed_dictionaries({}, optional={"gemini": st.fixed_dictionaries({"value": key_text}),
                                                         "turbotext": st.fixed_dictionaries({"value": key_text})}),
    "ingest": st.fixed_dictionaries({"sync_response_timeout_sec": st.floats(1, 60) | numbers}),
    "media_cache": st.fixed_dictionaries({"processed_media_ttl_hours": st.integers(1, 8760) | numbers}),
})
settings_objects = shaped({
    "dslr_password": shaped({"value": texts}),
    "provider_keys": shaped({"gemini": shaped({"value": texts}), "turbotext": shaped({"value": texts}),
                             "openai": shaped({"value": texts})}),
    "ingest": shaped({"sync_response_timeout_sec": numbers, "ingest_ttl_sec": numbers, "bounds": json_values}),
    "media_cache": shaped({"processed_media_ttl_hours": numbers, "public_link_ttl_sec": numbers}),
})


@FUZZ
@given(body=json_body(mostly(near_valid(valid_settings), mostly(settings_objects, json_values), odds=1)))
def fuzz_put_settings(wire: Wire, body) -> None:
    data, ctype = body
    wire.call("PUT", "/api/settings", body=data, content_type=ctype)


async def test_settings_update_survives_hostile_bodies(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _fuzz(s, fuzz_put_settings)


# ---------------------------------------------------------------- POST /api/media/cache/purge

purge_objects = shaped({"scope": mostly(st.sampled_from(["full", "media_objects"]),
                                       st.sampled_from(["FULL", "all", "full "]) | nasty_text)})


@FUZZ
@given(body=json_body(mostly(purge_objects, json_values)))
def fuzz_purge(wire: Wire, body) -> None:
    data, ctype = body
    wire.call("POST", "/api/media/cache/purge", body=data, content_type=ctype)


async def test_cache_purge_survives_hostile_bodies(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _fuzz(s, fuzz_purge)


# ---------------------------------------------------------------- GET /api/jobs, /api/stats/*

jobs_query = query_string({
    "page": pages, "page_size": mostly(st.integers(1, 100).map(str), query_values),
    "is_finalized": mostly(st.sampled_from(["true", "false", "1", "0", "yes", "no"]), query_values),
    "sort_by": mostly(st.sampled_from(["created_at", "expires_at"]),
                      st.sampled_from(["id", "created_at desc", "1"]) | query_values),
    "sort_order": mostly(st.sampled_from(["asc", "desc"]), st.sampled_from(["ASC", "desc; --"]) | query_values),
    "status": mostly(st.sampled_from(["pending", "processing"]), st.sampled_from(["succeeded", "x"]) | query_values),
    "failure_reason": mostly(st.sampled_from(["timeout", "provider_error"]), query_values),
    "slot_id": mostly(st.sampled_from(SLOT_IDS), hostile_slot_ids),
})


def stats_query(max_days: int, groups: list[str]):
    return query_string({
        "page": pages, "page_size": mostly(st.integers(1, 50).map(str), query_values),
        "group_by": mostly(st.sampled_from(groups), st.sampled_from(["hour", "month", "year", "1 day"]) | query_values),
        "sort_by": mostly(st.sampled_from(["period_start", "success", "errors", "ingest_count"]),
                          st.sampled_from(["p50_ms", "currency"]) | query_values),
        "sort_order": mostly(st.sampled_from(["asc", "desc"]), query_values),
    }, base=windows(max_days))


@FUZZ
@given(query=jobs_query)
def fuzz_jobs(wire: Wire, query) -> None:
    wire.call("GET", "/api/jobs", query=query)


@FUZZ
@given(query=stats_query(90, ["day", "week", "month"]))
def fuzz_global_stats(wire: Wire, query) -> None:
    wire.call("GET", "/api/stats/global", query=query)


@FUZZ
@given(query=stats_query(31, ["hour", "day", "week"]),
       slot_id=mostly(st.sampled_from(SLOT_IDS), hostile_slot_ids))
def fuzz_slot_stats(wire: Wire, query, slot_id) -> None:
    status, answer = wire.call("GET", f"/api/stats/{seg(slot_id)}", query=query)
    if slot_id not in SLOT_IDS and slot_id != "global":
        # no slot's figures, ever: 404, or the 422 of a query parameter the operation does not take
        assert status == 404 or (status == 422 and all(
            m.startswith(("unknown query parameter", "given more than once"))
            for m in answer["error"]["details"].values())), answer


async def test_job_and_stats_queries_survive_hostile_values(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _fuzz(s, fuzz_jobs)
        await _fuzz(s, fuzz_global_stats)
        await _fuzz(s, fuzz_slot_stats)


# ---------------------------------------------------------------- the other admin reads

@FUZZ
@given(slot_id=mostly(st.sampled_from(SLOT_IDS), hostile_slot_ids),
       job_id=st.uuids().map(str) | hostile_slot_ids,
       slots_query=query_string({"search": query_values, "provider_id": query_values, "operation_id": query_values}),
       audit_query=query_string({"limit": mostly(st.integers(1, 1000).map(str), query_values),
                                 "action": either(st.sampled_from(["slot.update", "settings.update"]),
                                                  short_nasty_text)}))
def fuzz_reads(wire: Wire, slot_id, job_id, slots_query, audit_query) -> None:
    wire.call("GET", "/api/slots", query=slots_query)
    wire.call("GET", f"/api/slots/{seg(slot_id)}")
    wire.call("GET", f"/api/jobs/{seg(job_id)}")
    wire.call("GET", "/api/audit", query=audit_query)


async def test_admin_reads_survive_hostile_ids_and_queries(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _fuzz(s, fuzz_reads)


# ---------------------------------------------------------------- regressions: what the fuzz found (each was a 500)

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("method, path, raw", [
    ("POST", "/api/login", b'{"username": "serg", "password": "\\ud800"}'),  # scrypt could not encode it
    ("POST", "/api/login", b'{"username": "se\\u0000rg", "password": "x"}'),  # nor PostgreSQL store the name
    ("PUT", "/api/slots/slot-001", b'{"name": "a\\u0000b", "provider_id": "gemini", "operation_id": "image_edit",'
                                   b' "settings_json": {"prompt": "sepia"}}'),
    ("PUT", "/api/slots/slot-001", b'{"provider_id": "gemini", "operation_id": "image_edit",'
                                   b' "settings_json": {"prompt": "sepia \\udc00"}}'),
    ("PUT", "/api/settings", b'{"provider_keys": {"gemini": {"value": "key-\\u0000-12345"}}}'),
    ("POST", "/api/media/cache/purge", b'[' * 100_000 + b']' * 100_000),  # json.loads raised RecursionError
])
async def test_bodies_the_server_cannot_take_in_are_a_400(make_cfg, pg_dsn, method, path, raw):
    async with Studio(make_cfg(auth__login_max_failures=100), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, _, body = await api.call(method, path, data=raw, headers=JSON, auth=path != "/api/login")
        assert status == 400 and body["error"]["code"] == "bad_request"


async def test_nan_parameter_is_refused_by_the_catalogue(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        raw = (b'{"provider_id": "gemini", "operation_id": "image_edit",'
               b' "settings_json": {"prompt": "sepia", "params": {"temperature": NaN}}}')
        status, _, body = await api.call("PUT", "/api/slots/slot-001", data=raw, headers=JSON)
        assert status == 422 and "settings_json.params.temperature" in body["error"]["details"]
        assert (await api.call("GET", "/api/slots/slot-001"))[2]["configured"] is False


async def test_non_ascii_digits_in_if_match_are_no_version(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        body = {"provider_id": "gemini", "operation_id": "image_edit", "settings_json": {"prompt": "sepia"}}
        status, _, answer = await api.call("PUT", "/api/slots/slot-001", json=body, headers={"If-Match": '"²"'})
        assert status == 422 and "updated_at" in answer["error"]["details"]


async def test_settings_number_beyond_float_is_a_422(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        for section, key in (("ingest", "sync_response_timeout_sec"), ("media_cache", "processed_media_ttl_hours")):
            raw = f'{{"{section}": {{"{key}": {"9" * 400}}}}}'.encode()
            status, _, body = await api.call("PUT", "/api/settings", data=raw, headers=JSON)
            assert status == 422 and f"{section}.{key}" in body["error"]["details"]


async def test_jobs_page_beyond_postgresql_offset_is_an_empty_page(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        status, _, body = await api.call("GET", "/api/jobs", params={"page": str(2 ** 62), "page_size": "100"})
        assert status == 200 and body["data"] == [] and body["meta"]["page"] == 2 ** 62


async def test_stats_times_are_taken_in_utc_and_within_range(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        # Python parses a -23:59 offset that PostgreSQL refuses; in UTC it is an ordinary time
        status, _, body = await api.call("GET", "/api/stats/global", params={
            "from": "2024-05-01T00:00:00-23:59", "to": "2024-05-03T00:00:00-23:59"})
        assert status == 200 and body["range"]["from"] == "2024-05-01T23:59:00Z"
        status, _, body = await api.call("GET", "/api/stats/slot-001", params={
            "from": "2024-05-01T00:00:00-23:59", "to": "2024-05-01T12:00:00-23:59"})
        assert status == 200
        # a `to` in year 1 once made `to - default range` overflow; year 9999 + a period, likewise
        for params in ({"to": "0001-01-01T00:00:00Z"}, {"from": "0001-01-01T00:00:00+05:00"},
                       {"from": "9999-12-30T00:00:00Z", "to": "9999-12-31T23:59:59Z"}):
            status, _, body = await api.call("GET", "/api/stats/global", params=params)
            assert status == 422, params


async def test_audit_action_filter_with_nul_matches_nothing(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s)
        await s.set_password()
        status, _, body = await api.call("GET", "/api/audit", params={"action": "settings\x00.update"})
        assert status == 200 and body["data"] == []
