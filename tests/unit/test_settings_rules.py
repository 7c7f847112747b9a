"""Live settings: the checks on every change, and the admin API's nested shape around them."""
from __future__ import annotations

import re

import pytest

from photoslot import settings
from photoslot.passwords import READABLE_ALPHABET, generate_readable
from photoslot.config import load_config
from photoslot.errors import ValidationError
from photoslot.server.api_settings import settings_request, settings_view

BOUNDS = (45.0, 60.0)


def errors_of(fn, *args, **kwargs) -> dict:
    with pytest.raises(ValidationError) as exc:
        fn(*args, **kwargs)
    return exc.value.details


def test_valid_changes_come_back_as_the_values_to_store():
    changes = settings.check_changes(BOUNDS, sync_response_seconds=50, result_retention_hours=24,
                                     ingest_password="booth-secret-1", provider_keys={"gemini": "k" * 8})
    assert changes == {settings.SYNC_KEY: 50.0, settings.RETENTION_KEY: 24.0, settings.PASSWORD_KEY: "booth-secret-1",
                       settings.PROVIDER_KEY_PREFIX + "gemini": "k" * 8}


@pytest.mark.parametrize("value", [44.9, 60.1, "fast", float("nan"), 10 ** 400])
def test_the_response_window_must_lie_within_its_bounds(value):
    assert errors_of(settings.check_changes, BOUNDS, sync_response_seconds=value) == \
        {"sync_response_seconds": "must be between 45 and 60 seconds"}


@pytest.mark.parametrize("hours", [0.5, 8761, "x"])
def test_retention_is_one_hour_to_a_year(hours):
    assert "result_retention_hours" in errors_of(settings.check_changes, BOUNDS, result_retention_hours=hours)


@pytest.mark.parametrize("password", ["abc", "x" * 11, "x" * 257, 1234])
def test_the_ingest_password_is_12_to_256_characters(password):
    assert errors_of(settings.check_changes, BOUNDS, ingest_password=password) == \
        {"ingest_password": "must be 12 to 256 characters"}


def test_a_generated_ingest_password_is_grouped_has_no_look_alikes_and_passes_the_minimum():
    made = {generate_readable() for _ in range(200)}
    assert len(made) == 200
    for password in made:
        assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", password), password
        assert not set(password) & set("IlO01o")
        assert len(password.replace("-", "")) >= settings.INGEST_PASSWORD_MIN
        assert settings.check_changes(BOUNDS, ingest_password=password) == {settings.PASSWORD_KEY: password}
    assert len(READABLE_ALPHABET) == 32 == len(set(READABLE_ALPHABET))  # 5 bits a symbol, 80 in all


def test_provider_keys_name_a_known_provider_and_hold_no_spaces():
    errors = errors_of(settings.check_changes, BOUNDS,
                       provider_keys={"openai": "k" * 10, "gemini": "with space", "turbotext": "short"})
    assert set(errors) == {"provider_keys.openai", "provider_keys.gemini", "provider_keys.turbotext"}


def test_every_bad_field_is_named_at_once_and_an_empty_change_is_refused():
    errors = errors_of(settings.check_changes, BOUNDS, sync_response_seconds=1, ingest_password="x")
    assert set(errors) == {"sync_response_seconds", "ingest_password"}
    assert errors_of(settings.check_changes, BOUNDS) == {"settings": "nothing to change"}


def test_the_nested_put_body_maps_to_the_service_keywords():
    body = {"dslr_password": {"value": "booth-2"}, "provider_keys": {"turbotext": {"value": "tt-key-123"}},
            "ingest": {"sync_response_timeout_sec": 50}, "media_cache": {"processed_media_ttl_hours": 12}}
    assert settings_request(body) == {"ingest_password": "booth-2", "provider_keys": {"turbotext": "tt-key-123"},
                                      "sync_response_seconds": 50, "result_retention_hours": 12}


def test_a_provider_key_is_taken_in_the_contracts_spelling_and_in_the_earlier_one():
    body = {"provider_keys": {"gemini": {"api_key": "gm-key-123"}, "turbotext": {"value": "tt-key-123"}}}
    assert settings_request(body) == {"provider_keys": {"gemini": "gm-key-123", "turbotext": "tt-key-123"}}
    errors = errors_of(settings_request, {"provider_keys": {"gemini": {"api_key": "a" * 9, "value": "b" * 9},
                                                            "turbotext": {"project_id": "x"}}})
    assert errors == {"provider_keys.gemini": 'must be {"api_key": "<key>"}',
                      "provider_keys.turbotext": 'must be {"api_key": "<key>"}'}


def test_the_put_body_names_unknown_read_only_and_mistyped_fields():
    errors = errors_of(settings_request, {
        "colour": "red", "ingest": {"sync_response_timeout_sec": True, "bounds": [1, 2]},
        "media_cache": "48", "provider_keys": {"gemini": "bare-string"}})
    assert errors == {"colour": "unknown field",
                      "ingest.sync_response_timeout_sec": "must be a number of seconds",
                      "ingest.bounds": "unknown or read-only field",
                      "media_cache": "must be an object",
                      "provider_keys.gemini": 'must be {"api_key": "<key>"}'}


def test_the_settings_view_shows_whether_secrets_are_set_never_their_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("providers: {gemini: {api_key: config-secret}}\n")
    cfg = load_config(path, environ={})
    live = settings.from_rows(cfg, {settings.SYNC_KEY: 50, settings.PASSWORD_KEY: {"scrypt": "hash"},
                                    settings.PROVIDER_KEY_PREFIX + "turbotext": {"value": "db-secret"}})
    view = settings_view(live, cfg)
    assert view["dslr_password"]["is_set"] is True
    assert view["ingest"] == {"sync_response_timeout_sec": 50, "ingest_ttl_sec": 50, "bounds": [45, 60]}
    assert view["media_cache"] == {"processed_media_ttl_hours": 72, "public_link_ttl_sec": 50}
    # whole seconds and hours are integers, as the contract types them
    assert all(type(v) is int for v in [*view["ingest"]["bounds"], view["ingest"]["sync_response_timeout_sec"],
                                        view["media_cache"]["processed_media_ttl_hours"]])
    assert view["provider_keys"]["gemini"]["source"] == "config"
    assert view["provider_keys"]["turbotext"]["source"] == "settings"
    fraction = settings_view(settings.from_rows(cfg, {settings.SYNC_KEY: 47.5}), cfg)
    assert fraction["ingest"]["sync_response_timeout_sec"] == 47.5


def test_a_provider_without_a_key_names_no_source(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("providers: {gemini: {api_key: config-secret}, turbotext: {api_key: null}}\n")
    cfg = load_config(path, environ={})
    view = settings_view(settings.from_rows(cfg, {}), cfg)
    assert view["provider_keys"]["turbotext"] == {"is_configured": False, "updated_at": None, "updated_by": None}
    assert "secret" not in repr(view) and "hash" not in repr(view)
