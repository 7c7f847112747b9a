"""An admin API client for tests that checks every answer against our OpenAPI document.

Each call's (path, method, status) must be documented, and a JSON body must validate against the
declared schema — so every admin test doubles as a check that the document tells the truth.
The validator covers the JSON-schema subset photoslot/server/openapi.py uses.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import aiohttp

from photoslot import users
from photoslot.server.openapi import document

DOC = document()
EXERCISED: set[tuple[str, str, str]] = set()  # (path template, method, status) seen this session


class SchemaError(AssertionError):
    pass


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = DOC["components"]["schemas"][name]
    return schema


_TYPES = {"string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
          "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
          "null": lambda v: v is None}


def _check_format(value: str, fmt: str | None, where: str) -> None:
    if fmt == "date-time":
        if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", value):
            raise SchemaError(f"{where}: {value!r} is not an RFC 3339 time")
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif fmt == "date":
        if not re.match(r"^\d{4}-\d\d-\d\d$", value):
            raise SchemaError(f"{where}: {value!r} is not an RFC 3339 date")
        dt.date.fromisoformat(value)
    elif fmt == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            raise SchemaError(f"{where}: {value!r} is not a UUID") from None
    elif fmt == "uri":
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+$", value):
            raise SchemaError(f"{where}: {value!r} is not an absolute URI")


def validate(value, schema: dict, where: str = "$", *, resolve=_resolve, closed: bool = True) -> None:
    """`value` against `schema`: the JSON-schema subset our OpenAPI document and the contract's
    schemas (tests/fixtures/contract) use — type (one or a list), nullable, enum, const, format
    (date-time, date, uuid, uri), pattern, minLength, minimum/maximum, items, minItems/maxItems,
    required, properties, additionalProperties, allOf/anyOf/oneOf, $ref (through `resolve`).
    `closed=False` lets an object carry properties `additionalProperties: false` does not allow:
    photoslot's additions beside the contract's fields."""
    schema = resolve(schema)
    sub = dict(resolve=resolve, closed=closed)
    for part in schema.get("allOf", ()):
        validate(value, part, where, **sub)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            fits = []
            for part in schema[key]:
                try:
                    validate(value, part, where, **sub)
                    fits.append(part)
                except SchemaError:
                    pass
            if not fits or (key == "oneOf" and len(fits) > 1):
                raise SchemaError(f"{where}: {value!r:.200} fits {len(fits)} of the {key} alternatives")
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if value is None and (schema.get("nullable") or "null" in kinds):
        return
    if value is None and kinds:
        raise SchemaError(f"{where}: null where {kinds} is required")
    if kinds and not any(_TYPES[k](value) for k in kinds):
        raise SchemaError(f"{where}: {value!r:.200} is not of type {kinds}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        raise SchemaError(f"{where}: {value!r} is not {schema['const']!r}")
    if isinstance(value, str):
        _check_format(value, schema.get("format"), where)
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            raise SchemaError(f"{where}: {value!r} is shorter than {schema['minLength']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError(f"{where}: more than {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise SchemaError(f"{where}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{where}[{i}]", **sub)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaError(f"{where}: missing required {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                validate(item, props[key], f"{where}.{key}", **sub)
            elif extra is False and closed:
                raise SchemaError(f"{where}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                validate(item, extra, f"{where}.{key}", **sub)


def template_for(path: str) -> str:
    """The document's path template for a concrete path (literal segments win over parameters)."""
    candidates = []
    for template in DOC["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            candidates.append((template.count("{"), template))
    if not candidates:
        raise SchemaError(f"{path} is not in the OpenAPI document")
    return sorted(candidates)[0][1]


def check_response(method: str, path: str, status: int, content_type: str, body: bytes):
    template = template_for(path)
    op = DOC["paths"][template].get(method.lower())
    if op is None:
        raise SchemaError(f"{method} {template} is not documented")
    spec = op["responses"].get(str(status))
    if spec is None:
        raise SchemaError(f"{method} {template} answered {status}, which is not documented: {body[:300]!r}")
    EXERCISED.add((template, method.lower(), str(status)))
    content = spec.get("content")
    if not content:
        assert body == b"", f"{method} {template} {status} should have no body"
        return None
    mime = content_type.split(";")[0].strip()
    if mime not in content:
        raise SchemaError(f"{method} {template} {status}: content type {mime} not documented ({list(content)})")
    if mime == "application/json":
        data = json.loads(body)
        validate(data, content[mime]["schema"])
        return data
    return body


class Api:
    """Talks to a running Studio's admin API as an admin would."""

    def __init__(self, studio) -> None:
        self.s = studio
        self.token: str | None = None

    async def login(self, username: str = "serg") -> str:
        password = users.reset(self.s.cfg, username)
        status, _, body = await self.call("POST", "/api/login", json={"username": username, "password": password},
                                          auth=False)
        assert status == 200, body
        self.token = body["access_token"]
        return self.token

    async def call(self, method: str, path: str, *, json=None, data=None, params=None, headers=None,
                   auth: bool = True, token: str | None = None):
        hdrs = dict(headers or {})
        bearer = token or (self.token if auth else None)
        if bearer:
            hdrs["Authorization"] = f"Bearer {bearer}"
        async with self.s.http.request(method, self.s.base_url + path, json=json, data=data, params=params,
                                       headers=hdrs, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            raw = await resp.read()
            parsed = check_response(method, path, resp.status, resp.headers.get("Content-Type", ""), raw)
            return resp.status, resp.headers.copy(), parsed  # case-insensitive


async def logged_in(studio, username: str = "serg") -> Api:
    """An Api logged in as one of the two admins: what most admin tests start with."""
    api = Api(studio)
    await api.login(username)
    return api


def concrete(template: str) -> str:
    """A path for the document's path template: slot-001, random ids."""
    samples = {"{slot_id}": "slot-001", "{job_id}": str(uuid.uuid4()), "{template_id}": str(uuid.uuid4()),
               "{media_id}": str(uuid.uuid4())}
    for k, v in samples.items():
        template = template.replace(k, v)
    return template


def all_secured_routes() -> list[tuple[str, str, str]]:
    """(method, concrete path, permission) for every JWT-protected operation in the document."""
    return [(method.upper(), concrete(template), op["x-permission"])
            for template, ops in DOC["paths"].items() for method, op in ops.items() if op.get("x-permission")]


def all_api_operations() -> list[tuple[str, str]]:
    """(method, concrete path) for every /api operation in the document."""
    return [(method.upper(), concrete(template)) for template, ops in DOC["paths"].items()
            if template.startswith("/api/") for method in ops]
