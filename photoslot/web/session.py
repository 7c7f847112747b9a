"""The web admin's session: the API's JWT in a cookie, a CSRF token, the page headers.

- The cookie holds a web session token (sessions.py: the API's JWT with a session id and its
  sign-in time), `HttpOnly` (no script can read it), `SameSite=Strict` (no other site's page sends
  it), `Secure` when served over TLS — here, or by a proxy listed in
  `server.trusted_proxies` that says `X-Forwarded-Proto: https`. It is kept until the session's absolute end, so a page can
  tell "your session ended" from "you never signed in". Every page request goes through
  `auth.authenticate`, so Sign out, `users revoke` or `users reset` end the page session as they
  end the API's. A page used (not its own live refresh) renews the token (sessions.renewal).
- The CSRF token is an HMAC, under the studio's JWT secret, of the admin and their session epoch:
  unguessable without the secret, nothing stored, and the same in every tab of the admin — signing
  in again in another tab (a new session) does not make a form already open refused; ending every
  session of the admin changes it. Every POST from a page carries it in the `csrf` form field
  (first in the form, multipart uploads included), never in a URL; a POST without the right one is
  refused 403 before its handler runs.
- Pages get their own Content-Security-Policy: scripts, styles and images from this origin only
  (thumbnails of a test shot's original are `data:` images made on the server), no inline script,
  no frames.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web
from multidict import MultiDict

from photoslot import auth, media, provider_status, sessions, studio_time, users
from photoslot.server.keys import CTX
from photoslot.server.security import prove_client, served_over_https
from photoslot.server.toolkit import CompressedPart, FormError, read_bounded, read_form

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
# Requests a page makes by itself (the live refresh, the session check): they do not renew the
# session, and a session that ended gets a plain 401 instead of the sign-in page.
BACKGROUND = "X-Requested-With"
# request key: the parsed form of a page POST
FORM = web.RequestKey("photoslot_form", MultiDict) if hasattr(web, "RequestKey") else "photoslot_form"
# Filled for every signed-in page by the decorators below: the studio's zone, the providers down.
ZONE = web.RequestKey("photoslot_zone", object) if hasattr(web, "RequestKey") else "photoslot_zone"
BANNER = web.RequestKey("photoslot_banner", list) if hasattr(web, "RequestKey") else "photoslot_banner"
MAX_FORM_TEXT = 64 * 1024  # a text field of a page form (a prompt of 4,000 Cyrillic characters is 8 KB)
MAX_FORM_FILES = 4


def csrf_token(cfg, claims: dict) -> str:
    return hmac.new(users.jwt_secret(cfg), f"csrf:{claims['sub']}:{claims['ep']}".encode(), hashlib.sha256).hexdigest()


def is_tls(request: web.Request) -> bool:
    return served_over_https(request)


def set_session(request: web.Request, response: web.StreamResponse, token: dict) -> None:
    max_age = int(token.get("cookie_seconds") or token["expires_in_sec"])
    response.set_cookie(COOKIE, token["access_token"], max_age=max_age, path="/",
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


def had_session(request: web.Request) -> bool:
    """A session cookie came along (valid or not): with no valid session, it ended."""
    return bool(request.cookies.get(COOKIE))


def is_background(request: web.Request) -> bool:
    return request.headers.get(BACKGROUND) in ("refresh", "session")


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


def back_to(path: str | None) -> str | None:
    """A page of ours to come back to after signing in (never another site, never the sign-in)."""
    if not path:
        return None
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin") or parts.path.startswith(LOGIN_PATH):
        return None
    if parts.path.startswith(("/admin/static/", "/admin/lang/", "/admin/session")) or "\\" in path:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _to_login(request: web.Request) -> None:
    """No valid session: a page's own background request is told 401; a person goes to sign in,
    and back to this page afterwards (a form sent after the session ended: back to its page)."""
    if is_background(request):
        raise web.HTTPUnauthorized(text="session ended", headers={"X-Photoslot-Session": "ended"})
    page = request.path_qs if request.method == "GET" else None
    if page is None:
        referer = request.headers.get("Referer", "")
        here = f"{request.scheme}://{request.host}"
        page = referer[len(here):] if referer.startswith(here + "/") else None
    target = back_to(page)
    raise web.HTTPSeeOther(LOGIN_PATH + (f"?next={quote(target, safe='/')}" if target and target != "/admin/" else ""))


def _renew(request: web.Request, ctx, claims: dict, response: web.StreamResponse) -> None:
    if is_background(request) and request.query.get("active") != "1":
        return
    token = sessions.renewal(ctx, claims)
    if token is not None:
        set_session(request, response, token)


def _run(permission: str, *, post: bool):
    def wrap(fn: PageHandler):
        async def handler(request: web.Request) -> web.StreamResponse:
            ctx = request.app[CTX]
            claims = await current_claims(request)
            if claims is None:
                _to_login(request)
            session = Session(ctx.cfg, claims)
            if post:
                form = await read_page_form(request, media.max_upload_bytes(ctx.cfg))
                if not hmac.compare_digest(str(form.get(CSRF_FIELD, "")).encode(), session.csrf.encode()):
                    raise auth.Forbidden("missing or wrong CSRF token; reload the page and try again")
            if permission:
                auth.require(claims, permission)
            await page_context(request, ctx)
            try:
                response = await fn(request, ctx, session)
            except web.HTTPException as exc:  # a redirect: the renewed cookie goes with it
                _renew(request, ctx, claims, exc)
                raise
            _renew(request, ctx, claims, response)
            return response

        handler.__name__ = fn.__name__
        return handler

    return wrap


async def page_context(request: web.Request, ctx) -> None:
    """What every signed-in page shows besides its own content: times in the studio's zone, and the
    banner while a provider is down (from this process's copy: no statement while all are up)."""
    request[ZONE] = await studio_time.load(ctx.db)
    request[BANNER] = await provider_status.down_now(ctx)


def page(permission: str):
    """A GET page: a valid session cookie with `permission` (403 page without it), else to sign-in."""
    return _run(permission, post=False)


def action(permission: str):
    """A POST from a page: a valid session, the session's CSRF token, and `permission`; otherwise
    403 (or sign-in) before the handler — and so before anything changes. The handler finds the
    form, read once and bounded, in `request[FORM]` (`form_of`)."""
    return _run(permission, post=True)


class Upload:
    """A file sent with a page form."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self.data = data


async def read_page_form(request: web.Request, max_file_bytes: int) -> MultiDict:
    """The whole form of a page POST: text fields as str, chosen files as Upload (an empty file
    input is left out), each bounded. Read once; stored in request[FORM]."""
    if FORM in request:
        return request[FORM]
    if request.content_type.startswith("multipart/"):
        fields: MultiDict = MultiDict()

        async def on_part(part) -> None:
            if part.filename is not None:
                data = await read_bounded(part, max_file_bytes)
                if data is None:
                    raise media.MediaTooLarge(f"the file is larger than {max_file_bytes // (1024 * 1024)} MB",
                                              {"max_bytes": max_file_bytes})
                if data or part.filename:
                    if sum(isinstance(v, Upload) for v in fields.values()) >= MAX_FORM_FILES:
                        raise auth.BadRequest(f"at most {MAX_FORM_FILES} files in one form")
                    if data:
                        fields.add(part.name or "", Upload(part.filename, data))
                return
            raw = await read_bounded(part, MAX_FORM_TEXT)
            if raw is None:
                raise auth.BadRequest(f"form field {part.name!r} is too long")
            fields.add(part.name or "", raw.decode("utf-8", errors="replace"))

        try:
            await read_form(request, on_part)
        except CompressedPart:  # never inflated: refused like any compressed body
            raise web.HTTPUnsupportedMediaType() from None
        except FormError as exc:
            raise auth.BadRequest(str(exc)) from None
    else:
        # multipart bodies are read above by our reader, which refuses compressed parts (aiohttp's
        # own request.post() would inflate a part that says Content-Encoding: gzip)
        posted = await request.post()
        fields = MultiDict((k, v) for k, v in posted.items() if isinstance(v, str))
    request[FORM] = fields
    return fields


def form_of(request: web.Request) -> MultiDict:
    return request[FORM]
