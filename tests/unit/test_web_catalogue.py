"""The web admin speaks Russian and English from one catalogue: every string a page shows through
`_()` — in the templates, the page modules, and the catalogue-driven labels (navigation, the
providers' operations and parameters, job states) — has its Russian in locale/ru.po."""
from __future__ import annotations

import re
from pathlib import Path

from photoslot import jobs, outcomes, stats
from photoslot.providers import catalogue
from photoslot.web import i18n, render

WEB = Path(i18n.__file__).resolve().parent
CALL = re.compile(r"""\b_\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")
TITLE = re.compile(r"""title="([^"{]+)\"""")


def shown_strings() -> set[str]:
    found = set()
    for path in list(WEB.rglob("*.html")) + list(WEB.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        found.update(a or b for a, b in CALL.findall(text))
        if path.suffix == ".py":
            found.update(TITLE.findall(text))
    found.update(label for _, _, label in render.NAV)
    for provider in catalogue.CATALOGUE.values():
        for op in provider.operations.values():
            found.update([op.name, op.description, *(p.description for p in op.params.values())])
    found.update(jobs.STATES)
    found.update(stats.CHART_PERIODS)
    found.update(msgid for _, msgid in i18n.MESSAGES)
    found.update(outcomes.REASON_WORDS.values())  # what a booth got, in words (the pages' `words()`)
    return found


def test_every_shown_string_has_its_russian():
    russian = i18n.catalogue("ru")
    missing = sorted(s for s in shown_strings() if s not in russian)
    assert missing == []


def test_russian_keeps_every_placeholder_of_the_english():
    for english, translated in i18n.catalogue("ru").items():
        assert set(re.findall(r"{\w+}", english)) == set(re.findall(r"{\w+}", translated)), english


def test_language_comes_from_the_cookie_then_the_browser_then_english():
    assert i18n.choose("ru", "en-US,en;q=0.9") == "ru"
    assert i18n.choose(None, "ru-RU,ru;q=0.9,en;q=0.8") == "ru"
    assert i18n.choose(None, "de-DE,en;q=0.5,ru;q=0.7") == "ru"
    assert i18n.choose("xx", "fr") == "en"
    assert i18n.choose(None, None) == "en"


def test_a_services_field_message_is_shown_in_the_pages_language():
    ru = i18n.translator("ru")
    assert i18n.service_message("a prompt is required for gemini/image_edit", ru) == "для gemini/image_edit нужен промпт"
    assert i18n.service_message("must be between 45 and 60 seconds", ru) == "от 45 до 60 секунд"
    assert i18n.service_message("must be at most 80", ru) == "не больше 80"
    en = i18n.translator("en")
    assert i18n.service_message("must be at most 80", en) == "must be at most 80"
    assert i18n.service_message("something no pattern knows", ru) == "something no pattern knows"


def test_every_message_pattern_names_the_placeholders_of_its_text():
    for pattern, msgid in i18n.MESSAGES:
        assert set(re.compile(pattern).groupindex) == set(re.findall(r"{(\w+)}", msgid)), pattern
