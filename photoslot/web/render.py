"""Rendering a page: Jinja2 (autoescaped: whatever an admin typed is shown as text), the language,
the navigation, the session's CSRF token, the studio's time zone (every time a page shows is in it,
named), the provider banner, and the page headers; and the error page middleware."""
from __future__ import annotations

import contextlib
import logging
from http import HTTPStatus
from pathlib import Path

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web
from markupsafe import Markup, escape

from photoslot import auth, outcomes, studio_time
from photoslot.db import DatabaseUnavailable
from photoslot.errors import PhotoslotError
from photoslot.logs import escape_controls, event
from photoslot.web import i18n, words
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
         title: str = "", raw_title: str | None = None, **context) -> web.Response:
    """A page: `title` is a catalogue text; `raw_title` one made of data (a slot's id and name)."""
    lang = lang_of(request)
    _ = i18n.translator(lang)
    zone = request.get(ZONE) or studio_time.pc_zone()

    def when(t, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """A time in the studio's zone (the zone is named once on the page, see base.html)."""
        return zone.local(t).strftime(fmt) if t is not None else "—"

    response = aiohttp_jinja2.render_template(template, request, {
        "_": _, "lang": lang, "session": session, "csrf": session.csrf if session else "",
        "msg": lambda text: message(text, _), "nav": NAV, "active": active,
        "title": raw_title if raw_title is not None else (_(title) if title else ""), "path": request.path_qs, "zone": zone, "when": when,
        "words": lambda reason: reason_words(reason, _),
        "param_label": lambda name: words.param(name, _), "role_label": lambda role: words.role(role, _),
        "op_label": lambda p, o: words.operation(p, o, _), "provider_name": words.provider,
        "state": lambda s: _(s) if s else "—", "money": money, "foreign": foreign,
        "who": lambda a: words.actor(a, _), "kind": words.kind, "field_name": lambda key: words.field(key, _),
        "code": lambda v: Markup('<code translate="no">{}</code>').format(v), "secure": request.secure,
        "banner": request.get(BANNER) or [],
        **context}, status=status)
    response.headers.update(PAGE_HEADERS)
    response.headers["Content-Language"] = lang
    return response


def reason_words(reason: str | None, _) -> str:
    """A reason code (what a booth got) in words; a code without words is remembered as missing."""
    if not reason:
        return ""
    if reason not in outcomes.REASON_WORDS:
        i18n.missing(f"<no words for the reason {reason!r}>")
        return reason
    return _(outcomes.REASON_WORDS[reason])


def message(text: str | None, _) -> str:
    """A service's message (a field's, a refusal's, a detail a booth was told) in the page's language,
    its ids in words: "gemini/style_transfer needs a 'style' template" → "Style transfer (Google
    Gemini) needs this template: Style template"."""
    if not text:
        return ""

    def value(name: str, raw: str):
        if name == "op":
            return words.op_key_words(raw, _)
        if name == "role":
            return words.role(raw, _)
        if name == "reason":
            return reason_words(raw, _)
        if name == "provider":
            return words.provider(raw)
        if name == "actor":
            return words.actor(raw, _)
        if name == "permission":
            return words.permission(raw, _)
        if name == "why":  # a message inside a message: in words too
            return message(raw, _)
        if name == "last":  # a provider's own answer: its words, marked as English
            return foreign(raw)
        if name == "code":  # a code of the protocol, as the booth gets it
            return Markup('<code translate="no">{}</code>').format(raw)
        return raw

    def markup(msgid: str, **values) -> Markup:
        return Markup(escape(_(msgid))).format(**values)

    known = i18n.known_message(str(text), markup, value)
    if known is None:  # shown as it came, marked as English (and missing from the catalogue)
        i18n.missing(str(text))
        return foreign(str(text))
    return known


def foreign(text: str | None) -> Markup:
    """Text from outside (a provider's own answer) shown as it came: in English, marked so (a
    screen reader reads it in English; a translator leaves it)."""
    return Markup('<q lang="en" translate="no">{}</q>').format(text or "")


def money(amount, currency: str | None) -> str:
    """An estimated spend to the cent: "0.05 USD" (the figures keep their fractions of a cent)."""
    try:
        return f"{float(amount or 0):.2f} {currency or ''}".strip()
    except (TypeError, ValueError):
        return "—"


def translate(request: web.Request):
    return i18n.translator(lang_of(request))


# What an error page says first, by its status (the service's own message follows when the catalogue
# knows it; an unknown one is logged, not shown in one language only).
STATUS_WORDS = {
    400: "The request was not understood.",
    401: "Sign in first.",
    403: "Not allowed.",
    404: "Not found: there is no such page or item.",
    405: "This address does not take this kind of request.",
    409: "Changed meanwhile: reload and try again.",
    410: "Gone: it has expired or was removed.",
    413: "Too large.",
    422: "Refused: the values were not accepted.",
    429: "Too many requests; wait a moment and try again.",
    500: "Internal error; see the server log.",
    503: "The database is not reachable; retry shortly.",
}


@web.middleware
async def page_errors(request: web.Request, handler):
    """Under /admin/: a refusal or failure is a page in the admin's language, never a traceback."""
    if not request.path.startswith("/admin"):
        return await handler(request)
    _ = translate(request)
    detail = None
    try:
        return await handler(request)
    except PhotoslotError as exc:  # auth.Forbidden included
        status, detail = exc.http_status, exc.message
    except DatabaseUnavailable:
        status = 503
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/admin/static/"):
            raise
        if "X-Photoslot-Session" in exc.headers:  # a page's own background request: its session ended
            return web.Response(status=exc.status, text=exc.text or "", headers={
                "X-Photoslot-Session": exc.headers["X-Photoslot-Session"], **PAGE_HEADERS})
        status = exc.status
        with contextlib.suppress(ValueError):  # a reason of our own (not the status's phrase) is said too
            detail = exc.reason if exc.reason != HTTPStatus(exc.status).phrase else None
    except Exception:
        log.exception("admin page %s %s failed", request.method, request.path)
        status = 500
    event(log, "admin_page_refused", logging.INFO, path=request.path, status=status)
    session = None
    if status != 503:  # signed in: the error page keeps the navigation and Sign out
        with contextlib.suppress(Exception):
            claims = await current_claims(request)
            session = Session(request.app[CTX].cfg, claims) if claims else None
    headline = _(STATUS_WORDS.get(status) or STATUS_WORDS[400 if status < 500 else 500])
    said = i18n.known_message(detail, _, lambda name, raw: words.permission(raw, _) if name == "permission" else raw) \
        if detail else None
    if detail and said is None:
        i18n.missing(detail)  # not shown: the headline says it in the page's language
    return page(request, "error.html", session, status=status, title="Error", headline=headline, detail=said,
                status_code=status)
