"""Every config key from the environment (PHOTOSLOT_<SECTION>_<KEY>), typed like its default, and
the precedence flags > environment > file > defaults."""
from pathlib import Path

import pytest
import yaml

from photoslot.config import DEFAULTS, ENV_ALIASES, ENV_NOT_KEYS, ConfigError, env_keys, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_config_file_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # load_config() without a path reads ./photoslot.yaml when present


def leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, prefix + key + ".")
        else:
            yield prefix + key


def test_every_key_has_its_own_environment_variable():
    names = env_keys()
    assert sorted(names.values()) == sorted(leaves(DEFAULTS))
    assert names["PHOTOSLOT_SERVER_PORT"] == "server.port"
    assert names["PHOTOSLOT_SERVER_TLS_CERT_FILE"] == "server.tls_cert_file"
    assert names["PHOTOSLOT_PROVIDERS_GEMINI_MAX_PARALLEL"] == "providers.gemini.max_parallel"
    assert names["PHOTOSLOT_DATA_DIR"] == "data_dir"
    assert names["PHOTOSLOT_DATABASE_DSN"] == "database.dsn"


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server: {port: 9001, host: 127.0.0.2}\nworkers: {in_process: 7}\n")
    env = {"PHOTOSLOT_SERVER_PORT": "9002", "PHOTOSLOT_WORKERS_LEASE_SECONDS": "12"}

    cfg = load_config(path, environ={})
    assert (cfg.get("server.port"), cfg.get("workers.in_process"), cfg.get("sweeper.interval_seconds")) == (9001, 7, 15)

    cfg = load_config(path, environ=env)
    assert cfg.get("server.port") == 9002                 # environment over file
    assert cfg.get("workers.lease_seconds") == 12          # environment over default
    assert cfg.get("workers.in_process") == 7              # file over default, no variable set
    assert cfg.get("server.host") == "127.0.0.2"
    assert cfg.from_env == {"server.port": "PHOTOSLOT_SERVER_PORT", "workers.lease_seconds": "PHOTOSLOT_WORKERS_LEASE_SECONDS"}

    cfg = load_config(path, environ=env, flags={"server.port": 9003, "server.host": None})
    assert cfg.get("server.port") == 9003                 # flag over environment
    assert cfg.get("server.host") == "127.0.0.2"          # a flag not given (None) changes nothing


def test_values_are_read_as_the_type_of_their_default():
    cfg = load_config(environ={
        "PHOTOSLOT_WORKERS_NOTIFY": "false",
        "PHOTOSLOT_WORKERS_POLL_INTERVAL_SECONDS": "0.25",
        "PHOTOSLOT_WORKERS_HEARTBEAT_SECONDS": "0.5",       # default 3: a whole number, a fraction allowed
        "PHOTOSLOT_INGEST_SYNC_RESPONSE_BOUNDS": "2, 60",
        "PHOTOSLOT_INGEST_SYNC_RESPONSE_SECONDS": "3",
        "PHOTOSLOT_PROVIDERS_GEMINI_REQUESTS_PER_DAY": "null",   # null = no limit
        "PHOTOSLOT_PROVIDERS_TURBOTEXT_REQUESTS_PER_MINUTE": "60",  # default null, yet a number
        "PHOTOSLOT_PROVIDERS_GEMINI_API_KEY": "0123456789",      # text stays text, leading zero and all
        "PHOTOSLOT_SERVER_TLS_CERT_FILE": "/etc/tls/fullchain.pem",
    })
    assert cfg.get("workers.notify") is False
    assert cfg.get("workers.poll_interval_seconds") == 0.25
    assert cfg.get("workers.heartbeat_seconds") == 0.5
    assert cfg.get("ingest.sync_response_bounds") == [2, 60]
    assert cfg.get("ingest.sync_response_seconds") == 3 and isinstance(cfg.get("ingest.sync_response_seconds"), int)
    assert cfg.get("providers.gemini.requests_per_day") is None
    assert cfg.get("providers.turbotext.requests_per_minute") == 60
    assert cfg.get("providers.gemini.api_key") == "0123456789"
    assert cfg.get("server.tls_cert_file") == "/etc/tls/fullchain.pem"
    assert load_config(environ={"PHOTOSLOT_INGEST_SYNC_RESPONSE_BOUNDS": "[40, 50]"}).get(
        "ingest.sync_response_bounds") == [40, 50]


