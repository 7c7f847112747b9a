"""The web admin's session: the API's JWT in a cookie, a CSRF token bound to it, the page headers.

- The cookie holds the same token `POST /api/login` answers (auth.login), `HttpOnly` (no script can
  read it), `SameSite=Strict` (no other site's page sends it), `Secure` when served over TLS — here,
  or by a proxy listed in `server.trusted_proxies` that says `X-Forwarded-Proto: https` — and
  it expires with the token. Every page request goes through `auth.authenticate`, so a sign-out,
  `users revoke` or `users reset` ends the page session as it ends the API's.
- The CSRF token is an HMAC of the token's `jti` under the studio's JWT secret: bound to this
  session, nothing stored, unguessable without the secret. Every POST from a page carries it in the
  `csrf` form field; a POST without the right one is refused 403 before its handler runs.
- Pages get their own Content-Security-Policy: scripts, styles and images from this origin only
  (thumbnails of a test shot's original are `data:` images made on the server), no inline script,
  no frames.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Awaitable, Callable

from aiohttp import web

from photoslot import auth, users
from photoslot.server.keys import CTX
from photoslot.server.security import prove_client, served_over_https

COOKIE = "photoslot_session"
LANG_COOKIE = "photoslot_lang"
CSRF_FIELD = "csrf"
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LOGIN_PATH = "/admin/login"


def csrf_token(cfg, claims: dict) -> str:
    return hmac.new(users.jwt_secret(cfg), f"csrf:{claims['jti']}".encode(), hashlib.sha256).hexdigest()


def is_tls(request: web.Request) -> bool:
    return served_over_https(request)


def set_session(request: web.Request, response: web.StreamResponse, token: dict) -> None:
    response.set_cookie(COOKIE, token["access_token"], max_age=int(token["expires_in_sec"]), path="/",
                        httponly=True, samesite="Strict", secure=is_tls(request))


def clear_session(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


async def current_claims(request: web.Request) -> dict | None:
    """The claims of the cookie's token when it is valid right now; None otherwise."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        claims = await auth.authenticate(request.app[CTX], token)
    except auth.Unauthorized:
        return None
    prove_client(request)
    return claims


class Session:
    """What a page handler knows about who is signed in."""

    def __init__(self, cfg, claims: dict) -> None:
        self.claims = claims
        self.user = claims["sub"]
        self.permissions = frozenset(claims.get("permissions") or ())
        self.csrf = csrf_token(cfg, claims)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def actor(self) -> str:
        return f"admin:{self.user}"


PageHandler = Callable[[web.Request, object, Session], Awaitable[web.StreamResponse]]


def _to_login(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(LOGIN_PATH)


def page(permission: str):
    """A GET page: a valid session cookie with `permission` (403 page without it), else to sign-in."""

    def wrap(fn: PageHandler):
        async def handler(request: web.Request) -> web.StreamResponse:
            ctx = request.app[CTX]
            claims = await current_claims(request)
            if claims is None:
                _to_login(request)
            auth.require(claims, permission)
            return await fn(request, ctx, Session(ctx.cfg, claims))

        handler.__name__ = fn.__name__
        return handler

    return wrap


async def url_form(request: web.Request):
    """A page form's fields. Only `application/x-www-form-urlencoded`: aiohttp would inflate a
    multipart field that says `Content-Encoding: gzip` while parsing it (uploads read their
    multipart body with toolkit.read_form, which refuses such parts)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPUnsupportedMediaType()
    return await request.post()


async def _form_csrf(request: web.Request) -> str:
    """The CSRF field of a form body; for multipart bodies the handler reads the form itself, so the
    token travels in the X-CSRF-Token header or the query string there (admin.js adds it)."""
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        return str(form.get(CSRF_FIELD, ""))
    return request.headers.get("X-CSRF-Token") or request.query.get(CSRF_FIELD, "")


def action(permission: str):
    """A POST from a page: a valid session, the session's CSRF token, and `permission`; otherwise
    403 (or sign-in) before the handler — and so before anything changes."""

    def wrap(fn: PageHandler):
        async def handler(request: web.Request) -> web.StreamResponse:
            ctx = request.app[CTX]
            claims = await current_claims(request)
            if claims is None:
                _to_login(request)
            session = Session(ctx.cfg, claims)
            given = await _form_csrf(request)
            if not hmac.compare_digest(given.encode(), session.csrf.encode()):
                raise auth.Forbidden("missing or wrong CSRF token; reload the page and try again")
            if permission != "":
                auth.require(claims, permission)
            return await fn(request, ctx, session)

        handler.__name__ = fn.__name__
        return handler

    return wrap
