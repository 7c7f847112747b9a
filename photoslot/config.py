"""Configuration: built-in defaults, overlaid by a YAML file, overlaid by the environment.

The key names are a public interface (docs/CLI.md); `config.example.yaml` documents each.
Where the file comes from: `--config PATH`, else `PHOTOSLOT_CONFIG`, else `./photoslot.yaml` if
present, else defaults only.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from photoslot import client_address

DEFAULTS: dict[str, Any] = {
    "data_dir": "./photoslot-data",
    "media_root": None,  # null = <data_dir>/media
    "database": {"dsn": None, "pool_size": 10},
    "server": {
        "host": "0.0.0.0",
        "port": 8080,
        "public_base_url": None,
        "tls_cert_file": None,
        "tls_key_file": None,
        "tls_check_seconds": 5,
        "shutdown_grace_seconds": 10,
        "trusted_proxies": [],  # peers whose X-Forwarded-For is believed (addresses or networks)
    },
    "workers": {
        "in_process": 4,
        "lease_seconds": 10,
        "heartbeat_seconds": 3,
        "poll_interval_seconds": 1.0,
        "notify": True,  # false = poll-only wake-ups (benchmark comparison)
    },
    "ingest": {
        "sync_response_seconds": 48,
        "sync_response_bounds": [45, 60],
        "max_upload_mb": 20,
        "max_pending_jobs": 100,
        "deadline_margin_ms": 40,
        "max_extra_fields": 50,
        "max_extra_field_bytes": 4096,
    },
    "results": {"retention_hours": 72},
    "providers": {
        "gemini": {
            "api_key": None,
            "base_url": None,
            "model": "gemini-2.5-flash-image",
            "max_parallel": 4,
            "requests_per_minute": 500,
            "requests_per_day": 2000,
            "max_input_megapixels": 24,
        },
        "turbotext": {
            "api_key": None,
            "base_url": None,
            "max_parallel": 2,
            "poll_interval_seconds": 2,
            "requests_per_minute": None,
            "requests_per_day": None,
            "max_input_megapixels": 24,
        },
    },
    "sweeper": {
        "interval_seconds": 15,
        "orphan_grace_seconds": 120,
        "job_row_retention_days": 30,
    },
    "alerts": {
        "webhook_url": None,
        "timeout_ratio": 0.05,
        "window_minutes": 5,
        "media_disk_used_percent": 90,
        "min_jobs": 5,
        "provider_failures": 5,
        "quota_used_percent": 90,
        "webhook_timeout_seconds": 5,
    },
    "logging": {"level": "INFO"},
    "metrics": {
        "token": None,  # a bearer token Prometheus sends; or scrape from an address in `allow`
        "allow": ["127.0.0.1", "::1"],
    },
    "auth": {
        "token_ttl_minutes": 60,
        "login_max_failures": 5,  # free tries per (user, client address) before the back-off
        "login_max_failures_per_address": 20,  # free tries per client address, whatever the username
        "login_backoff_seconds": 1,  # the first wait after the free tries; it doubles with each failure
        "login_max_backoff_seconds": 300,
        "login_window_seconds": 3600,  # how long a failure is remembered
    },
    "pricing": {
        "currency": "USD",
        "gemini_usd_per_1k_tokens": 0.03,
        "turbotext_usd_per_request": 0.01,
    },
}


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the key."""


def _merge(base: dict, over: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        where = f"{path}{key}"
        if key not in base:
            raise ConfigError(f"unknown config key: {where}")
        if isinstance(base[key], dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"config key {where} must be a mapping")
            out[key] = _merge(base[key], value, where + ".")
        else:
            out[key] = value
    return out


@dataclass
class Config:
    raw: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    source: Path | None = None

    def get(self, dotted: str) -> Any:
        node: Any = self.raw
        for part in dotted.split("."):
            node = node[part]
        return node

    def set(self, dotted: str, value: Any) -> None:
        *parents, last = dotted.split(".")
        node = self.raw
        for part in parents:
            node = node[part]
        node[last] = value

    @property
    def data_dir(self) -> Path:
        return Path(self.raw["data_dir"]).expanduser().resolve()

    @property
    def media_root(self) -> Path:
        configured = self.raw.get("media_root")
        return Path(configured).expanduser().resolve() if configured else self.data_dir / "media"

    @property
    def dsn(self) -> str | None:
        return self.raw["database"]["dsn"]

    def provider(self, name: str) -> dict:
        return self.raw["providers"][name]

    def public_base_url(self) -> str:
        url = self.raw["server"]["public_base_url"]
        if url:
            return url.rstrip("/")
        host = self.raw["server"]["host"]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        scheme = "https" if self.raw["server"]["tls_cert_file"] else "http"
        return f"{scheme}://{host}:{self.raw['server']['port']}"


def _validate(cfg: Config) -> None:
    lo, hi = cfg.get("ingest.sync_response_bounds")
    if not (0 < lo <= hi):
        raise ConfigError("ingest.sync_response_bounds must be [min, max] with 0 < min <= max")
    sync = cfg.get("ingest.sync_response_seconds")
    if not (lo <= sync <= hi):
        raise ConfigError(f"ingest.sync_response_seconds={sync} is outside sync_response_bounds [{lo}, {hi}]")
    if cfg.get("ingest.max_upload_mb") <= 0:
        raise ConfigError("ingest.max_upload_mb must be positive")
    for name in ("gemini", "turbotext"):
        if int(cfg.get(f"providers.{name}.max_parallel")) < 1:
            raise ConfigError(f"providers.{name}.max_parallel must be at least 1")
        cap = cfg.get(f"providers.{name}.max_input_megapixels")
        if cap is not None and not (isinstance(cap, (int, float)) and cap > 0):
            raise ConfigError(f"providers.{name}.max_input_megapixels must be a positive number or null")
    for key in ("server.trusted_proxies", "metrics.allow"):
        if not isinstance(cfg.get(key), list):
            raise ConfigError(f"{key} must be a list of addresses or networks")
        try:
            client_address.networks(cfg, key)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def load_config(path: str | Path | None = None, environ: dict | None = None) -> Config:
    env = os.environ if environ is None else environ
    source: Path | None = None
    if path is None:
        path = env.get("PHOTOSLOT_CONFIG")
        if path is None and Path("photoslot.yaml").exists():
            path = "photoslot.yaml"
    raw = copy.deepcopy(DEFAULTS)
    if path is not None:
        source = Path(path)
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {source}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {source} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {source} must hold a mapping")
        raw = _merge(DEFAULTS, loaded)
    cfg = Config(raw=raw, source=source)
    if env.get("PHOTOSLOT_DATA_DIR"):
        cfg.set("data_dir", env["PHOTOSLOT_DATA_DIR"])
    if env.get("PHOTOSLOT_DSN"):
        cfg.set("database.dsn", env["PHOTOSLOT_DSN"])
    if env.get("GEMINI_API_KEY"):
        cfg.set("providers.gemini.api_key", env["GEMINI_API_KEY"])
    if env.get("TURBOTEXT_API_KEY"):
        cfg.set("providers.turbotext.api_key", env["TURBOTEXT_API_KEY"])
    _validate(cfg)
    return cfg
