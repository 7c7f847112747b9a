"""Slot configuration rules that need no database: the catalogue check of a whole configuration,
and the admin API's PUT body and optimistic precondition."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from photoslot import slots
from photoslot.errors import ValidationError
from photoslot.server.api_slots import check_update_body, etag, precondition
from photoslot.server.toolkit import unstorable_text


def errors_of(fn, *args, **kwargs) -> dict:
    with pytest.raises(ValidationError) as exc:
        fn(*args, **kwargs)
    return exc.value.details


def test_a_complete_configuration_passes():
    slots.check_configuration(name="Sepia", provider_id="gemini", operation_id="style_transfer",
                              settings_json={"prompt": "p", "templates": {"style": str(uuid.uuid4())}}, enabled=True)


def test_an_enabled_slot_needs_its_templates_a_disabled_one_may_wait_for_them():
    config = dict(name="Style", provider_id="gemini", operation_id="style_transfer", settings_json={"prompt": "p"})
    assert "settings_json.templates.style" in errors_of(slots.check_configuration, **config, enabled=True)
    slots.check_configuration(**config, enabled=False)


def test_name_length_and_a_missing_provider_are_named():
    errors = errors_of(slots.check_configuration, name="x" * 101, provider_id=None, operation_id=None,
                       settings_json={}, enabled=True)
    assert errors == {"name": "must be a string of at most 100 characters", "provider_id": "a provider is required"}


def test_a_put_body_names_only_known_fields_and_a_boolean_enabled():
    check_update_body({"name": "n", "id": "slot-001", "recent_results": [], "version": 3})
    assert errors_of(check_update_body, {"nmae": "typo", "colour": 1}) == {"colour": "unknown field",
                                                                           "nmae": "unknown field"}
    assert errors_of(check_update_body, {"enabled": "yes"}) == {"enabled": "must be true or false"}


@pytest.mark.parametrize("body, if_match, expected", [
    ({}, None, (None, None)),
    ({"version": 4}, None, (4, None)),
    ({}, '"7"', (7, None)),
    ({}, 'W/"7"', (7, None)),
    ({"version": 4}, '"7"', (4, None)),            # the body wins over the header
    ({}, '"2026-04-01T10:00:00Z"', (None, dt.datetime(2026, 4, 1, 10, tzinfo=dt.timezone.utc))),
])
def test_the_optimistic_check_comes_from_the_body_or_if_match(body, if_match, expected):
    assert precondition(body, if_match) == expected


@pytest.mark.parametrize("body, if_match, field", [
    ({"version": True}, None, "version"),
    ({"version": "3"}, None, "version"),
    ({}, '"²"', "updated_at"),                      # not our ETag, and not a time either
])
def test_a_bad_precondition_is_a_field_error(body, if_match, field):
    assert field in errors_of(precondition, body, if_match)


def test_the_etag_is_the_quoted_version():
    assert etag({"version": 12}) == '"12"'


@pytest.mark.parametrize("value, bad", [
    ({"a": ["ok", {"b": "fine"}]}, False),
    ({"a": "nul\x00"}, True),
    ({"key\ud800": 1}, True),
    ([[["deep", "\ud83d"]]], True),
])
def test_json_text_postgresql_cannot_store_is_found_at_any_depth(value, bad):
    assert unstorable_text(value) is bad
