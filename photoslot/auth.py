"""Admin sign-in: login with throttling, JWTs (HS256) bound to a session epoch, permissions, sign-out.

The HTTP admin API and the web admin's cookie session both sign in and verify through this module.

Throttling punishes the guesser, not the owner. Failures are counted per (username, client
address) and per client address, never per username alone: whoever guesses serg's password from
their own address only slows themselves down, and serg signing in from an address that has not
been failing is never refused. After `auth.login_max_failures` free tries (per address:
`auth.login_max_failures_per_address`) each further try must wait `auth.login_backoff_seconds`,
doubling per failure up to `auth.login_max_backoff_seconds`, after the newest failure; failures
are remembered `auth.login_window_seconds`. A try is reserved in PostgreSQL — under the address's
advisory lock, before scrypt runs — and the reservation stays as the failure unless the password
was right, so a parallel burst is counted try by try and gets no more than the allowed number of
password checks. A refused try (429) costs no scrypt and is not counted.

Sessions: a token carries its admin's session epoch (users.py); `authenticate()` checks it against
PostgreSQL on every request, so a sign-out, `users revoke` or `users reset` ends the tokens
everywhere at once. Expiry is checked against the injected clock (not PyJWT's wall clock), so
tests move time instead of sleeping.
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
_REQUIRED_CLAIMS = ["sub", "permissions", "exp", "iat", "jti", "ep"]


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


def issue_token(cfg, username: str, *, now: dt.datetime, epoch: int = 0, permissions=PERMISSIONS,
                ttl_seconds: float | None = None, sid: str | None = None, auth_time: int | None = None) -> dict:
    """The login answer (docs/API.md "Auth"). `epoch` is the admin's current
    session epoch (login reads it); `permissions` narrower than all exist for tests and tools.
    A web admin session's token also carries its session id `sid` (kept when it is renewed, ended
    alone by the page's Sign out) and `auth_time`, when its admin signed in (sessions.py)."""
    ttl = int(ttl_seconds if ttl_seconds is not None else float(cfg.get("auth.token_ttl_minutes")) * 60)
    iat = int(now.timestamp())
    claims = {"sub": username, "permissions": list(permissions), "iat": iat, "exp": iat + ttl,
              "jti": uuid.uuid4().hex, "ep": int(epoch)}
    if sid is not None:
        claims["sid"] = sid
        claims["auth_time"] = int(auth_time if auth_time is not None else iat)
    token = jwt.encode(claims, users.jwt_secret(cfg), algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "bearer", "expires_in_sec": ttl}


