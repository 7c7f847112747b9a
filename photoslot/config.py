"""Configuration: built-in defaults, overlaid by a YAML file, overlaid by the environment,
overlaid by command-line flags.

The key names are a public interface (docs/CLI.md); `config.example.yaml` documents each. Where the file comes
from: `--config PATH`, else `PHOTOSLOT_CONFIG`, else `./photoslot.yaml` if present, else defaults
only. Every key can also be set as `PHOTOSLOT_<SECTION>_<KEY>` (`server.port` →
`PHOTOSLOT_SERVER_PORT`, `providers.gemini.max_parallel` → `PHOTOSLOT_PROVIDERS_GEMINI_MAX_PARALLEL`),
its text read as the default's type. A `PHOTOSLOT_*` name that starts like a key but is none is
refused, so a typo in a service file cannot be silently ignored.
"""
from __future__ import annotations

import copy
import difflib
import os
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from photoslot import client_address

DEFAULTS: dict[str, Any] = {
    "data_dir": "./photoslot-data",
    "media_root": None,  # null = <data_dir>/media
    # synchronous_commit false: a statement's commit does not wait for its WAL on disk (PostgreSQL's
    # synchronous_commit=off for photoslot's connections): a crash of the PC or of PostgreSQL can
    # lose the last ~0.6 s of commits — jobs already answered, their counts — never consistency.
    "database": {"dsn": None, "pool_size": 10, "synchronous_commit": False},
    "server": {
        "host": "0.0.0.0",
        "port": 8080,
        "public_base_url": None,
        "tls_cert_file": None,
        "tls_key_file": None,
        "tls_check_seconds": 5,
        "shutdown_grace_seconds": 10,
        "trusted_proxies": [],  # peers whose X-Forwarded-For is believed (addresses or networks)
        "header_timeout_seconds": 10,  # a connection must send a complete request head within this
        "max_connections": 1000,  # open connections in all; lowered to fit the open-file limit
        "max_connections_per_client": 32,  # open connections from one client address
        "body_timeout_seconds": 60,  # a request body must be complete within this (never below the ingest window)
        "body_min_bytes_per_second": 8192,  # … and keep arriving at least this fast …
        "body_rate_window_seconds": 5,  # … over every window of this many seconds
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
        "password_max_failures": 5,  # free wrong passwords per client address before the back-off
        "password_backoff_seconds": 1,  # the first wait after those; it doubles with each failure
        "password_max_backoff_seconds": 60,
        "password_window_seconds": 900,  # failures are forgotten this long after the newest one
        "file_before_password_buffer_mb": 64,  # in-memory total for file parts sent before the password
        "test_shots_per_minute": 10,  # an admin's test shots (real provider calls), per admin
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
            "quota_time_zone": "America/Los_Angeles",  # Google's daily quota resets at midnight Pacific
            "max_input_megapixels": 24,
            "max_attempts": 3,  # requests per job at most (retries of 5xx, 429, connection errors, no image)
            "down_after_failures": 5,  # consecutive failed calls that take the provider down
            "down_cooldown_seconds": 15,  # down this long, then one probe call
        },
        "turbotext": {
            "api_key": None,
            "base_url": None,
            "max_parallel": 2,
            "poll_interval_seconds": 2,
            "requests_per_minute": None,
            "requests_per_day": None,
            "quota_time_zone": "UTC",  # the day requests_per_day counts
            "max_input_megapixels": 24,
            "max_attempts": 3,  # requests per job at most (retries of 5xx, 429, connection errors, no image)
            "down_after_failures": 5,  # consecutive failed calls that take the provider down
            "down_cooldown_seconds": 15,  # down this long, then one probe call
        },
    },
    "stats": {
        "rollup_retention_days": 400,  # hourly figures of every ingest request are kept this long
        "flush_seconds": 5,  # refused requests are counted in memory and written this often
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
        "provider_quota_remaining": 50,  # provider_quota_low when a provider says this many or fewer are left
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
        "web_session_idle_minutes": 120,  # a web admin session unused this long ends (sessions.py)
        "web_session_max_hours": 14,  # a web admin session ends this long after its sign-in, used or not
    },
    "pricing": {
        "currency": "USD",
        "gemini_usd_per_1k_tokens": 0.03,
        "turbotext_usd_per_request": 0.01,
    },
}


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the key."""


ENV_PREFIX = "PHOTOSLOT_"
# PHOTOSLOT_* names that are not config keys.
ENV_NOT_KEYS = {
    "PHOTOSLOT_CONFIG": "the config file to read",
    "PHOTOSLOT_INGEST_PASSWORD": "the ingest password for `photoslot slot test`",
}
# Names older than the PHOTOSLOT_<SECTION>_<KEY> scheme, kept; each sets the same key as its twin.
ENV_ALIASES = {
    "PHOTOSLOT_DSN": "database.dsn",
    "GEMINI_API_KEY": "providers.gemini.api_key",
    "TURBOTEXT_API_KEY": "providers.turbotext.api_key",
}
# Keys that hold a whole number or null (no limit) although their default is one or the other.
NULLABLE_INTS = frozenset(f"providers.{p}.requests_per_{w}" for p in ("gemini", "turbotext") for w in ("minute", "day"))
NULL_WORDS = ("null", "none", "~")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def env_keys(defaults: dict = DEFAULTS) -> dict[str, str]:
    """PHOTOSLOT_<SECTION>_<KEY> → dotted key, for every leaf of the defaults."""
    out: dict[str, str] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            dotted = prefix + key
            if isinstance(value, dict):
                walk(value, dotted + ".")
                continue
            name = env_name(dotted)
            if name in out:  # two keys that only differ by where the underscore sits
                raise RuntimeError(f"config keys {out[name]} and {dotted} share the variable {name}")
            out[name] = dotted
    walk(defaults, "")
    return out


def _looks_like_a_key(name: str, defaults: dict) -> bool:
    """PHOTOSLOT_ followed by the first word of a top-level key (SERVER_…, PROVIDERS_…, DATA_…)."""
    first = name[len(ENV_PREFIX):].split("_", 1)[0]
    return any(first == top.split("_", 1)[0].upper() for top in defaults)


def _env_value(name: str, dotted: str, text: str, default: Any) -> Any:
    """The variable's text read as the default's type (bool, number, list, text)."""
    word = text.strip()

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{name}={text!r}: {dotted} must be {expected}")

    if word.lower() in NULL_WORDS and (default is None or dotted in NULLABLE_INTS):
        return None
    if isinstance(default, bool):
        if word.lower() in TRUE_WORDS + FALSE_WORDS:
            return word.lower() in TRUE_WORDS
        raise bad("true or false")
    if isinstance(default, (int, float)) or dotted in NULLABLE_INTS:
        try:
            return _number(word, integer_default=not isinstance(default, float))
        except ValueError:
            raise bad("a number") from None
    if isinstance(default, list):
        try:
            items = yaml.safe_load(word) if word.startswith("[") else [p.strip() for p in word.split(",") if p.strip()]
            if not isinstance(items, list):
                raise ValueError(word)
            if default and isinstance(default[0], (int, float)) and not isinstance(default[0], bool):
                items = [_number(str(item), integer_default=True) for item in items]
        except (ValueError, yaml.YAMLError):
            numbers = default and isinstance(default[0], (int, float))
            raise bad("a list of numbers like [45, 60] or 45,60" if numbers else "a list like [a, b] or a,b") from None
        return items
    return text


def _number(word: str, integer_default: bool) -> int | float:
    if integer_default:
        try:
            return int(word)
        except ValueError:
            pass
    return float(word)  # ValueError for anything but a number


def _from_environment(cfg: "Config", env, defaults: dict = DEFAULTS) -> None:
    names = env_keys(defaults)
    given: dict[str, tuple[str, str]] = {}  # dotted → (variable, text)
    for name, text in env.items():
        if not text:
            continue  # an empty variable counts as unset (service managers often write NAME=)
        if name in ENV_ALIASES:
            dotted = ENV_ALIASES[name]
        elif name in names:
            dotted = names[name]
        elif name.startswith(ENV_PREFIX) and name not in ENV_NOT_KEYS and _looks_like_a_key(name, defaults):
            close = difflib.get_close_matches(name, list(names) + list(ENV_NOT_KEYS), n=1)
            hint = f"; did you mean {close[0]}?" if close else "; see config.example.yaml"
            raise ConfigError(f"unknown environment variable {name}: no config key by that name{hint}")
        else:
            continue
        if dotted in given and given[dotted][1] != text:
            first, second = sorted((given[dotted][0], name))
            raise ConfigError(f"{first} and {second} both set {dotted}, to different values; set one")
        given[dotted] = (name, text)
    for dotted, (name, text) in sorted(given.items()):
        node: Any = defaults
        for part in dotted.split("."):
            node = node[part]
        cfg.set(dotted, _env_value(name, dotted, text, node))
        cfg.from_env[dotted] = name


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
    from_env: dict = field(default_factory=dict)  # dotted key → the variable that set it
    # Where the last `serve` on this database listens (settings row, see settings.SERVED_BASE_URL_KEY):
    # the links of every process follow the port serve really uses while public_base_url is unset.
    served_base_url: str | None = None
    # The live setting `public_base_url` (Settings page), this process's copy: public_address.py
    # keeps it fresh. The config key, when set, wins over it.
    live_public_base_url: str | None = None

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

    def path(self, dotted: str) -> Path:
        """A path key made absolute. A relative one written in the config file (or left at its
        default while a file is used) is read from the file's folder, not from wherever the command
        happens to run: `photoslot --config /studio/photoslot.yaml jobs` from any folder sees the
        studio's data, never a new empty `./photoslot-data`. From the environment, or with no file,
        it is read from the current folder, as a shell user expects.
        """
        given = Path(str(self.get(dotted))).expanduser()
        if not given.is_absolute():
            base = Path.cwd() if self.source is None or dotted in self.from_env else self.source.resolve().parent
            given = base / given
        return given.resolve()

    @property
    def data_dir(self) -> Path:
        return self.path("data_dir")

    @property
    def media_root(self) -> Path:
        return self.path("media_root") if self.raw.get("media_root") else self.data_dir / "media"

    @property
    def dsn(self) -> str | None:
        return self.raw["database"]["dsn"]

    def provider(self, name: str) -> dict:
        return self.raw["providers"][name]

    def public_base_url(self) -> str:
        """The one base of every URL photoslot prints or hands out (ingest URLs, result and
        Turbotext links): `server.public_base_url`, else the public address an admin saved on the
        Settings page (public_address.py), else where the last `serve` listens, else this config's
        own host and port. Bound to every interface means 127.0.0.1 — an address that works on this
        PC whatever its network; booths on other PCs and Turbotext need a public address.
        """
        url = self.raw["server"]["public_base_url"]
        if url:
            return url.rstrip("/")
        if self.live_public_base_url:
            return self.live_public_base_url
        return self.fallback_base_url()

    def fallback_base_url(self) -> str:
        """Where the last `serve` listens, else this config's own host and port."""
        if self.served_base_url:
            return self.served_base_url
        return self.listen_base_url()

    def listen_base_url(self, port: int | None = None) -> str:
        host = self.raw["server"]["host"]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.raw["server"]["tls_cert_file"] else "http"
        return f"{scheme}://{host}:{port if port is not None else self.raw['server']['port']}"


