"""Russian and English from one message catalogue (locale/ru.po, read with Babel at start-up).

Every string a page shows is written in English in the code and the templates, wrapped in `_()`; the
catalogue gives its Russian. The language is the `photoslot_lang` cookie when set (the switch on
every page), else the best match of the browser's Accept-Language, else English. The .po file is
read as it is — no compile step, nothing generated to keep in step.

A text a page asks for that the catalogue does not have is shown in English and remembered in
`MISSES` (a bounded set, logged once per text): the catalogue's coverage test renders every page
in every state and fails on any entry there, whichever language the page was in.
"""
from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po
from markupsafe import Markup, escape

LANGUAGES = ("en", "ru")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
MISSES: set[str] = set()  # texts asked for that the catalogue lacks (see the module's note)
MAX_MISSES = 500
log = logging.getLogger("photoslot.web")


def missing(text: str) -> None:
    """A text a page shows that has no Russian: remembered (bounded) and logged once."""
    if text in MISSES or len(MISSES) >= MAX_MISSES:
        return
    MISSES.add(text)
    log.warning("untranslated page text: %r", text[:200])


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    if lang == DEFAULT:
        return {}
    with open(LOCALE_DIR / f"{lang}.po", "rb") as fh:
        cat = read_po(fh)  # no locale: only the messages are needed, not Babel's locale data
    return {m.id: m.string for m in cat if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


def translator(lang: str):
    messages = catalogue(lang)
    russian = catalogue("ru")

    def gettext(text: str, **values) -> str:
        if text not in russian:  # checked in English too: every page text has both languages
            missing(text)
        out = messages.get(text, text)
        # with values: the text escaped and each value escaped unless it is markup already (a
        # provider's own words marked as English, a code), so a page shows both as meant
        return Markup(escape(out)).format(**values) if values else out

    return gettext


def negotiate(accept_language: str | None) -> str:
    """The first of LANGUAGES the browser asks for (by its q order), else English."""
    wanted = []
    for i, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag:
            wanted.append((-q, i, tag.replace("_", "-")))
    for _q, _i, tag in sorted(wanted):
        lang = tag.split("-", 1)[0].strip().lower()
        if lang in LANGUAGES:
            return lang
    return DEFAULT


def choose(cookie: str | None, accept_language: str | None) -> str:
    return cookie if cookie in LANGUAGES else negotiate(accept_language)


# The services' per-field messages (catalogue, slots, settings, templates) are English sentences
# with values in them; these patterns give the page their Russian. A message no pattern knows is
# shown as the service wrote it.
MESSAGES = [
    (r"a prompt is required for (?P<op>\S+)", "a prompt is required for {op}"),
    (r"(?P<op>\S+) takes no prompt", "{op} takes no prompt"),
    (r"(?P<op>\S+) needs a '(?P<role>\w+)' template.*", "{op} needs this template: {role}"),
    (r"must be a template id \(UUID\).*", "must be one of the uploaded templates"),
    (r"must be at least (?P<n>[-\d.e+]+)", "must be at least {n}"),
    (r"must be at most (?P<n>[-\d.e+]+)", "must be at most {n}"),
    (r"must be at most (?P<n>\d+) characters", "must be at most {n} characters"),
    (r"must be at most (?P<n>\d+) words", "must be at most {n} words"),
    (r"needs a model that offers sizes \((?P<models>[^)]+)\); set model too",
     "needs a model that offers sizes ({models}); set model too"),
    (r"(?P<model>\S+) answers at one size; image_size needs (?P<models>.+)",
     "{model} answers at one size; image_size needs {models}"),
    (r"must be a string of at most (?P<n>\d+) characters", "must be at most {n} characters"),
    (r"must be an integer", "must be an integer"),
    (r"must be (?:a|a finite) number", "must be a number"),
    (r"must be true or false", "must be true or false"),
    (r"must be one of: (?P<choices>.+)", "must be one of: {choices}"),
    (r"must be between (?P<lo>[\d.]+) and (?P<hi>[\d.]+) seconds", "must be between {lo} and {hi} seconds"),
    (r"must be between (?P<lo>[\d.]+) and (?P<hi>[\d.]+) hours", "must be between {lo} and {hi} hours"),
    (r"must be (?P<lo>\d+) to (?P<hi>\d+) characters", "must be {lo} to {hi} characters"),
    (r"must be (?P<lo>\d+) to (?P<hi>\d+) characters without spaces", "must be {lo} to {hi} characters without spaces"),
    (r"choose a provider", "choose a provider"),
    # the public address and the time zone (public_address.py, studio_time.py, settings.py)
    (r"must start with http:// or https://, e\.g\. (?P<example>\S+)", "must start with http:// or https://, e.g. {example}"),
    (r"must name a host, e\.g\. (?P<example>\S+)", "must name a host, e.g. {example}"),
    (r"must not carry a user name or password", "must not carry a user name or password"),
    (r"must not have a query \(\?…\) or fragment \(#…\)", "must not have a query (?…) or fragment (#…)"),
    (r"the port must be a number from 1 to 65535", "the port must be a number from 1 to 65535"),
    (r"must be a URL such as (?P<example>\S+) \(at most (?P<n>\d+) characters, no spaces\)",
     "must be a URL such as {example} (at most {n} characters, no spaces)"),
    (r"is set in (?P<where>.+) \(server\.public_base_url\); change it there",
     "is set in {where} (server.public_base_url); change it there"),
    (r"must be a time zone such as Europe/Moscow or UTC\+03:00", "must be a time zone such as Europe/Moscow or UTC+03:00"),
    (r"must be an offset between UTC-14:00 and UTC\+14:00", "must be an offset between UTC-14:00 and UTC+14:00"),
    (r"unknown time zone (?P<name>.+); use a name such as Europe/Moscow or an offset such as UTC\+03:00",
     "unknown time zone {name}; use a name such as Europe/Moscow or an offset such as UTC+03:00"),
    # the slot form's templates (templates.save_slot) and the page's own
    (r"a template is chosen for this role already; tick Replace to put the new image in its place",
     "a template is chosen for this role already; tick Replace to put the new image in its place"),
    (r"not stored, as nothing was saved: choose the image again", "not stored, as nothing was saved: choose the image again"),
    (r"this template was deleted meanwhile; choose another", "this template was deleted meanwhile; choose another"),
    (r"(?P<op>\S+) takes no '(?P<role>\w+)' template.*", "{op} takes no template: {role}"),
    (r"the label must be at most (?P<n>\d+) characters", "the label must be at most {n} characters"),
    (r"this session may not upload templates", "this session may not upload templates"),
    (r"choose a photo for the test shot", "choose a photo for the test shot"),
    (r"Tick the confirmation to purge\.", "Tick the confirmation to purge."),
    (r"The two passwords differ; type the same one in both fields\.",
     "The two passwords differ; type the same one in both fields."),
    (r"choose an image", "choose an image"),
    (r"the image: (?P<why>.+)", "the image is refused: {why}"),
    (r"the file is larger than (?P<n>\d+) MB", "the file is larger than {n} MB"),
    (r"no such slot", "no such slot"),
    (r"must be before 'to'", "must be before the end"),
    (r"the range may span at most (?P<n>\d+) days", "the range may span at most {n} days"),
    (r"must be a date such as (?P<example>\S+)", "must be a date such as {example}"),
    # what an error page says after its headline (render.page_errors)
    (r"no job \S+|no such job", "No such job."),
    (r"this job has no result", "This job has no result."),
    (r"this result has expired or was purged", "This result has expired or was purged."),
    (r"no template .*", "No such template."),
    (r"no such slot .*", "No such slot."),
    (r"this token lacks the permission '(?P<permission>[\w:]+)'", "This session may not {permission}."),
    (r"missing or wrong CSRF token; reload the page and try again",
     "The form has expired or came from another page: reload the page and try again."),
    (r"job \S+ is already finalized \(.*\)", "The job has ended already."),
    # what a booth was told (the ingest's `details`, a job's failure_detail): the answer in words
    (r"wrong or missing password", "wrong or missing password"),
    (r"slot-\d{3} is not configured or is disabled", "the slot is not configured or is disabled"),
    (r"no such slot; slots are slot-001 … slot-015", "no such slot; the slots are slot-001 … slot-015"),
    (r"use POST /ingest/slot-001 … slot-015", "no such slot; the slots are slot-001 … slot-015"),
    (r"the file is not a JPEG, PNG or WebP image", "the file is not a JPEG, PNG or WebP image"),
    (r"upload is larger than (?P<n>\d+) MB", "the photo is larger than {n} MB"),
    (r"(?P<n>\d+) jobs are waiting; retry shortly", "{n} photos are waiting; the booth may try again shortly"),
    (r"the upload did not finish within the response window", "the photo did not arrive within the response window"),
    (r"no result within the response window", "no result within the response window"),
    (r"cancelled by (?P<actor>\S+)", "cancelled by {actor}"),
    (r"(?P<counts>HTTP .+?) from (?P<provider>\w+), last: (?P<last>.+) \(max_attempts (?P<n>\d+)\)",
     "{counts} from {provider} ({n} tries at most); the last answer: {last}"),
    (r"(?P<counts>HTTP .+?) from (?P<provider>\w+), last: (?P<last>.+)", "{counts} from {provider}; the last answer: {last}"),
    (r"(?P<provider>\w+) is down after (?P<n>\d+) failed calls in a row \(last: (?P<last>.*)\); next try in (?P<s>\d+) s",
     "{provider} is down after {n} failed calls in a row; next try in {s} s. Its last answer: {last}"),
    (r"(?P<provider>\w+) is down after (?P<n>\d+) failed calls in a row \(last: (?P<last>.*)\); a probe call decides",
     "{provider} is down after {n} failed calls in a row; the next shot tries it. Its last answer: {last}"),
    (r"(?P<provider>\w+) quota of (?P<limit>\d+) requests per minute is spent; retry in (?P<s>\d+) s",
     "the {provider} quota of {limit} requests a minute is spent; next try in {s} s"),
    (r"(?P<provider>\w+) quota of (?P<limit>\d+) requests per day is spent; retry in (?P<s>\d+) s",
     "the {provider} quota of {limit} requests a day is spent; next try in {s} s"),
    (r"(?P<provider>\w+) API key is not configured.*", "{provider} has no API key: set it on Settings"),
    (r"the photo is damaged or cut short.*", "the photo is damaged or cut short"),
    (r"too many wrong passwords from this address; retry in (?P<s>\d+) s",
     "too many wrong passwords from this address; the booth may try again in {s} s"),
    (r"expected multipart/form-data.*", "the booth did not send a form with a photo"),
    (r"the (?P<kind>JPEG|PNG|WebP)(?:'s image data)? is cut short.*", "the {kind} is cut short"),
    (r"the (?P<kind>PNG|WebP)'s (?:\w+ )?image data is corrupt.*", "the {kind}'s image data is corrupt"),
    (r"internal error in the ingest handler|internal error; the photo was not processed",
     "an internal error; the photo was not processed (see the server log)"),
    (r"the server is shutting down; send the photo again", "the server is shutting down; send the photo again"),
    (r"the client disconnected before the answer", "the booth hung up before the answer"),
    (r"the result file is missing", "the result file is missing"),
    (r"(?P<provider>Gemini) blocked the request: (?P<last>.+)", "{provider} blocked the request: {last}"),
    (r"Gemini refused to make the image \(finish reason (?P<last>\w+)\)",
     "Google Gemini refused to make the image ({last})"),
    (r"Turbotext queue (?P<n>\d+) answered without an image", "Turbotext queue {n} answered without an image"),
    (r"Turbotext refused the image \((?P<where>[^)]+)\): (?P<last>.+)", "Turbotext refused the image ({where}): {last}"),
    # why a provider is down, when its answer said (providers/gemini.py, providers/turbotext.py)
    (r"this key's project has no quota for (?P<model>\S+) \(billing not enabled\?\)",
     "this key's project has no quota for {model} (billing not enabled?)"),
    (r"Google does not serve the Gemini API where this studio is \((?P<last>.*)\)",
     "Google does not serve the Gemini API where this studio is. Its answer: {last}"),
    (r"the Turbotext tariff has no photos left \((?P<last>.*)\); top up the account",
     "the Turbotext tariff has no photos left; top up the account. Its answer: {last}"),
    # what booths of a provider that is down get meanwhile (provider_status)
    (r"503 (?P<code>provider_unavailable), Retry-After (?P<s>\d+) s",
     "HTTP 503 {code} (provider down; the booth may try again in {s} s)"),
    (r"503 (?P<code>provider_unavailable) after one probe call",
     "HTTP 503 {code} (provider down) once the next shot's probe call fails"),
    (r"must not contain control characters.*", "must not contain control characters (line breaks, tabs, escape or direction codes)"),
]
_COMPILED = [(re.compile(pattern), msgid) for pattern, msgid in MESSAGES]


def known_message(text: str, gettext, value=None) -> str | None:
    """A service's message in the page's language, or None when no pattern of MESSAGES knows it.
    `value(name, raw)` may put a placeholder's id in words (render.message: operations, roles)."""
    for pattern, msgid in _COMPILED:
        match = pattern.fullmatch(text or "")
        if match:
            values = {k: (value(k, v) if value and v is not None else v) for k, v in match.groupdict().items()}
            return gettext(msgid, **values)
    return None


def service_message(text: str, gettext) -> str:
    """A service's message in the page's language, when one of MESSAGES knows it (else as the
    service wrote it, and remembered as missing)."""
    known = known_message(text, gettext)
    if known is None:
        if text:
            missing(text)
        return text
    return known
