"""Owner-only files: the media tree tightened at start, new files 0600 under the process umask, and
the warning for a world-readable config file that holds a secret. POSIX only (Windows has ACLs)."""
from __future__ import annotations

import logging
import os
import stat
import sys

import pytest

from photoslot import filemodes

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def restore_umask():
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def test_an_older_media_tree_is_tightened_and_new_files_are_private(make_cfg, restore_umask, caplog):
    cfg = make_cfg()
    os.umask(0o022)  # what an earlier version ran with
    results = cfg.media_root / "results"
    results.mkdir(parents=True)
    photo = results / "old.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    assert _mode(photo) == 0o644 and _mode(results) == 0o755
    caplog.set_level(logging.INFO, logger="photoslot.filemodes")
    filemodes.make_private(cfg)
    assert _mode(photo) == 0o600 and _mode(results) == 0o700 and _mode(cfg.media_root) == 0o700
    assert "file_modes_tightened" in caplog.text
    fresh = results / "new.jpg"
    fresh.write_bytes(b"\xff\xd8\xff")
    (cfg.media_root / "templates").mkdir()
    assert _mode(fresh) == 0o600 and _mode(cfg.media_root / "templates") == 0o700
    assert filemodes.tighten_tree(cfg.media_root) == 0  # nothing left to change


def test_a_world_readable_config_holding_a_key_is_named_once(make_cfg, caplog):
    cfg = make_cfg()  # the test config holds provider api keys
    os.chmod(cfg.source, 0o644)
    caplog.set_level(logging.WARNING, logger="photoslot.filemodes")
    assert filemodes.warn_if_config_exposed(cfg)
    (record,) = [r for r in caplog.records if "config_readable_by_others" in r.getMessage()]
    message = record.getMessage()
    assert str(cfg.source.resolve()) in message and "providers.gemini.api_key" in message
    assert "emulator-key" not in message  # which keys, never their values
    os.chmod(cfg.source, 0o640)  # group-readable is the usual service set-up (root:photoslot)
    assert not filemodes.warn_if_config_exposed(cfg)


def test_a_world_readable_config_without_a_secret_is_fine(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("server:\n  port: 8080\ndatabase:\n  dsn: postgresql://photoslot@db/photoslot\n")
    os.chmod(path, 0o644)
    assert filemodes.config_exposed(path) == []
    path.write_text("database:\n  dsn: postgresql://photoslot:SECRET@db/photoslot\nmetrics:\n  token: abc\n")
    assert filemodes.config_exposed(path) == ["metrics.token", "database.dsn"]
