"""The operation catalogue: one declaration drives validation, limits and the CLI's help."""
from __future__ import annotations

import uuid

import pytest

from photoslot.providers import catalogue
from photoslot.providers.base import ProviderInput
from photoslot.providers.turbotext import TurbotextClient

TID = str(uuid.uuid4())


def test_every_design_operation_is_declared_with_its_template_roles():
    ops = {(p["id"], o["id"]): o for p in catalogue.as_list() for o in p["operations"]}
    assert set(ops) == {(p, o) for p in ("gemini", "turbotext")
                        for o in ("image_edit", "style_transfer", "identity_transfer")}
    assert ops[("gemini", "style_transfer")]["needs"] == ["style"]
    assert ops[("gemini", "identity_transfer")]["needs"] == ["face"]
    assert ops[("turbotext", "style_transfer")]["needs"] == ["style"]
    assert ops[("turbotext", "identity_transfer")]["needs"] == ["face"]
    strength = ops[("turbotext", "image_edit")]["parameters"]["strength"]
    assert (strength["type"], strength["minimum"], strength["maximum"]) == ("int", 0, 80)
    assert ops[("turbotext", "image_edit")]["parameters"]["scale"]["minimum"] == 0.1
    assert ops[("turbotext", "identity_transfer")]["parameters"]["face_restore"]["type"] == "bool"


def test_provider_input_limits():
    assert catalogue.check_input("gemini", "image/jpeg", 20 * 1024 * 1024) is None
    assert catalogue.check_input("gemini", "image/jpeg", 20 * 1024 * 1024 + 1)[0] == 413
    assert catalogue.check_input("turbotext", "image/webp", 15 * 1024 * 1024) is None
    assert catalogue.check_input("turbotext", "image/png", 15 * 1024 * 1024 + 1)[:2] == (413, "payload_too_large")
    assert catalogue.check_input("turbotext", "image/heic", 1000)[:2] == (415, "unsupported_media_type")
    assert catalogue.check_input("gemini", "image/heic", 1000) is None


@pytest.mark.parametrize("params, field, words", [
    ({"strength": 81}, "strength", "at most 80"),
    ({"strength": -1}, "strength", "at least 0"),
    ({"strength": 2.5}, "strength", "integer"),
    ({"scale": 0.05}, "scale", "at least 0.1"),
    ({"scale": 20.5}, "scale", "at most 20"),
    ({"seed": "abc"}, "seed", "integer"),
    ({"negative_prompt": "x" * 1001}, "negative_prompt", "at most 1000"),
    ({"negative_prompt": "word " * 81}, "negative_prompt", "at most 80 words"),  # Turbotext: "max: 80 words"
    ({"bogus": 1}, "bogus", "unknown parameter"),
])
def test_turbotext_image_edit_parameter_ranges(params, field, words):
    errors = catalogue.validate("turbotext", "image_edit", {"prompt": "p", "params": params})
    assert words in errors[f"settings_json.params.{field}"]


def test_valid_settings_pass_and_defaults_fill_in():
    assert catalogue.validate("turbotext", "image_edit", {"prompt": "p", "params": {"strength": 80, "scale": 0.1}}) == {}
    assert catalogue.effective_params("turbotext", "image_edit", {"seed": 3}) == {
        "strength": 40, "scale": 7.5, "original_language": "ru", "user_id": 1, "seed": 3}
    assert catalogue.validate("turbotext", "identity_transfer", {"templates": {"face": TID}}) == {}
    assert catalogue.validate("gemini", "identity_transfer", {"prompt": "p", "templates": {"face": TID, "style": TID}}) == {}


def test_template_roles_are_checked_per_operation():
    errors = catalogue.validate("gemini", "style_transfer", {"prompt": "p"})
    assert "needs a 'style' template" in errors["settings_json.templates.style"]
    errors = catalogue.validate("gemini", "image_edit", {"prompt": "p", "templates": {"face": TID}})
    assert "takes no 'face' template" in errors["settings_json.templates.face"]
    errors = catalogue.validate("turbotext", "style_transfer", {"templates": {"style": "not-an-id"}})
    assert "UUID" in errors["settings_json.templates.style"]


def test_prompt_rules_follow_the_operation():
    assert "prompt is required" in catalogue.validate("turbotext", "image_edit", {})["settings_json.prompt"]
    assert "takes no prompt" in catalogue.validate(
        "turbotext", "identity_transfer", {"prompt": "x", "templates": {"face": TID}})["settings_json.prompt"]
    assert catalogue.validate("turbotext", "style_transfer", {"templates": {"style": TID}}) == {}