@pytest.mark.parametrize("name, value, needle", [
    ("PHOTOSLOT_SERVER_PORT", "eighty", "PHOTOSLOT_SERVER_PORT='eighty': server.port must be a number"),
    ("PHOTOSLOT_WORKERS_NOTIFY", "maybe", "workers.notify must be true or false"),
    ("PHOTOSLOT_INGEST_SYNC_RESPONSE_BOUNDS", "[a, b]", "ingest.sync_response_bounds must be a list of numbers"),
    ("PHOTOSLOT_SERVER_PORT", "null", "server.port must be a number"),   # only nullable keys take null
])
def test_a_bad_value_is_refused_naming_the_variable(name, value, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("(", r"\(")):
        load_config(environ={name: value})


@pytest.mark.parametrize("name, suggestion", [
    ("PHOTOSLOT_SERVER_PROT", "PHOTOSLOT_SERVER_PORT"),
    ("PHOTOSLOT_PROVIDERS_GEMINI_MAXPARALLEL", "PHOTOSLOT_PROVIDERS_GEMINI_MAX_PARALLEL"),
    ("PHOTOSLOT_DATA_DIRS", "PHOTOSLOT_DATA_DIR"),
    ("PHOTOSLOT_INGEST_PASWORD", "PHOTOSLOT_INGEST_PASSWORD"),
])
def test_a_misspelt_variable_is_refused_with_the_likely_name(name, suggestion):
    with pytest.raises(ConfigError, match=f"unknown environment variable {name}: .*did you mean {suggestion}"):
        load_config(environ={name: "1"})


def test_names_that_are_not_config_keys_are_left_alone(tmp_path):
    env = {name: "x" for name in ENV_NOT_KEYS}
    env["PHOTOSLOT_CONFIG"] = str(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text("{}\n")
    env.update({"PHOTOSLOT_FUZZ_EXAMPLES": "5", "PHOTOSLOT_BINARY": "/opt/photoslot", "HOME": "/root",
                "PHOTOSLOTX_SERVER_PORT": "1"})
    assert load_config(environ=env).get("server.port") == 8080


def test_the_older_names_still_work_and_two_names_for_one_key_must_agree():
    cfg = load_config(environ={"PHOTOSLOT_DSN": "postgresql://old/db", "GEMINI_API_KEY": "from-old-name"})
    assert cfg.dsn == "postgresql://old/db" and cfg.get("providers.gemini.api_key") == "from-old-name"
    same = load_config(environ={"PHOTOSLOT_DSN": "postgresql://x/db", "PHOTOSLOT_DATABASE_DSN": "postgresql://x/db"})
    assert same.dsn == "postgresql://x/db"
    with pytest.raises(ConfigError, match="PHOTOSLOT_DATABASE_DSN and PHOTOSLOT_DSN both set database.dsn"):
        load_config(environ={"PHOTOSLOT_DSN": "postgresql://a/db", "PHOTOSLOT_DATABASE_DSN": "postgresql://b/db"})


def test_an_empty_variable_counts_as_unset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server: {public_base_url: 'https://studio.example'}\n")
    cfg = load_config(path, environ={"PHOTOSLOT_SERVER_PUBLIC_BASE_URL": "", "PHOTOSLOT_SERVER_PORT": ""})
    assert cfg.get("server.public_base_url") == "https://studio.example" and cfg.get("server.port") == 8080


def test_environment_values_are_validated_like_file_values():
    with pytest.raises(ConfigError, match="outside sync_response_bounds"):
        load_config(environ={"PHOTOSLOT_INGEST_SYNC_RESPONSE_SECONDS": "70"})


def test_config_example_documents_the_environment_names():
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    assert "PHOTOSLOT_<SECTION>_<KEY>" in text
    for name in [*ENV_NOT_KEYS, *ENV_ALIASES, "PHOTOSLOT_PROVIDERS_GEMINI_MAX_PARALLEL"]:
        assert name in text, name
    yaml.safe_load(text)
