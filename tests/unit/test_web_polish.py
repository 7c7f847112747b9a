"""The pages' small promises, as pure rules: count axes in whole numbers, money to the cent, the
audit's before → after in words, a studio date's start."""
from __future__ import annotations

import datetime as dt
import re

from photoslot import studio_time
from photoslot.web import charts, i18n, pages_audit, render


def test_count_axes_tick_in_whole_numbers_up_to_at_least_the_top():
    for top in (1, 3, 4.4, 13, 17.6, 55, 101, 2400):
        ticks = charts.nice_ticks(top, integer=True)
        assert all(t == int(t) for t in ticks), (top, ticks)
        assert ticks[0] == 0 and ticks[-1] >= top and 2 <= len(ticks) <= 6, (top, ticks)
    svg = charts.stacked_bars(["10:00", "11:00"], [("ok", [4, 9]), ("error", [0, 2])], "Outcomes")
    assert re.findall(r">(\d+(?:\.\d+)?)</text>", svg) == ["0", "5", "10", "15"]  # never 4.4, 8.8, 13


def test_money_is_shown_to_the_cent_with_its_currency():
    assert render.money(0.04671, "USD") == "0.05 USD"
    assert render.money(12, "EUR") == "12.00 EUR"
    svg = charts.stacked_bars(["1", "2"], [("spend", [0.0123, 0.0467])], "Spend", money=True)
    assert re.findall(r'text-anchor="end" fill="[^"]+">([\d.]+)</text>', svg) == ["0.00", "0.01", "0.02", "0.03",
                                                                                  "0.04", "0.05"]
    assert "0.05</title>" in svg  # the bar's exact value, to the cent


def test_the_audit_shows_each_field_before_and_after_in_words_and_never_a_secret():
    view = pages_audit.EntryView(i18n.translator("en"), lambda t, fmt="": t.isoformat(), {"t-1": "Starry night"})
    entry = {"action": "slot.update", "details": {
        "name": "Sepia", "settings_json": {"prompt": "new", "params": {"temperature": 0.4}, "templates": {"style": "t-1"}},
        "was": {"name": "Old", "settings_json": {"prompt": "old", "params": {"seed": 7}}}}}
    lines = {str(l["label"]): (str(l["before"]) if l["before"] is not None else None, str(l["after"]))
             for l in view.lines(entry)}
    assert lines["Name"] == ('<span translate="no" class="value">Old</span>', '<span translate="no" class="value">Sepia</span>')
    assert lines["Temperature"] == (None, "0.4")
    assert lines["Style template"][1] == '<span translate="no" class="value">Starry night</span>'  # not its id
    assert lines["Seed (repeatable results)"] == ("7", "(removed)")
    secret = {"action": "settings.update", "details": {"ingest_password": "<changed>", "provider_key.gemini": "<changed>",
                                                       "sync_response_seconds": 50, "was": {"sync_response_seconds": 48}}}
    said = {str(l["label"]): (l["before"], str(l["after"])) for l in view.lines(secret)}
    assert said == {"Ingest password": (None, "changed (never shown)"), "Gemini API key": (None, "changed (never shown)"),
                    "Response window (seconds)": ("48", "50")}


def test_a_studio_date_starts_as_its_today_does():
    zone = studio_time.parse("Europe/Moscow")
    now = dt.datetime(2026, 11, 29, 22, 30, tzinfo=dt.timezone.utc)  # 01:30 on the 30th in Moscow
    assert studio_time.day_start(now, zone) == studio_time.date_start(dt.date(2026, 11, 30), zone)
    assert studio_time.date_start(dt.date(2026, 11, 30), zone) == dt.datetime(2026, 11, 29, 21, tzinfo=dt.timezone.utc)