def test_cli_parameter_coercion_follows_declared_types():
    assert catalogue.coerce_param("turbotext", "image_edit", "strength", "55") == 55
    assert catalogue.coerce_param("turbotext", "image_edit", "scale", "7") == 7.0
    assert catalogue.coerce_param("turbotext", "identity_transfer", "face_restore", "yes") is True


def test_turbotext_forms_put_the_photo_and_templates_in_the_documented_fields():
    urls = {"photo": "http://s/p", "style": "http://s/st", "face": "http://s/f"}
    form = TurbotextClient.form_for("style_transfer", ProviderInput(b"", "image/jpeg", "oil", {}, urls=urls))
    assert form == {"url_image_target": "http://s/p", "url": "http://s/st", "content": "oil"}
    # deepfake_photo: url — the person whose face is replaced (the guest), url_image_target — the face put in
    form = TurbotextClient.form_for("identity_transfer",
                                    ProviderInput(b"", "image/jpeg", "", {"face_restore": False}, urls=urls))
    assert form == {"url": "http://s/p", "url_image_target": "http://s/f", "face_restore": "False"}
    form = TurbotextClient.form_for("identity_transfer",
                                    ProviderInput(b"", "image/jpeg", "", {"face_restore": True}, urls=urls))
    assert form["face_restore"] == "True"  # documented "True/False", not 1/0
    form = TurbotextClient.form_for("image_edit", ProviderInput(b"", "image/jpeg", "c", {"strength": 10}, urls=urls))
    assert form == {"url": "http://s/p", "content": "c", "strength": "10"}



def test_turbotext_image_edit_parameters_follow_turbotexts_documented_ranges():
    ok = {"provider_id": "turbotext", "operation_id": "image_edit", "settings_json": {"prompt": "p"}}
    for seed, good in ((0, False), (1, True), (10 ** 10, True), (10 ** 10 + 1, False)):
        errors = catalogue.validate(ok["provider_id"], ok["operation_id"], {"prompt": "p", "params": {"seed": seed}})
        assert (not errors) is good, (seed, errors)


def test_gemini_slots_choose_among_the_image_models_the_catalogue_lists():
    params = catalogue.get_operation("gemini", "image_edit").params
    assert params["model"].choices == ("gemini-2.5-flash-image", "gemini-3-pro-image-preview")
    errors = catalogue.validate("gemini", "image_edit", {"prompt": "p", "params": {"model": "gemini-2.0-flash"}})
    assert errors["settings_json.params.model"].startswith("must be one of: gemini-2.5-flash-image")
    errors = catalogue.validate("gemini", "image_edit", {"prompt": "p", "params": {"aspect_ratio": "7:5"}})
    assert "must be one of: 1:1, 2:3, 3:2" in errors["settings_json.params.aspect_ratio"]
    as_json = {p["id"]: p for p in catalogue.as_list()}["gemini"]["operations"][0]["parameters"]
    assert as_json["image_size"]["choices"] == ["1K", "2K", "4K"]


def test_an_image_size_needs_a_model_that_offers_sizes():
    pro = {"model": "gemini-3-pro-image-preview", "image_size": "4K", "aspect_ratio": "16:9"}
    assert catalogue.validate("gemini", "style_transfer", {"prompt": "p", "params": pro,
                                                           "templates": {"style": TID}}) == {}
    errors = catalogue.validate("gemini", "image_edit", {"prompt": "p", "params": {"image_size": "2K"}})
    assert "set model too" in errors["settings_json.params.image_size"]
    errors = catalogue.validate("gemini", "image_edit", {"prompt": "p", "params": {
        "model": "gemini-2.5-flash-image", "image_size": "2K"}})
    assert errors["settings_json.params.image_size"] == (
        "gemini-2.5-flash-image answers at one size; image_size needs gemini-3-pro-image-preview")


@pytest.mark.parametrize("width, height, ratio", [
    (3000, 2000, "3:2"), (2000, 3000, "2:3"), (1000, 1000, "1:1"), (1920, 1080, "16:9"), (4000, 3000, "4:3"),
    (2560, 1080, "21:9"), (1080, 1350, "4:5"), (451, 300, "3:2"),
])
def test_the_default_aspect_ratio_is_the_listed_one_nearest_to_the_photo(width, height, ratio):
    assert catalogue.nearest_aspect_ratio(width, height) == ratio