def _validate(cfg: Config) -> None:
    lo, hi = cfg.get("ingest.sync_response_bounds")
    if not (0 < lo <= hi):
        raise ConfigError("ingest.sync_response_bounds must be [min, max] with 0 < min <= max")
    sync = cfg.get("ingest.sync_response_seconds")
    if not (lo <= sync <= hi):
        raise ConfigError(f"ingest.sync_response_seconds={sync} is outside sync_response_bounds [{lo}, {hi}]")
    if cfg.get("ingest.max_upload_mb") <= 0:
        raise ConfigError("ingest.max_upload_mb must be positive")
    for key in ("server.header_timeout_seconds", "ingest.password_backoff_seconds",
                "ingest.password_max_backoff_seconds", "ingest.password_window_seconds"):
        if not float(cfg.get(key)) > 0:
            raise ConfigError(f"{key} must be a positive number of seconds")
    for key in ("auth.web_session_idle_minutes", "auth.web_session_max_hours"):
        if not float(cfg.get(key)) > 0:
            raise ConfigError(f"{key} must be a positive number")
    for key in ("server.max_connections", "server.max_connections_per_client"):
        if int(cfg.get(key)) < 1:
            raise ConfigError(f"{key} must be at least 1")
    if int(cfg.get("ingest.password_max_failures")) < 0 or float(cfg.get("ingest.file_before_password_buffer_mb")) < 0:
        raise ConfigError("ingest.password_max_failures and ingest.file_before_password_buffer_mb must not be negative")
    for name in ("gemini", "turbotext"):
        if int(cfg.get(f"providers.{name}.max_parallel")) < 1:
            raise ConfigError(f"providers.{name}.max_parallel must be at least 1")
        cap = cfg.get(f"providers.{name}.max_input_megapixels")
        if cap is not None and not (isinstance(cap, (int, float)) and cap > 0):
            raise ConfigError(f"providers.{name}.max_input_megapixels must be a positive number or null")
        zone = cfg.get(f"providers.{name}.quota_time_zone")
        try:
            zoneinfo.ZoneInfo(str(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"providers.{name}.quota_time_zone={zone!r} is not a time zone name "
                              "(an IANA name such as America/Los_Angeles, Europe/Moscow or UTC)") from None
    for key in ("server.trusted_proxies", "metrics.allow"):
        if not isinstance(cfg.get(key), list):
            raise ConfigError(f"{key} must be a list of addresses or networks")
        try:
            client_address.networks(cfg, key)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def load_config(path: str | Path | None = None, environ: dict | None = None, flags: dict | None = None) -> Config:
    """Defaults < the YAML file < the environment < `flags` (dotted key → value; None = not given)."""
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
    _from_environment(cfg, env)
    for dotted, value in (flags or {}).items():
        if value is not None:
            cfg.set(dotted, value)
    _validate(cfg)
    return cfg
