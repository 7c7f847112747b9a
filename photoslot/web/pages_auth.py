"""Sign-in, sign-out, the language switch, and `/` → `/admin/`.

Sign-in is `auth.login` — the same accounts, passwords and throttle as `POST /api/login` — and
its token becomes the session cookie. Sign-out is `auth.logout`: every token of that admin is
refused from then on, not only this cookie."""
from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from photoslot import auth
from photoslot.server.keys import CTX
from photoslot.server.security import client_address
from photoslot.web import i18n, render
from photoslot.web.session import (LANG_COOKIE, LOGIN_PATH, action, clear_session, current_claims, set_session,
                                   url_form)

routes = web.RouteTableDef()


@routes.get("/")
async def root(request):
    raise web.HTTPFound("/admin/")


@routes.get("/admin")
async def admin_no_slash(request):
    raise web.HTTPFound("/admin/")


@routes.get(LOGIN_PATH)
async def login_form(request):
    if await current_claims(request) is not None:
        raise web.HTTPSeeOther("/admin/")
    return render.page(request, "login.html", None, title="Sign in", error=None, username="")


@routes.post(LOGIN_PATH)
async def login(request):
    ctx = request.app[CTX]
    _ = render.translate(request)
    form = await url_form(request)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    try:
        token = await auth.login(ctx, username, password, client=client_address(request))
    except auth.Throttled as exc:
        resp = render.page(request, "login.html", None, status=429, title="Sign in", username=username,
                           error=_("Too many failed sign-ins; try again in {seconds} s.", seconds=exc.retry_after))
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except (auth.Unauthorized, auth.BadRequest):
        return render.page(request, "login.html", None, status=401, title="Sign in", username=username,
                           error=_("Wrong user or password."))
    response = web.HTTPSeeOther("/admin/")
    set_session(request, response, token)
    raise response


@routes.post("/admin/logout")
@action("")
async def logout(request, ctx, session):
    await auth.logout(ctx, session.claims, source="web")
    response = web.HTTPSeeOther(LOGIN_PATH)
    clear_session(request, response)
    raise response


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
