"""Web admin sessions that last a working day.

A web session is the admin API's own JWT (auth.py) held in a cookie, with two more claims: `sid`,
the session's id, kept for the session's whole life, and `auth_time`, when its admin signed in.

* **Sliding renewal.** A token lives `auth.web_session_idle_minutes` (120). While the page is used —
  a page opened, a form sent, typing or clicking on a page (admin.js reports it) — the cookie gets a
  new token with a new expiry, at most once a minute (a quarter of the idle time when that is
  shorter); nothing is written anywhere. The
  pages' own live refresh does not count as use: a page left alone ends when its idle time is over.
* **An absolute end.** However much it is used, a session ends `auth.web_session_max_hours` (14)
  after its sign-in: a lost or shared laptop is not signed in for ever.
* **Sign out** ends this session only (its `sid`, refused from then on by the pages and the API, in
  every process); **Sign out everywhere** ends every session of the admin (the session epoch,
  users.py — as `POST /api/logout`, `users revoke` and `users reset` do).

Every rule reads the injected clock (tests move it through a whole day).
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from photoslot import audit, auth, users

RENEW_EVERY = dt.timedelta(seconds=60)  # at most; a quarter of the idle time when that is shorter


@dataclass(frozen=True)
class Lifetimes:
    idle: dt.timedelta
    cap: dt.timedelta

    @classmethod
    def from_config(cls, cfg) -> "Lifetimes":
        idle = dt.timedelta(minutes=float(cfg.get("auth.web_session_idle_minutes")))
        cap = dt.timedelta(hours=float(cfg.get("auth.web_session_max_hours")))
        return cls(idle=idle, cap=max(cap, idle))


def ends_at(claims: dict, lifetimes: Lifetimes) -> dt.datetime:
    """The session's absolute end: its sign-in plus the cap."""
    return dt.datetime.fromtimestamp(int(claims["auth_time"]), dt.timezone.utc) + lifetimes.cap


def _token(cfg, username: str, *, epoch: int, now: dt.datetime, sid: str, auth_time: int, permissions,
           lifetimes: Lifetimes) -> dict:
    end = dt.datetime.fromtimestamp(auth_time, dt.timezone.utc) + lifetimes.cap
    ttl = min(lifetimes.idle, end - now).total_seconds()
    token = auth.issue_token(cfg, username, now=now, epoch=epoch, permissions=permissions, ttl_seconds=max(1, ttl),
                             sid=sid, auth_time=auth_time)
    token["cookie_seconds"] = max(1, int((end - now).total_seconds()))  # kept to the end: "session ended" is known
    iat = int(now.timestamp())
    token["claims"] = {"sub": username, "permissions": list(permissions), "iat": iat,
                       "exp": iat + int(token["expires_in_sec"]), "ep": int(epoch), "sid": sid, "auth_time": auth_time}
    return token


async def sign_in(ctx, username, password, *, client: str | None) -> dict:
    """The page's sign-in: auth.login (its throttle, its audit of failures), a session token."""
    lifetimes = Lifetimes.from_config(ctx.cfg)

    def issue(name: str, epoch: int, now: dt.datetime) -> dict:
        return _token(ctx.cfg, name, epoch=epoch, now=now, sid=uuid.uuid4().hex, auth_time=int(now.timestamp()),
                      permissions=auth.PERMISSIONS, lifetimes=lifetimes)

    return await auth.login(ctx, username, password, client=client, issue=issue)


def renewal(ctx, claims: dict) -> dict | None:
    """A fresh token for a session in use, or None: not a web session, renewed less than
    RENEW_EVERY ago, or its absolute end reached (it then ends when this token expires)."""
    if "sid" not in claims:
        return None
    now = ctx.clock.now()
    lifetimes = Lifetimes.from_config(ctx.cfg)
    issued = dt.datetime.fromtimestamp(int(claims["iat"]), dt.timezone.utc)
    if now - issued < min(RENEW_EVERY, lifetimes.idle / 4) or now >= ends_at(claims, lifetimes):
        return None
    return _token(ctx.cfg, claims["sub"], epoch=claims["ep"], now=now, sid=claims["sid"],
                  auth_time=int(claims["auth_time"]), permissions=claims["permissions"], lifetimes=lifetimes)


def remaining(ctx, claims: dict) -> dict:
    """How long the session has if left alone now, and why it would end (idle or its cap)."""
    now = ctx.clock.now()
    expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.timezone.utc)
    left = max(0, int((expires - now).total_seconds()))
    capped = "sid" in claims and expires >= ends_at(claims, Lifetimes.from_config(ctx.cfg))
    return {"signed_in": True, "user": claims["sub"], "expires_in_sec": left, "ends": "cap" if capped else "idle",
            "idle_sec": int(Lifetimes.from_config(ctx.cfg).idle.total_seconds())}


async def sign_out(ctx, claims: dict, *, source: str) -> None:
    """Sign out: this session only — the others of the same admin go on. (A token of the API,
    without a session id, ends every session: it cannot be told apart.)"""
    if "sid" not in claims:
        await auth.logout(ctx, claims, source=source)
        return
    lifetimes = Lifetimes.from_config(ctx.cfg)
    actor = f"admin:{claims['sub']}"
    async with ctx.db.transaction() as tx:
        await tx.execute("session_end_one", sid=claims["sid"], username=claims["sub"], now=ctx.clock.now(),
                         forget_after=ends_at(claims, lifetimes) + dt.timedelta(minutes=1))
        await audit.record(tx, ctx.clock, actor=actor, source=source, action="users.logout", target=claims["sub"],
                           details={"sessions": "this browser"})


async def sign_out_everywhere(ctx, claims: dict, *, source: str) -> None:
    """Every session of this admin ends, on every browser and for the API."""
    await users.end_sessions(ctx, claims["sub"], actor=f"admin:{claims['sub']}", source=source,
                             action="users.logout", details={"everywhere": True})
