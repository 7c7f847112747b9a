"""Rendering a page: Jinja2 (autoescaped: whatever an admin typed is shown as text), the language,
the navigation, the session's CSRF token, the studio's time zone (every time a page shows is in it,
named), the provider banner, and the page headers; and the error page middleware."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web

from photoslot import auth, outcomes, studio_time
from photoslot.db import DatabaseUnavailable
from photoslot.errors import PhotoslotError
from photoslot.logs import escape_controls, event
from photoslot.web import i18n
from photoslot.server.keys import CTX
from photoslot.web.session import BANNER, LANG_COOKIE, PAGE_HEADERS, ZONE, Session, current_claims

log = logging.getLogger("photoslot.web")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
NAV = (("slots", "/admin/", "Slots"), ("jobs", "/admin/jobs", "Jobs"), ("stats", "/admin/stats", "Statistics"),
       ("templates", "/admin/templates", "Templates"), ("providers", "/admin/providers", "Providers"),
       ("settings", "/admin/settings", "Settings"), ("audit", "/admin/audit", "Audit"))


def _shown(value):
    """Every `{{ value }}` of a page: besides the HTML escaping, control characters and bidi
    overrides from outside are written visibly (logs.escape_controls; line breaks stay). Markup
    (a macro's output) was made of values that passed here already."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return escape_controls(value, keep_lines=True)
    return value


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                         autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                         undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                         finalize=_shown)
    app.middlewares.append(page_errors)


def lang_of(request: web.Request) -> str:
    return i18n.choose(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"))


def page(request: web.Request, template: str, session: Session | None, *, status: int = 200, active: str = "",
         title: str = "", **context) -> web.Response:
    lang = lang_of(request)
    _ = i18n.translator(lang)
    zone = request.get(ZONE) or studio_time.pc_zone()

    def when(t, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """A time in the studio's zone (the zone is named once on the page, see base.html)."""
        return zone.local(t).strftime(fmt) if t is not None else "—"

    response = aiohttp_jinja2.render_template(template, request, {
        "_": _, "lang": lang, "session": session, "csrf": session.csrf if session else "",
        "msg": lambda text: i18n.service_message(text, _), "nav": NAV, "active": active,
        "title": _(title) if title else "", "path": request.path_qs, "zone": zone, "when": when,
        "words": lambda reason: _(outcomes.reason_words(reason)) if reason else "",
        "banner": request.get(BANNER) or [],
        **context}, status=status)
    response.headers.update(PAGE_HEADERS)
    response.headers["Content-Language"] = lang
    return response


def translate(request: web.Request):
    return i18n.translator(lang_of(request))


@web.middleware
async def page_errors(request: web.Request, handler):
    """Under /admin/: a refusal or failure is a page in the admin's language, never a traceback."""
    if not request.path.startswith("/admin"):
        return await handler(request)
    _ = translate(request)
    try:
        return await handler(request)
    except auth.Forbidden as exc:
        status, message = 403, _("Not allowed: {reason}", reason=exc.message)
    except PhotoslotError as exc:
        status, message = exc.http_status, exc.message
    except DatabaseUnavailable:
        status, message = 503, _("The database is not reachable; retry shortly.")
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/admin/static/"):
            raise
        if "X-Photoslot-Session" in exc.headers:  # a page's own background request: its session ended
            return web.Response(status=exc.status, text=exc.text or "", headers={
                "X-Photoslot-Session": exc.headers["X-Photoslot-Session"], **PAGE_HEADERS})
        status, message = exc.status, exc.reason
    except Exception:
        log.exception("admin page %s %s failed", request.method, request.path)
        status, message = 500, _("Internal error; see the server log.")
    event(log, "admin_page_refused", logging.INFO, path=request.path, status=status)
    session = None
    if status != 503:  # signed in: the error page keeps the navigation and Sign out
        with contextlib.suppress(Exception):
            claims = await current_claims(request)
            session = Session(request.app[CTX].cfg, claims) if claims else None
    return page(request, "error.html", session, status=status, title="Error", message=message, status_code=status)
