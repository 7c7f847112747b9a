"""The pure rules behind the event-day pages: the studio's time zone and its days, what a public
address can reach, the bounded record of refusals, web sessions' renewal, and a reason in words for
every answer a booth can get."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from photoslot import outcomes, public_address, refusals, sessions, studio_time
from photoslot.clock import ManualClock
from photoslot.config import Config
from photoslot.errors import ValidationError

UTC = dt.timezone.utc


@pytest.mark.parametrize("typed, name, sql", [
    ("Europe/Moscow", "Europe/Moscow", "Europe/Moscow"),
    ("utc", "UTC", "UTC"),
    ("UTC+3", "UTC+03:00", "<+0300>-03:00"),
    ("+05:30", "UTC+05:30", "<+0530>-05:30"),
    ("GMT-4", "UTC-04:00", "<-0400>+04:00"),
    ("UTC+0", "UTC", "UTC"),
])
def test_a_time_zone_is_a_name_or_a_fixed_offset_with_its_postgresql_twin(typed, name, sql):
    zone = studio_time.parse(typed)
    assert (zone.name, zone.sql) == (name, sql)


@pytest.mark.parametrize("typed", ["", "Mars/Olympus", "../../etc/passwd", "UTC+15", "x" * 80, "Europe/Moscow; DROP"])
def test_anything_else_is_refused_at_the_time_zone_field(typed):
    with pytest.raises(ValidationError) as refused:
        studio_time.parse(typed)
    assert list(refused.value.details) == ["time_zone"]


def test_today_starts_at_local_midnight_or_at_the_first_whole_utc_hour_after_it():
    moscow = studio_time.parse("Europe/Moscow")
    now = dt.datetime(2026, 11, 29, 1, 30, tzinfo=UTC)  # 04:30 in Moscow
    assert studio_time.day_start(now, moscow) == dt.datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    vladivostok = studio_time.parse("Asia/Vladivostok")  # 09:30 local at 23:30 UTC: the UTC day is yesterday's
    assert studio_time.day_start(dt.datetime(2026, 11, 28, 23, 30, tzinfo=UTC), vladivostok) == \
        dt.datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    # India (+05:30): local midnight is 18:30 UTC; rollups are per UTC hour, so the day counts from 19:00 UTC
    kolkata = studio_time.parse("Asia/Kolkata")
    assert studio_time.day_start(dt.datetime(2026, 11, 29, 6, 0, tzinfo=UTC), kolkata) == \
        dt.datetime(2026, 11, 28, 19, 0, tzinfo=UTC)


def test_the_pc_zone_is_named_and_marked_as_the_pcs():
    zone = studio_time.pc_zone()
    assert zone.source == "pc" and zone.name and studio_time.parse(zone.name).name == zone.name


@pytest.mark.parametrize("url, kind", [
    ("http://127.0.0.1:8080", "loopback"), ("http://localhost:8080", "loopback"), ("http://[::1]:8080", "loopback"),
    ("http://0.0.0.0:8080", "loopback"), ("http://192.168.1.20:8080", "private"), ("http://10.0.0.5", "private"),
    ("http://studio-pc:8080", "private"), ("http://photobooth.local", "private"), ("http://100.64.1.2", "private"),
    ("https://studio.example.com", "public"), ("http://203.0.113.7:8080", "private"), ("http://8.8.8.8", "public"),
])
def test_a_public_address_is_judged_by_what_can_reach_it(url, kind):
    assert public_address.kind(url) == kind


@pytest.mark.parametrize("typed, stored", [
    ("http://192.168.1.20:8080/", "http://192.168.1.20:8080"), ("  https://studio.example.com  ", "https://studio.example.com"),
    ("https://proxy.example.com/photoslot/", "https://proxy.example.com/photoslot"), ("", None),
])
def test_a_public_address_is_stored_without_its_trailing_slash(typed, stored):
    assert public_address.check(typed) == stored


@pytest.mark.parametrize("typed", ["ftp://x", "192.168.1.20:8080", "http://", "http://user:pw@host",
                                   "http://host/?a=1", "http://host#x", "http://host:99999", "http://host name",
                                   "http://" + "a" * 400])
def test_an_address_no_booth_could_use_is_refused_at_its_field(typed):
    with pytest.raises(ValidationError) as refused:
        public_address.check(typed)
    assert list(refused.value.details) == ["public_base_url"]


def test_the_config_key_wins_over_the_live_setting_and_says_where_it_is_set():
    cfg = Config()
    assert public_address.resolve(cfg, "http://192.168.1.20:8080").source == "setting"
    cfg.live_public_base_url = "http://192.168.1.20:8080"
    assert cfg.public_base_url() == "http://192.168.1.20:8080"
    cfg.set("server.public_base_url", "https://booths.example.com/")
    address = public_address.resolve(cfg, "http://192.168.1.20:8080")
    assert (address.url, address.source, address.fixed_by) == ("https://booths.example.com", "config", "the configuration")
    assert cfg.public_base_url() == "https://booths.example.com"
    cfg.from_env["server.public_base_url"] = "PHOTOSLOT_SERVER_PUBLIC_BASE_URL"
    assert public_address.resolve(cfg, None).fixed_by == "PHOTOSLOT_SERVER_PUBLIC_BASE_URL"


def test_a_refusal_flood_stays_a_handful_of_entries_whatever_its_size():
    record = refusals.RecentRefusals()
    at = dt.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    for i in range(50_000):
        record.add(at=at + dt.timedelta(milliseconds=i), slot_id=f"slot-{i % 40:03d}", reason="invalid_password",
                   status=401, client=f"10.1.{i % 200}.{i % 250}", detail="wrong or missing password" * 50)
    assert len(record) == 16  # 15 slots and `invalid` (every made-up id)
    rows = {r["slot_id"]: r for r in record.drain()}
    assert len(rows["invalid"]["clients"]) == refusals.MAX_CLIENTS and len(rows["slot-001"]["detail"]) == refusals.MAX_DETAIL
    assert sum(r["n"] for r in rows.values()) == 50_000 and len(record) == 0
    record.put_back(list(rows.values()))  # a flush that failed loses nothing
    assert sum(r["n"] for r in record.drain()) == 50_000


def _ctx(idle_minutes: float = 60, cap_hours: float = 12):
    cfg = Config()
    cfg.set("auth.web_session_idle_minutes", idle_minutes)
    cfg.set("auth.web_session_max_hours", cap_hours)
    return SimpleNamespace(cfg=cfg, clock=ManualClock())


def _claims(ctx, *, issued_ago: float, signed_in_ago: float, idle: float = 3600) -> dict:
    now = int(ctx.clock.now().timestamp())
    return {"sub": "serg", "permissions": ["slots:read"], "ep": 0, "sid": "a" * 32, "iat": now - int(issued_ago),
            "exp": now - int(issued_ago) + int(idle), "auth_time": now - int(signed_in_ago)}


def test_a_session_in_use_is_renewed_to_its_idle_time_but_never_past_its_cap(monkeypatch):
    monkeypatch.setattr("photoslot.users.jwt_secret", lambda cfg: b"k" * 32)
    ctx = _ctx()
    assert sessions.renewal(ctx, _claims(ctx, issued_ago=10, signed_in_ago=10)) is None  # renewed a moment ago
    token = sessions.renewal(ctx, _claims(ctx, issued_ago=120, signed_in_ago=3 * 3600))
    assert token["expires_in_sec"] == 3600 and token["claims"]["sid"] == "a" * 32
    assert token["claims"]["auth_time"] == int(ctx.clock.now().timestamp()) - 3 * 3600  # the sign-in stays
    near_cap = sessions.renewal(ctx, _claims(ctx, issued_ago=120, signed_in_ago=12 * 3600 - 600))
    assert near_cap["expires_in_sec"] in (599, 600)  # ten minutes to the cap: no more
    assert sessions.renewal(ctx, _claims(ctx, issued_ago=120, signed_in_ago=12 * 3600 + 1)) is None
    api_token = {k: v for k, v in _claims(ctx, issued_ago=120, signed_in_ago=60).items() if k not in ("sid", "auth_time")}
    assert sessions.renewal(ctx, api_token) is None  # the API's tokens are not renewed


def test_a_short_idle_time_is_renewed_more_often_than_once_a_minute(monkeypatch):
    monkeypatch.setattr("photoslot.users.jwt_secret", lambda cfg: b"k" * 32)
    ctx = _ctx(idle_minutes=0.25)
    assert sessions.renewal(ctx, _claims(ctx, issued_ago=5, signed_in_ago=30, idle=15)) is not None


def test_every_answer_a_booth_can_get_has_its_words():
    reasons = set(outcomes.FAILURE_ANSWERS) | {
        "invalid_password", "too_many_attempts", "slot_not_found", "payload_too_large", "unsupported_media_type",
        "invalid_image", "invalid_request", "queue_full", "server_busy", "provider_unavailable", "quota_exhausted",
        "database_unavailable", "storage_full", "storage_unavailable", "succeeded"}
    assert reasons <= set(outcomes.REASON_WORDS)
    assert outcomes.reason_words("something_new") == "something_new"
