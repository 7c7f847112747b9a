"""Sign-in, sign-out, the session check, the language switch, and `/` → `/admin/`.

Sign-in is `sessions.sign_in` over `auth.login` — the same accounts, passwords and throttle as
`POST /api/login` — and its web session token becomes the cookie; it goes back to the page the
admin was on (`next`, a path of ours). **Sign out** is `sessions.sign_out` (this browser's session
only); **Sign out everywhere** `sessions.sign_out_everywhere` (every session of the admin, the API's
tokens included). `GET /admin/session` tells a page's script how long its session has left."""
from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from photoslot import auth, sessions
from photoslot.server.keys import CTX
from photoslot.server.security import client_address
from photoslot.web import i18n, render
from photoslot.web.session import (LANG_COOKIE, LOGIN_PATH, action, back_to, clear_session, current_claims,
                                   form_of, had_session, is_background, read_page_form, set_session)

routes = web.RouteTableDef()


@routes.get("/")
async def root(request):
    raise web.HTTPFound("/admin/")


@routes.get("/admin")
async def admin_no_slash(request):
    raise web.HTTPFound("/admin/")


def login_page(request, *, status: int = 200, username: str = "", error: str | None = None, next_page=None,
               ended: bool = False):
    return render.page(request, "login.html", None, status=status, title="Sign in", username=username, error=error,
                       next_page=next_page or "", ended=ended)


@routes.get(LOGIN_PATH)
async def login_form(request):
    next_page = back_to(request.query.get("next"))
    if await current_claims(request) is not None:
        raise web.HTTPSeeOther(next_page or "/admin/")
    # a cookie that no longer works: the session ended (idle, its day over, signed out elsewhere)
    return login_page(request, next_page=next_page, ended=had_session(request))


@routes.post(LOGIN_PATH)
async def login(request):
    ctx = request.app[CTX]
    _ = render.translate(request)
    # read by our reader: a compressed multipart part is refused (415), never inflated by aiohttp
    form = await read_page_form(request, max_file_bytes=0)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    next_page = back_to(str(form.get("next", "")))
    try:
        token = await sessions.sign_in(ctx, username, password, client=client_address(request))
    except auth.Throttled as exc:
        resp = login_page(request, status=429, username=username, next_page=next_page,
                          error=_("Too many failed sign-ins; try again in {seconds} s.", seconds=exc.retry_after))
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except (auth.Unauthorized, auth.BadRequest):
        return login_page(request, status=401, username=username, next_page=next_page,
                          error=_("Wrong user or password."))
    response = web.HTTPSeeOther(next_page or "/admin/")
    set_session(request, response, token)
    raise response


@routes.post("/admin/logout")
@action("")
async def logout(request, ctx, session):
    """Sign out: this browser's session ends; with `everywhere`, every session of this admin."""
    if form_of(request).get("everywhere") == "1":
        await sessions.sign_out_everywhere(ctx, session.claims, source="web")
    else:
        await sessions.sign_out(ctx, session.claims, source="web")
    response = web.HTTPSeeOther(LOGIN_PATH)
    clear_session(request, response)
    raise response


@routes.get("/admin/session")
async def session_state(request):
    """For the page's script: is this browser signed in, and for how long if left alone. With
    `active=1` (the admin typed or clicked on the page) the session is renewed, as by a page."""
    ctx = request.app[CTX]
    claims = await current_claims(request)
    headers = {"Cache-Control": "no-store"}
    if claims is None:
        return web.json_response({"signed_in": False, "ended": had_session(request)}, status=401, headers=headers)
    token = sessions.renewal(ctx, claims) if request.query.get("active") == "1" or not is_background(request) else None
    if token is not None:
        claims = token["claims"]
    response = web.json_response(sessions.remaining(ctx, claims), headers=headers)
    if token is not None:
        set_session(request, response, token)
    return response


@routes.get("/admin/lang/{lang}")
async def switch_language(request):
    """Remembers the language in a cookie and goes back to the page (same origin only)."""
    lang = request.match_info["lang"]
    if lang not in i18n.LANGUAGES:
        raise web.HTTPNotFound()
    back = request.query.get("next", "/admin/")
    parts = urlsplit(back)
    if parts.scheme or parts.netloc or not back.startswith("/admin"):
        back = "/admin/"
    response = web.HTTPSeeOther(back)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", httponly=True, samesite="Strict",
                        secure=request.secure)
    raise response
