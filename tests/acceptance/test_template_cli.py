"""`photoslot template add|list|rm` and `slot set --template ROLE=PATH_OR_ID` as real processes."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.acceptance.procs import cli
from tests.conftest import FIXTURES, free_port, write_config

STYLE = FIXTURES / "template_style.jpg"
FACE = FIXTURES / "template_face.png"


@pytest.fixture
def config(tmp_path, pg_dsn, emulator, clean_state):
    return write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                        emulator_url=emulator.base_url, port=free_port())


def templates_dir(config):
    return config.parent / "data" / "media" / "templates"


def test_template_in_use_cannot_be_removed_and_force_unbinds_and_says_from_where(config, pg_dsn):
    r = cli(config, pg_dsn, "template", "add", str(FACE), "--label", "bride", "--json")
    assert r.returncode == 0, r.stderr
    face = json.loads(r.stdout)
    assert face["label"] == "bride" and face["mime"] == "image/png"
    # a PATH is registered on the way; an ID must exist
    r = cli(config, pg_dsn, "slot", "set", "slot-002", "--provider", "gemini", "--operation", "identity_transfer",
            "--prompt", "put her in the photo", "--template", f"face={face['id']}", "--template", f"style={STYLE}",
            "--json")
    assert r.returncode == 0, r.stderr
    bound = json.loads(r.stdout)["settings_json"]["templates"]
    assert bound["face"] == face["id"] and uuid.UUID(bound["style"])
    r = cli(config, pg_dsn, "template", "list", "--json")
    listed = {t["id"]: t for t in json.loads(r.stdout)}
    assert listed[face["id"]]["used_by"] == ["slot-002"]
    assert listed[bound["style"]]["label"] == STYLE.name and listed[bound["style"]]["used_by"] == ["slot-002"]

    r = cli(config, pg_dsn, "template", "rm", face["id"])
    assert r.returncode != 0 and "slot-002 (face)" in r.stderr and "--force" in r.stderr
    assert f"{face['id']}.png" in [p.name for p in templates_dir(config).iterdir()]

    r = cli(config, pg_dsn, "template", "rm", face["id"], "--force")
    assert r.returncode == 0, r.stderr
    assert "unbound from slot-002 (face)" in r.stdout and "disabled" in r.stdout
    assert f"{face['id']}.png" not in [p.name for p in templates_dir(config).iterdir()]
    slot = json.loads(cli(config, pg_dsn, "slot", "show", "slot-002", "--json").stdout)
    assert slot["enabled"] is False and "face" not in slot["settings_json"]["templates"]


def test_slot_set_with_unknown_template_id_or_rejected_settings_exits_2_and_keeps_nothing(config, pg_dsn):
    r = cli(config, pg_dsn, "slot", "set", "slot-003", "--provider", "turbotext", "--operation", "style_transfer",
            "--template", f"style={uuid.uuid4()}")
    assert r.returncode == 2 and "no template" in r.stderr
    r = cli(config, pg_dsn, "slot", "set", "slot-003", "--provider", "turbotext", "--operation", "style_transfer",
            "--template", "style=/no/such/file.jpg")
    assert r.returncode == 2 and "neither a file nor a template id" in r.stderr
    # the template is valid but the slot settings are not: the registered file is taken back
    r = cli(config, pg_dsn, "slot", "set", "slot-003", "--provider", "turbotext", "--operation", "image_edit",
            "--prompt", "x", "--param", "strength=95", "--template", f"style={STYLE}")
    assert r.returncode == 2
    assert "settings_json.params.strength" in r.stderr and "settings_json.templates.style" in r.stderr
    assert json.loads(cli(config, pg_dsn, "template", "list", "--json").stdout) == []
    assert list(templates_dir(config).iterdir()) == []


def test_template_add_refuses_a_file_that_is_not_an_image(config, pg_dsn, tmp_path):
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not really a jpeg")
    r = cli(config, pg_dsn, "template", "add", str(bogus))
    assert r.returncode == 2 and "not a JPEG, PNG or WebP" in r.stderr


def test_providers_lists_every_operation_with_parameters_and_roles(config, pg_dsn):
    r = cli(config, pg_dsn, "providers", "--json")
    assert r.returncode == 0, r.stderr
    data = {p["id"]: p for p in json.loads(r.stdout)}
    assert data["turbotext"]["max_input_mb"] == 15
    ops = {o["id"]: o for o in data["turbotext"]["operations"]}
    assert ops["image_edit"]["parameters"]["strength"]["maximum"] == 80
    assert ops["identity_transfer"]["needs"] == ["face"]
    r = cli(config, pg_dsn, "slot", "set", "--help")
    assert "style_transfer" in r.stdout and "strength" in r.stdout


def test_template_unbind_from_an_enabled_slot_that_needs_it_asks_for_force_and_names_the_slot(config, pg_dsn):
    r = cli(config, pg_dsn, "slot", "set", "slot-004", "--provider", "gemini", "--operation", "style_transfer",
            "--prompt", "in this style", "--template", f"style={STYLE}", "--json")
    assert r.returncode == 0, r.stderr
    style = json.loads(r.stdout)["settings_json"]["templates"]["style"]
    r = cli(config, pg_dsn, "template", "unbind", style, "--slot", "slot-004", "--role", "style")
    assert r.returncode == 1 and "disables slot-004" in r.stderr and "force" in r.stderr
    assert json.loads(cli(config, pg_dsn, "slot", "show", "slot-004", "--json").stdout)["enabled"] is True
    r = cli(config, pg_dsn, "template", "unbind", style, "--slot", "slot-004", "--role", "style", "--force")
    assert r.returncode == 0, r.stderr
    assert "unbound from slot-004 (style)" in r.stdout and "disabled" in r.stdout
    assert json.loads(cli(config, pg_dsn, "slot", "show", "slot-004", "--json").stdout)["enabled"] is False
