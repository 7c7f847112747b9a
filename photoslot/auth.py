"""Admin login and JWTs (HS256): issue, verify, permissions, throttling of failed logins.

Expiry is checked against the injected clock (not PyJWT's wall clock), so tests move time instead
of sleeping and every process agrees with the rest of photoslot on what "now" is.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import uuid

import jwt

from photoslot import users
from photoslot.errors import PhotoslotError
from photoslot.logs import event
from photoslot.passwords import hash_password, verify_password

log = logging.getLogger("photoslot.auth")

ALGORITHM = "HS256"
PERMISSIONS = ("slots:read", "slots:write", "settings:read", "settings:write", "media:write", "stats:read")
# Compared against when the user is unknown, so an unknown name costs the same scrypt as a wrong password.
_DUMMY_RECORD = hash_password(uuid.uuid4().hex)


class BadRequest(PhotoslotError):
    code = "bad_request"
    http_status = 400
    exit_code = 2


class Unauthorized(PhotoslotError):
    code = "unauthorized"
    http_status = 401


class Forbidden(PhotoslotError):
    code = "forbidden"
    http_status = 403


class Throttled(PhotoslotError):
    code = "too_many_requests"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


def issue_token(cfg, username: str, *, now: dt.datetime, permissions=PERMISSIONS,
                ttl_seconds: float | None = None) -> dict:
    """The login answer (docs/API.md "Auth"). `permissions` narrower than all exist for tests and tools."""
    ttl = int(ttl_seconds if ttl_seconds is not None else float(cfg.get("auth.token_ttl_minutes")) * 60)
    iat = int(now.timestamp())
    claims = {"sub": username, "permissions": list(permissions), "iat": iat, "exp": iat + ttl,
              "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, users.jwt_secret(cfg), algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "bearer", "expires_in_sec": ttl}


def verify_token(cfg, token: str, *, now: dt.datetime) -> dict:
    """The claims of a valid token; Unauthorized for anything else (no reason leaks to the client
    beyond expired/invalid)."""
    try:
        # algorithms pinned: a token saying alg "none" or RS256 is refused before any key is used
        claims = jwt.decode(token, users.jwt_secret(cfg), algorithms=[ALGORITHM],
                            options={"verify_exp": False, "verify_iat": False,
                                     "require": ["sub", "permissions", "exp", "iat", "jti"]})
    except jwt.PyJWTError:
        raise Unauthorized("invalid token") from None
    if not isinstance(claims.get("exp"), (int, float)) or now.timestamp() >= claims["exp"]:
        raise Unauthorized("token expired")
    if claims.get("sub") not in users.ADMINS or not isinstance(claims.get("permissions"), list):
        raise Unauthorized("invalid token")
    return claims


def bearer_claims(cfg, header: str | None, *, now: dt.datetime) -> dict:
    if not header:
        raise Unauthorized("missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected Authorization: Bearer <token>")
    return verify_token(cfg, token.strip(), now=now)


def require(claims: dict, permission: str) -> None:
    if permission not in claims.get("permissions", []):
        raise Forbidden(f"this token lacks the permission {permission!r}", {"permission": permission})


def _keys(username: str, client: str | None) -> tuple[str, str]:
    return f"user:{username[:100]}", f"client:{client or 'unknown'}"


async def _throttle_check(ctx, user_key: str, client_key: str, now: dt.datetime) -> None:
    cfg = ctx.cfg
    limit = int(cfg.get("auth.login_max_failures"))
    window = float(cfg.get("auth.login_window_seconds"))
    rows = await ctx.db.fetchall("login_failures_recent", user_key=user_key, client_key=client_key,
                                 since=now - dt.timedelta(seconds=window), nth=limit)
    waits = [(r["nth_newest"] + dt.timedelta(seconds=window) - now).total_seconds()
             for r in rows if r["n"] >= limit and r["nth_newest"] is not None]
    if waits:
        retry = max(1, math.ceil(max(waits)))
        raise Throttled(f"too many failed logins; retry in {retry} s", retry)


async def login(ctx, username, password, *, client: str | None) -> dict:
    """POST /api/login. Unknown user and wrong password look the same (401) and cost the same."""
    now = ctx.clock.now()
    if not isinstance(username, str) or not isinstance(password, str) or not username or len(password) > 1024:
        raise BadRequest("username and password must be non-empty strings", {"fields": ["username", "password"]})
    user_key, client_key = _keys(username, client)
    await _throttle_check(ctx, user_key, client_key, now)
    record = users.load_admins(ctx.cfg).get(username)
    ok = await asyncio.to_thread(verify_password, password, record or _DUMMY_RECORD)
    if not (ok and record is not None):
        window = float(ctx.cfg.get("auth.login_window_seconds"))
        await ctx.db.execute("login_failure_insert", user_key=user_key, client_key=client_key, now=now,
                             prune_before=now - dt.timedelta(seconds=window))
        event(log, "login_failed", logging.WARNING, user=username[:100], client=client)
        raise Unauthorized("wrong username or password")
    await ctx.db.execute("login_failures_clear", user_key=user_key, client_key=client_key)
    event(log, "login", user=username, client=client)
    return issue_token(ctx.cfg, username, now=now)
