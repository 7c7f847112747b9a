"""The admin lists' query rules: job filters, stats grouping, paging, time windows and durations."""
from __future__ import annotations

import datetime as dt

import pytest

from photoslot import jobs, stats
from photoslot.errors import ValidationError

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def errors_of(fn, *args, **kwargs) -> dict:
    with pytest.raises(ValidationError) as exc:
        fn(*args, **kwargs)
    return exc.value.details


def test_the_default_job_list_query_is_valid():
    jobs.check_list_filters()
    jobs.check_list_filters(status="pending", failure_reason="client_gone", page=3, page_size=100,
                            sort_by="expires_at", sort_order="asc")


def test_every_bad_job_list_parameter_is_named():
    errors = errors_of(jobs.check_list_filters, status="done", failure_reason="oops", page=0, page_size=101,
                       sort_by="slot_id", sort_order="up")
    assert set(errors) == {"status", "failure_reason", "page", "page_size", "sort_by", "sort_order"}
    assert errors["status"] == "must be one of: " + ", ".join(jobs.STATES)


@pytest.mark.parametrize("page, page_size", [(-1, 20), (1, 0), ("2", 20)])
def test_paging_takes_real_integers_in_range(page, page_size):
    with pytest.raises(ValidationError):
        jobs.check_list_filters(page=page, page_size=page_size)


def test_global_stats_grouping_sort_and_paging():
    stats.check_global_query(group_by="month", sort_by="errors", sort_order="desc", page=1, page_size=50)
    errors = errors_of(stats.check_global_query, group_by="hour", sort_by="p95_ms", sort_order="desc", page=1,
                       page_size=51)
    assert set(errors) == {"group_by", "sort_by", "page_size"}


def test_a_stats_window_defaults_to_the_last_period_before_now():
    assert stats.window(NOW, None, None, default=dt.timedelta(days=1), max_days=31) == \
        (NOW - dt.timedelta(days=1), NOW)
    start, end = stats.window(NOW, "2026-04-01T00:00:00Z", "2026-04-02T00:00:00+02:00",
                              default=dt.timedelta(days=1), max_days=31)
    assert (start, end) == (dt.datetime(2026, 4, 1, tzinfo=UTC), dt.datetime(2026, 4, 1, 22, tzinfo=UTC))


@pytest.mark.parametrize("from_, to, field", [
    ("2026-04-02T00:00:00Z", "2026-04-01T00:00:00Z", "from"),   # backwards
    ("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "to"),     # longer than 31 days
    ("yesterday", None, "from"),
    (None, "0001-01-01T00:00:00Z", "to"),                       # outside the years both sides share
])
def test_a_bad_stats_window_names_its_field(from_, to, field):
    assert field in errors_of(stats.window, NOW, from_, to, default=dt.timedelta(days=1), max_days=31)


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600),
                                           (" 1.5h ", 5400)])
def test_durations_for_stats_since(text, seconds):
    assert stats.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "7", "7 days", "-1d", "1y"])
def test_a_bad_duration_is_refused(text):
    assert "since" in errors_of(stats.parse_duration, text)


def test_a_time_without_zone_is_utc():
    assert stats.parse_time("2026-04-01T10:00:00", "from") == dt.datetime(2026, 4, 1, 10, tzinfo=UTC)
    assert stats.parse_time("", "from") is None
