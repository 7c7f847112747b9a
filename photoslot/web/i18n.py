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
