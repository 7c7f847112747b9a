"""docs/CLI.md carries every command's real `--help`: the file cannot drift from the commands."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_what_every_command_prints_for_help():
    generator = load_generator()
    current = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    assert generator.render(current) == current, "docs/CLI.md is out of date: run `make docs`"


def test_the_reference_names_every_command_and_subcommand():
    block = load_generator().generated()
    for command in ("serve", "work", "sweep", "slot list", "slot set", "slot reset-stats", "settings set",
                    "settings provider-key", "template add", "jobs", "job", "stats", "audit", "users reset",
                    "media purge", "media register", "providers", "emulate"):
        assert f"### `photoslot {command}`" in block


def test_a_changed_help_text_is_caught(tmp_path):
    generator = load_generator()
    current = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    drifted = current.replace("Recent jobs with state, reason, timings.", "Recent jobs.", 1)
    assert drifted != current and generator.render(drifted) != drifted
