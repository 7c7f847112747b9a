"""Russian and English from one message catalogue (locale/ru.po, read with Babel at start-up).

Every string a page shows is written in English in the code and the templates, wrapped in `_()`; the
catalogue gives its Russian. The language is the `photoslot_lang` cookie when set (the switch on
every page), else the best match of the browser's Accept-Language, else English. The .po file is
read as it is — no compile step, nothing generated to keep in step.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po

LANGUAGES = ("en", "ru")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    if lang == DEFAULT:
        return {}
    with open(LOCALE_DIR / f"{lang}.po", "rb") as fh:
        cat = read_po(fh)  # no locale: only the messages are needed, not Babel's locale data
    return {m.id: m.string for m in cat if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


def translator(lang: str):
    messages = catalogue(lang)

    def gettext(text: str, **values) -> str:
        out = messages.get(text, text)
        return out.format(**values) if values else out

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
    (r"(?P<op>\S+) needs a '(?P<role>\w+)' template.*", "{op} needs a '{role}' template"),
    (r"must be a template id \(UUID\).*", "must be one of the uploaded templates"),
    (r"must be at least (?P<n>[-\d.e+]+)", "must be at least {n}"),
    (r"must be at most (?P<n>[-\d.e+]+)", "must be at most {n}"),
    (r"must be at most (?P<n>\d+) characters", "must be at most {n} characters"),
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
    (r"(?P<op>\S+) takes no '(?P<role>\w+)' template", "{op} takes no '{role}' template"),
    (r"the label must be at most (?P<n>\d+) characters", "the label must be at most {n} characters"),
    (r"this session may not upload templates", "this session may not upload templates"),
    (r"must not contain control characters.*", "must not contain control characters (line breaks, tabs, escape or direction codes)"),
]
_COMPILED = [(re.compile(pattern), msgid) for pattern, msgid in MESSAGES]


def service_message(text: str, gettext) -> str:
    """A service's message in the page's language, when one of MESSAGES knows it."""
    for pattern, msgid in _COMPILED:
        match = pattern.fullmatch(text or "")
        if match:
            return gettext(msgid, **match.groupdict())
    return text
