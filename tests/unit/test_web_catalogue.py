"""The web admin speaks Russian and English from one catalogue: every string a page shows through
`_()` — in the templates, the page modules, and the catalogue-driven labels (navigation, the
providers' operations and parameters, template roles, job states, reasons, audit actions) — has its
Russian in locale/ru.po; and every id a page shows in words has its words (web/words.py), so a new
provider parameter or audit action fails here until it is named in both languages."""
from __future__ import annotations

import re
from pathlib import Path

from photoslot import jobs, outcomes, stats
from photoslot.providers import catalogue
from photoslot.web import i18n, pages_audit, pages_stats, render, words

WEB = Path(i18n.__file__).resolve().parent
PACKAGE = WEB.parent
CALL = re.compile(r"""\b_\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")
TITLE = re.compile(r"""title="([^"{]+)\"""")
AUDITED = re.compile(r"""action=["']([\w.]+)["']""")


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
    found.update(pages_stats.PERIODS.values())
    found.update(stats.CHART_PERIODS)
    found.update(msgid for _, msgid in i18n.MESSAGES)
    found.update(outcomes.REASON_WORDS.values())  # what a booth got, in words (the pages' `words()`)
    found.update(render.STATUS_WORDS.values())
    found.update(pages_audit.PURGE_SCOPES.values())
    for table in (words.PARAMS, words.ROLES, words.AUDIT_ACTIONS, words.AUDIT_SOURCES, words.FIELDS, words.ACTORS,
                  words.PERMISSIONS):
        found.update(table.values())
    return found


def audited_actions() -> set[str]:
    """Every action an `audit.record` call in the package writes."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "audit" in text:
            found.update(AUDITED.findall(text))
    return found


def test_every_shown_string_has_its_russian():
    russian = i18n.catalogue("ru")
    missing = sorted(s for s in shown_strings() if s not in russian)
    assert missing == []


def test_every_parameter_role_reason_and_audit_action_has_its_words():
    params = {name for p in catalogue.CATALOGUE.values() for o in p.operations.values() for name in o.params}
    roles = {role for p in catalogue.CATALOGUE.values() for o in p.operations.values() for role in o.roles}
    reasons = set(outcomes.FAILURE_ANSWERS) | {label for _, label in outcomes.FAILURE_ANSWERS.values()}
    assert params - set(words.PARAMS) == set()
    assert roles - set(words.ROLES) == set()
    assert reasons - set(outcomes.REASON_WORDS) == set()
    actions = audited_actions()
    assert {"slot.update", "settings.update", "users.login", "users.login_failed"} <= actions  # the scan works
    assert actions - set(words.AUDIT_ACTIONS) == set()


def test_a_page_text_without_its_russian_is_remembered_as_missing():
    i18n.MISSES.clear()
    ru = i18n.translator("ru")
    assert ru("Slots") == "Слоты" and i18n.MISSES == set()
    assert ru("A sentence nobody translated") == "A sentence nobody translated"
    assert i18n.translator("en")("Another one") == "Another one"  # English pages are checked too
    assert i18n.MISSES == {"A sentence nobody translated", "Another one"}
    assert words.param("a_new_parameter", ru) == "a_new_parameter"
    assert "<no words for 'a_new_parameter'>" in i18n.MISSES
    i18n.MISSES.clear()


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
    assert i18n.service_message("a prompt is required for gemini/image_edit", ru) == "для «gemini/image_edit» нужен промпт"
    assert i18n.service_message("must be between 45 and 60 seconds", ru) == "от 45 до 60 секунд"
    assert i18n.service_message("must be at most 80", ru) == "не больше 80"
    en = i18n.translator("en")
    assert i18n.service_message("must be at most 80", en) == "must be at most 80"
    assert i18n.service_message("something no pattern knows", ru) == "something no pattern knows"
    i18n.MISSES.clear()


def test_a_message_names_operations_and_roles_in_words_not_ids():
    ru, en = i18n.translator("ru"), i18n.translator("en")
    said = render.message("gemini/style_transfer needs a 'style' template (slot set --template style=PATH_OR_ID)", en)
    assert said == "Style transfer (Google Gemini) needs this template: Style template"
    said = render.message("gemini/style_transfer needs a 'style' template", ru)
    assert "gemini/" not in said and "style_transfer" not in said and "Перенос стиля" in said


def test_every_message_pattern_names_the_placeholders_of_its_text():
    for pattern, msgid in i18n.MESSAGES:
        assert set(re.compile(pattern).groupindex) == set(re.findall(r"{(\w+)}", msgid)), pattern