def verify_token(cfg, token: str, *, now: dt.datetime) -> dict:
    """The claims of a token signed by this studio and not expired; Unauthorized for anything else
    (no reason leaks to the client beyond expired/invalid). The session epoch is `authenticate`'s."""
    try:
        # algorithms pinned: a token saying alg "none" or RS256 is refused before any key is used
        claims = jwt.decode(token, users.jwt_secret(cfg), algorithms=[ALGORITHM],
                            options={"verify_exp": False, "verify_iat": False, "require": _REQUIRED_CLAIMS})
    except jwt.PyJWTError:
        raise Unauthorized("invalid token") from None
    if not isinstance(claims.get("exp"), (int, float)) or now.timestamp() >= claims["exp"]:
        raise Unauthorized("token expired")
    if (claims.get("sub") not in users.ADMINS or not isinstance(claims.get("permissions"), list)
            or isinstance(claims.get("ep"), bool) or not isinstance(claims.get("ep"), int)):
        raise Unauthorized("invalid token")
    if "sid" in claims and (not isinstance(claims["sid"], str) or not 8 <= len(claims["sid"]) <= 64
                            or isinstance(claims.get("auth_time"), bool)
                            or not isinstance(claims.get("auth_time"), int)):
        raise Unauthorized("invalid token")
    return claims


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer …` header."""
    if not header:
        raise Unauthorized("missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected Authorization: Bearer <token>")
    return token.strip()


async def authenticate(ctx, token: str) -> dict:
    """The claims of a token that is valid right now: signed here, not expired, and of the admin's
    current session (not signed out, revoked or reset since). Every protected request comes here."""
    claims = verify_token(ctx.cfg, token, now=ctx.clock.now())
    if "sid" in claims:  # a web session: its own sign-out too, in the same round trip
        epoch, ended = await users.session_state(ctx.db, claims["sub"], claims["sid"])
    else:
        epoch, ended = await users.session_epoch(ctx.db, claims["sub"]), False
    if ended or claims["ep"] != epoch:
        raise Unauthorized("this session has ended (signed out, revoked or password reset); sign in again")
    return claims


def require(claims: dict, permission: str) -> None:
    if permission not in claims.get("permissions", []):
        raise Forbidden(f"this token lacks the permission {permission!r}", {"permission": permission})


async def logout(ctx, claims: dict, *, source: str) -> None:
    """Sign-out: ends every session of the signed-in admin (this token and any other), everywhere."""
    await users.end_sessions(ctx, claims["sub"], actor=f"admin:{claims['sub']}", source=source,
                             action="users.logout")


# ---------------------------------------------------------------- throttling

def _keys(username: str, client: str | None) -> tuple[str, str]:
    """The throttling keys of a try. The name is cut and written in ASCII escapes: whatever a client
    sends as a username (NUL, lone surrogates) fits a PostgreSQL text column."""
    address = client or "unknown"
    name = username[:100].encode("unicode_escape").decode("ascii")
    return f"pair:{address} {name}", f"client:{address}"


def backoff_seconds(failures: int, free: int, first: float, cap: float) -> float:
    """How long after its newest failure a key may try again: 0 while tries are free, then `first`,
    doubling with each further failure, never more than `cap`."""
    if failures < free:
        return 0.0
    return min(cap, first * 2.0 ** min(failures - free, 64))


async def _reserve_try(ctx, pair_key: str, client_key: str, now: dt.datetime) -> None:
    """Count this try before the password is checked, or refuse it (Throttled) without counting it."""
    cfg = ctx.cfg
    first = float(cfg.get("auth.login_backoff_seconds"))
    cap = float(cfg.get("auth.login_max_backoff_seconds"))
    free = {pair_key: int(cfg.get("auth.login_max_failures")),
            client_key: int(cfg.get("auth.login_max_failures_per_address"))}
    since = now - dt.timedelta(seconds=float(cfg.get("auth.login_window_seconds")))
    async with ctx.db.transaction() as tx:
        # One try at a time per address, in every process: each sees every earlier reservation.
        await tx.execute("login_try_lock", client_key=client_key)
        rows = await tx.fetchall("login_try_state", pair_key=pair_key, client_key=client_key, since=since)
        wait = 0.0
        for r in rows:
            ready_at = r["newest"] + dt.timedelta(seconds=backoff_seconds(r["n"], free[r["key"]], first, cap))
            wait = max(wait, (ready_at - now).total_seconds())
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise Throttled(f"too many failed logins from this address; retry in {retry} s", retry)
        await tx.execute("login_try_reserve", pair_key=pair_key, client_key=client_key, now=now, since=since)


def _text(value) -> bool:
    """A non-empty string that is UTF-8 text (a lone surrogate is not, and scrypt could not hash it)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def login(ctx, username, password, *, client: str | None, issue=None) -> dict:
    """POST /api/login (and the web admin's sign-in). `client` is the request's client address
    (client_address.py). Unknown user and wrong password look the same (401) and cost the same.
    `issue(username, epoch, now)` makes the token instead of the API's (the web admin's session
    token, sessions.py)."""
    now = ctx.clock.now()
    if not (_text(username) and _text(password)) or len(password) > 1024:
        raise BadRequest("username and password must be non-empty strings", {"fields": ["username", "password"]})
    pair_key, client_key = _keys(username, client)
    try:
        await _reserve_try(ctx, pair_key, client_key, now)
    except Throttled:
        event(log, "login_throttled", logging.WARNING, user=username[:100], client=client)
        raise
    record = users.load_admins(ctx.cfg).get(username)
    ok = await asyncio.to_thread(verify_password, password, record or _DUMMY_RECORD)
    if not (ok and record is not None):
        # The reservation made above stays: it is this failure's record.
        event(log, "login_failed", logging.WARNING, user=username[:100], client=client)
        raise Unauthorized("wrong username or password")
    await ctx.db.execute("login_try_succeeded", pair_key=pair_key, client_key=client_key)
    epoch = await users.session_epoch(ctx.db, username)
    event(log, "login", user=username, client=client, web=True if issue is not None else None)
    if issue is not None:
        return issue(username, epoch, now)
    return issue_token(ctx.cfg, username, now=now, epoch=epoch)
