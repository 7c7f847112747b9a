"""Config loading: defaults, YAML overlay, environment overrides, clear errors."""
from pathlib import Path

import pytest
import yaml

from photoslot.config import DEFAULTS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_apply_with_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg.get("ingest.sync_response_seconds") == 48
    assert cfg.get("ingest.sync_response_bounds") == [45, 60]
    assert cfg.dsn is None
    assert cfg.media_root == (tmp_path / "photoslot-data" / "media").resolve()


def test_photoslot_yaml_in_the_working_directory_is_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photoslot.yaml").write_text("server: {port: 9999}\n")
    assert load_config(environ={}).get("server.port") == 9999


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("database: {dsn: postgresql://file/db}\nproviders: {gemini: {api_key: from-file}}\n")
    cfg = load_config(path, environ={"PHOTOSLOT_DSN": "postgresql://env/db", "GEMINI_API_KEY": "from-env",
                                     "PHOTOSLOT_DATA_DIR": str(tmp_path / "d")})
    assert cfg.dsn == "postgresql://env/db"
    assert cfg.get("providers.gemini.api_key") == "from-env"
    assert cfg.data_dir == (tmp_path / "d").resolve()


def test_config_path_from_environment(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("workers: {in_process: 7}\n")
    assert load_config(environ={"PHOTOSLOT_CONFIG": str(path)}).get("workers.in_process") == 7


@pytest.mark.parametrize("text, needle", [
    ("servr: {port: 1}\n", "unknown config key: servr"),
    ("server: {prot: 1}\n", "unknown config key: server.prot"),
    ("ingest: {sync_response_seconds: 70}\n", "outside sync_response_bounds"),
    ("server: [1, 2]\n", "server must be a mapping"),
    ("a: [\n", "not valid YAML"),
])
def test_bad_config_is_refused_with_the_key_named(tmp_path, text, needle):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(path, environ={})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_example_config_lists_every_key_and_loads():
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    assert keys(example) == keys(DEFAULTS)
    load_config(ROOT / "config.example.yaml", environ={})


def test_public_base_url_defaults_to_a_reachable_loopback_address(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server: {host: 0.0.0.0, port: 8123}\n")
    assert load_config(path, environ={}).public_base_url() == "http://127.0.0.1:8123"
    path.write_text("server: {public_base_url: 'https://studio.example/'}\n")
    assert load_config(path, environ={}).public_base_url() == "https://studio.example"


def test_a_relative_data_dir_is_read_from_the_config_files_folder_not_the_current_one(tmp_path, monkeypatch):
    studio = tmp_path / "studio"
    studio.mkdir()
    (studio / "photoslot.yaml").write_text("data_dir: ./data\nmedia_root: ../studio-media\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(studio / "photoslot.yaml", environ={})
    assert cfg.data_dir == (studio / "data").resolve()
    assert cfg.media_root == (tmp_path / "studio-media").resolve()
    (studio / "photoslot.yaml").write_text("server: {port: 8090}\n")  # the default ./photoslot-data too
    assert load_config(studio / "photoslot.yaml", environ={}).data_dir == (studio / "photoslot-data").resolve()


def test_a_relative_data_dir_from_the_environment_is_read_from_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "studio").mkdir()
    (tmp_path / "studio" / "photoslot.yaml").write_text("data_dir: ./data\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tmp_path / "studio" / "photoslot.yaml", environ={"PHOTOSLOT_DATA_DIR": "here"})
    assert cfg.data_dir == (tmp_path / "here").resolve()
    absolute = tmp_path / "abs"
    (tmp_path / "studio" / "photoslot.yaml").write_text(f"data_dir: {absolute}\n")
    assert load_config(tmp_path / "studio" / "photoslot.yaml", environ={}).data_dir == absolute.resolve()


def test_links_follow_where_serve_listens_until_a_public_base_url_is_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server: {port: 8080}\n")
    cfg = load_config(path, environ={})
    cfg.served_base_url = "http://127.0.0.1:8090"  # what `serve --port 8090` recorded in the database
    assert cfg.public_base_url() == "http://127.0.0.1:8090"
    assert cfg.listen_base_url(8091) == "http://127.0.0.1:8091"
    path.write_text("server: {public_base_url: 'https://studio.example/'}\n")
    cfg = load_config(path, environ={})
    cfg.served_base_url = "http://127.0.0.1:8090"
    assert cfg.public_base_url() == "https://studio.example"
