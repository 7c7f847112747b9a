"""`photoslot doctor`: everything a studio needs, checked in one place, each failure with its fix.

Each check returns a `Check`: ok, fail (with the fix), or skipped (it depends on one that failed:
no database, no slot checks). Nothing here changes the studio: the schema is inspected, never
migrated; the port is bound for an instant and released; a provider key is tried with the
provider's cheapest authenticated request, which generates nothing and costs nothing:

* Gemini: `GET /v1beta/models/{model}` — the model's metadata;
* Turbotext: `do=get_result` for queue 0 — a status poll, which Turbotext does not bill; an
  accepted key gets "queue not found", a wrong one is refused.

Those prove a key is accepted, not that it can work: a Gemini project without billing reads model
metadata fine and gets `429 … limit: 0` on every image. `--live` (photoslot/doctor_live.py) makes
the one real call per provider that proves it, and says so before it spends anything.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import errno
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import psycopg2.extensions
from cryptography import x509
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from photoslot import db as dbmod
from photoslot import doctor_live, public_address, schema, templates, tls
from photoslot import settings as live_settings
from photoslot.alerts import disk_usage
from photoslot.config import ConfigError, load_config
from photoslot.errors import NotFound
from photoslot.providers import catalogue
from photoslot.providers.turbotext import DEFAULT_BASE_URL, METHODS

OK, FAIL, SKIPPED = "ok", "fail", "skipped"
KEY_CHECK_TIMEOUT = 10.0
DB_TIMEOUT = 10.0
CLOCK_TOLERANCE_SECONDS = 2.0      # deadlines are 45–60 s and cut to ~40 ms; hosts must agree
CLOCK_FLOOR = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)  # a PC whose CMOS battery died says 2000
TLS_WARN_DAYS = 7                  # renew before the event, not during it


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != FAIL


def ok(name: str, detail: str) -> Check:
    return Check(name, OK, detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, FAIL, detail, fix)


def skipped(name: str, why: str) -> Check:
    return Check(name, SKIPPED, f"not checked: {why}")


def as_json(checks: list[Check]) -> dict:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


# ---------------------------------------------------------------- the whole run

async def run(config_path: str | None = None, environ: dict | None = None, *, live: bool = False) -> list[Check]:
    """Every check; `live` adds one real call per provider an enabled slot uses (doctor_live)."""
    try:
        cfg = load_config(config_path, environ=environ)
    except ConfigError as exc:
        return [fail("config", str(exc), "correct the file or variable named above (every key: config.example.yaml)")]
    return [check_config(cfg), *check_data_dir(cfg), *await _database_checks(cfg, live=live),
            await check_port(cfg), check_tls(cfg)]


def check_config(cfg) -> Check:
    where = str(cfg.source) if cfg.source else "built-in defaults (no config file)"
    env = sorted(cfg.from_env.values())
    return ok("config", where + (f" + environment: {', '.join(env)}" if env else ""))


async def _database_checks(cfg, *, live: bool = False) -> list[Check]:
    names = ("schema", "ingest_password", "providers", "clock", "slots")
    try:
        dsn = await asyncio.wait_for(asyncio.to_thread(dbmod.resolve_dsn, cfg), timeout=60)
        database = await asyncio.wait_for(dbmod.connect(dsn, pool_size=2, apply_schema=False), DB_TIMEOUT)
    except Exception as exc:  # any reason the database cannot be had is this check's answer
        where = "database.dsn" if cfg.dsn else f"the embedded PostgreSQL in {cfg.data_dir / 'pg'}"
        fix = ("check database.dsn (or PHOTOSLOT_DSN): the server runs, the address, role and password are right"
               if cfg.dsn else f"see {cfg.data_dir / 'pg' / 'log'}; the data dir must be writable")
        return [fail("database", f"cannot connect to {where}: {_first_line(exc)}", fix),
                *(skipped(n, "no database") for n in names)]
    try:
        out = [ok("database", _describe_dsn(dsn, cfg))]
        schema_check = await check_schema(dsn)
        out.append(schema_check)
        if schema_check.status != OK:
            return out + [skipped(n, "the schema is not at this photoslot's version") for n in names[1:]]
        out.append(await check_ingest_password(database))
        providers = await check_providers(cfg, database)
        out += providers
        out.append(await check_clock(database))
        out += await check_slots(cfg, database)
        out += await check_gemini_models(cfg, database)
        out += await check_public_address(cfg, database)
        if live:
            out += await live_checks(cfg, database, {c.name: c for c in providers})
        return out
    finally:
        await database.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _describe_dsn(dsn: str, cfg) -> str:
    if not cfg.dsn:
        return f"embedded PostgreSQL in {cfg.data_dir / 'pg'}"
    params = psycopg2.extensions.parse_dsn(dsn)
    return f"{params.get('host', 'local socket')}:{params.get('port', 5432)}/{params.get('dbname', '?')}"


# ---------------------------------------------------------------- files and disk

def check_data_dir(cfg) -> list[Check]:
    """The data dir and media root take a file, and their disks have room (alerts threshold)."""
    dirs = {"data dir": cfg.data_dir}
    if cfg.media_root != cfg.data_dir / "media":
        dirs["media root"] = cfg.media_root
    problems, notes = [], []
    for label, path in dirs.items():
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".photoslot-doctor-{uuid.uuid4().hex}"
            probe.write_bytes(b"probe")
            probe.unlink()
            notes.append(f"{label} {path} writable")
        except OSError as exc:
            problems.append(f"{label} {path}: {exc.strerror or exc}")
    checks = [fail("data_dir", "; ".join(problems),
                   "give the account that runs photoslot write access there, or set data_dir / media_root "
                   "(PHOTOSLOT_DATA_DIR) to a folder it owns")
              if problems else ok("data_dir", "; ".join(notes))]
    checks.append(check_disk(cfg, dirs))
    return checks


def check_disk(cfg, dirs: dict[str, Path]) -> Check:
    limit = float(cfg.get("alerts.media_disk_used_percent"))
    full, notes = [], []
    for label, path in dirs.items():
        probe = path
        while not probe.exists() and probe != probe.parent:  # a folder not created yet: its disk
            probe = probe.parent
        total, used, free = disk_usage(probe)
        percent = 100.0 * used / total if total else 100.0
        text = f"{label}: {percent:.0f}% used, {free / 1e9:.1f} GB free"
        (full if percent >= limit else notes).append(text)
    if full:
        return fail("disk", "; ".join(full) + f" (alert at {limit:.0f}%)",
                    "free space (`photoslot sweep` removes expired results; `photoslot media purge` the cache) "
                    "or move data_dir / media_root to a larger disk")
    return ok("disk", "; ".join(notes) + f" (alert at {limit:.0f}%)")


# ---------------------------------------------------------------- schema

async def check_schema(dsn: str) -> Check:
    try:
        st = await asyncio.to_thread(schema.state_dsn, dsn)
    except Exception as exc:
        return fail("schema", f"cannot read the schema: {_first_line(exc)}", "check the database role's rights")
    if st["unknown"]:
        return fail("schema", schema.too_new_message(st["unknown"], st["latest"]),
                    "run the newer photoslot that migrated this database, or restore a backup")
    if st["current"] == 0:
        return fail("schema", "the database is empty", "run `photoslot migrate` (serve and work also do it at start)")
    if not st["up_to_date"]:
        what = "made before migrations existed" if st["pre_migration_schema"] else \
            f"at version {st['current']}, {len(st['pending'])} migration(s) pending: {', '.join(st['pending'])}"
        return fail("schema", f"the schema is {what}",
                    "run `photoslot migrate` (serve and work also do it at start); back up first: `photoslot backup FILE`")
    detail = f"version {st['current']} (the latest this photoslot knows)"
    if st["changed"]:
        detail += f"; edited after being applied: {', '.join(st['changed'])}"
    return ok("schema", detail)


# ---------------------------------------------------------------- network

def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def port_is_free(host: str, port: int) -> tuple[bool, str | None]:
    """(free, why not) — bound the way the server binds it, then released at once. `why` is None
    when the port is simply taken (someone listens there), else the reason binding is impossible."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if os.name != "nt":  # asyncio binds with SO_REUSEADDR on POSIX (TIME_WAIT must not count as taken)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return False, None if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return True, None


async def photoslot_answers(cfg, host: str, port: int) -> str | None:
    """The URL where a photoslot answers on that port, else None. Its public OpenAPI document names
    the service, which a foreign program on the port will not."""
    https = bool(cfg.get("server.tls_cert_file"))
    h = _connect_host(host)
    url = f"{'https' if https else 'http'}://{'[' + h + ']' if ':' in h else h}:{port}/api/openapi.json"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            # our own certificate need not name 127.0.0.1: this asks who listens, it trusts nothing
            async with http.get(url, ssl=False if https else None) as resp:
                body = await resp.json(content_type=None)
    except Exception:  # anything but a photoslot answer: not ours
        return None
    title = body.get("info", {}).get("title") if isinstance(body, dict) else None
    return url if title == "photoslot API" else None


async def check_port(cfg) -> Check:
    host, port = cfg.get("server.host"), int(cfg.get("server.port"))
    free, why = port_is_free(host, port)
    if free:
        return ok("port", f"{host}:{port} is free")
    if why is not None:
        return fail("port", f"cannot listen on {host}:{port}: {why}",
                    "set server.host to an address of this machine (0.0.0.0 = all) and server.port to a "
                    "free port above 1024 (PHOTOSLOT_SERVER_HOST / PHOTOSLOT_SERVER_PORT)")
    url = await photoslot_answers(cfg, host, port)
    if url is not None:
        return ok("port", f"{host}:{port} is held by a running photoslot ({url} answers)")
    return fail("port", f"{host}:{port} is taken by another program",
                "stop that program, or choose another server.port (PHOTOSLOT_SERVER_PORT, serve --port)")


# ---------------------------------------------------------------- settings and providers

async def check_ingest_password(db) -> Check:
    rows = {r["key"]: r for r in await db.fetchall("settings_all")}
    row = rows.get(live_settings.PASSWORD_KEY)
    if row is None:
        return fail("ingest_password", "no ingest password is set: every booth POST would be refused",
                    "photoslot settings set --ingest-password (or start `photoslot serve` once: it makes one)")
    return ok("ingest_password", f"set by {row['updated_by']} at {row['updated_at']:%Y-%m-%d %H:%M}")


async def check_providers(cfg, db) -> list[Check]:
    """One row per provider: its key, tried, when an enabled slot uses it."""
    in_use: dict[str, list[str]] = {}
    for slot in await db.fetchall("slot_list"):
        if slot["enabled"] and slot["provider_id"]:
            in_use.setdefault(slot["provider_id"], []).append(slot["id"])
    out = []
    for name in live_settings.PROVIDER_NAMES:
        check_name = f"provider {name}"
        if name not in in_use:
            out.append(ok(check_name, "no enabled slot uses it; key not checked"))
            continue
        key = await live_settings.provider_api_key(db, cfg, name)
        slots_text = ", ".join(in_use[name])
        if not key:
            out.append(fail(check_name, f"no API key, and enabled slots use it ({slots_text})",
                            f"set providers.{name}.api_key ({name.upper()}_API_KEY) or "
                            f"`photoslot settings provider-key {name}`"))
            continue
        problem = await KEY_CHECKS[name](cfg, key)
        if problem is None:
            out.append(ok(check_name, f"key accepted by {_base_url(cfg, name)} (used by {slots_text})"))
        else:
            out.append(fail(check_name, problem, f"check the {name} key and providers.{name}.base_url; "
                            f"set a working key with `photoslot settings provider-key {name}`"))
    return out


def _base_url(cfg, name: str) -> str:
    configured = cfg.get(f"providers.{name}.base_url")
    if configured:
        return configured.rstrip("/")
    return "https://generativelanguage.googleapis.com" if name == "gemini" else DEFAULT_BASE_URL


async def gemini_key_problem(cfg, key: str) -> str | None:
    """None when Gemini accepts the key (GET the configured model through the SDK the worker uses)."""
    model = cfg.get("providers.gemini.model")
    options = types.HttpOptions(base_url=cfg.get("providers.gemini.base_url") or None,
                                retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key=key, http_options=options)
    try:
        await asyncio.wait_for(client.aio.models.get(model=model), KEY_CHECK_TIMEOUT)
    except genai_errors.APIError as exc:
        code = getattr(exc, "code", None)
        message = (getattr(exc, "message", None) or str(exc))[:200]
        if code == 404:
            return f"Gemini knows no model {model!r} (providers.gemini.model): {message}"
        return f"Gemini refused the key: HTTP {code} {message}"
    except asyncio.TimeoutError:
        return f"Gemini did not answer within {KEY_CHECK_TIMEOUT:.0f} s ({_base_url(cfg, 'gemini')})"
    except Exception as exc:  # connection refused, DNS, TLS: the key could not be tried
        return f"cannot reach Gemini at {_base_url(cfg, 'gemini')}: {_first_line(exc)}"
    finally:
        try:
            await client.aio.aclose()
        except Exception:  # closing is best effort
            pass
    return None


async def turbotext_key_problem(cfg, key: str) -> str | None:
    """None when Turbotext accepts the key: a free status poll for a queue that does not exist."""

    url = f"{_base_url(cfg, 'turbotext')}/api_ai/{METHODS['image_edit']}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=KEY_CHECK_TIMEOUT)) as http:
            async with http.post(url, data={"do": "get_result", "queueid": "0"},
                                 headers={"Authorization": f"Bearer {key}"}) as resp:
                status = resp.status
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
    except asyncio.TimeoutError:
        return f"Turbotext did not answer within {KEY_CHECK_TIMEOUT:.0f} s ({url})"
    except (aiohttp.ClientError, OSError) as exc:
        return f"cannot reach Turbotext at {url}: {_first_line(exc)}"
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    if status in (401, 403) or any(w in error.lower() for w in ("key", "token", "auth")):
        return f"Turbotext refused the key: HTTP {status} {error}".rstrip()
    if status != 200 or not isinstance(body, dict):
        return f"Turbotext answered HTTP {status} {'with JSON' if isinstance(body, dict) else 'without JSON'} ({url})"
    return None


KEY_CHECKS = {"gemini": gemini_key_problem, "turbotext": turbotext_key_problem}


async def _in_use(db) -> dict[str, list[dict]]:
    """The enabled slots by provider."""
    out: dict[str, list[dict]] = {}
    for slot in await db.fetchall("slot_list"):
        if slot["enabled"] and slot["provider_id"]:
            out.setdefault(slot["provider_id"], []).append(slot)
    return out


def gemini_models(cfg, slots: list[dict]) -> dict[str, list[str]]:
    """Each Gemini model the enabled slots use (a slot without `model` uses providers.gemini.model)."""
    models: dict[str, list[str]] = {}
    for slot in slots:
        params = (slot["settings_json"] or {}).get("params") or {}
        model = params.get("model") or cfg.get("providers.gemini.model")
        models.setdefault(str(model), []).append(slot["id"])
    return models


async def check_gemini_models(cfg, db) -> list[Check]:
    """A model name Google does not list for images fails every shot with a 404: caught here, offline."""
    slots = (await _in_use(db)).get("gemini")
    if not slots:
        return []
    known = catalogue.GEMINI_IMAGE_MODELS
    unknown = {m: ids for m, ids in gemini_models(cfg, slots).items() if m not in known}
    if unknown:
        what = "; ".join(f"{m!r} (used by {', '.join(ids)})" for m, ids in unknown.items())
        return [fail("gemini models", f"no Gemini image model is called {what}",
                     f"set providers.gemini.model (or the slot's model parameter) to one of {', '.join(known)}")]
    return [ok("gemini models", ", ".join(gemini_models(cfg, slots)))]


_KIND_WORDS = {public_address.LOOPBACK: "loopback", public_address.PRIVATE: "a private address"}


def _host_kind(url: str | None) -> str | None:
    """"loopback" or "a private address" when the URL's host is one, else None (the internet may
    reach it; a DNS name is judged by doctor --live, which has Turbotext fetch a link)."""
    return _KIND_WORDS.get(public_address.kind(url or ""))


async def check_public_address(cfg, db) -> list[Check]:
    """Turbotext fetches the photo from server.public_base_url: from the internet, a loopback or
    private address is unreachable, and every Turbotext shot would fail after being billed."""
    slots = (await _in_use(db)).get("turbotext")
    if not slots:
        return []
    if not cfg.served_base_url:  # where the last `serve` listens: the fallback when nobody set an address
        cfg.served_base_url = await live_settings.served_base_url(db)
    address = await public_address.load(db, cfg)  # the config key, else the Settings page's, else serve's
    base = address.url
    kind = _host_kind(base)
    turbotext_kind = _host_kind(_base_url(cfg, "turbotext"))
    ids = ", ".join(s["id"] for s in slots)
    if kind is None or turbotext_kind is not None:  # public, or a rehearsal whose Turbotext is local too
        return [ok("public address", f"{base} (Turbotext fetches the photos of {ids} from it)")]
    where = {"config": "server.public_base_url", "environment": "server.public_base_url",
             "setting": "the public address set on the Settings page"}.get(
        address.source, "no public address is set: photoslot falls back to")
    return [fail("public address", f"{where} {base} is {kind}: Turbotext's servers cannot fetch the photos of "
                 f"{ids} from it, so every shot would fail",
                 "set the Public address (web admin: Settings; or server.public_base_url) to an address reachable "
                 "from the internet — a port forward or a tunnel to this PC (HTTPS recommended); then check it "
                 "with `photoslot doctor --live`")]


async def live_checks(cfg, db, provider_checks: dict[str, Check]) -> list[Check]:
    """One real call per provider an enabled slot uses and whose key check passed."""
    in_use = await _in_use(db)
    out: list[Check] = []
    for name in live_settings.PROVIDER_NAMES:
        if name not in in_use:
            continue
        check_name = f"live {name}"
        offline = provider_checks.get(f"provider {name}")
        if offline is None or offline.status != OK:
            out.append(skipped(check_name, f"the {name} key check failed"))
            continue
        key = await live_settings.provider_api_key(db, cfg, name)
        if name == "gemini":
            for model in gemini_models(cfg, in_use[name]):
                out.append(await doctor_live.gemini(cfg, key, model, ok, fail))
        else:
            out.append(await doctor_live.turbotext(cfg, db, key, ok, fail))
    return out


# ---------------------------------------------------------------- TLS, clock

def check_tls(cfg) -> Check:
    if not tls.enabled(cfg):
        return ok("tls", "not configured: plain HTTP (set server.tls_cert_file and tls_key_file for HTTPS)")
    try:
        tls.from_config(cfg)  # loads the pair as serve will: both files, matching each other
    except tls.TLSConfigError as exc:
        return fail("tls", str(exc), "point server.tls_cert_file / tls_key_file at a readable PEM "
                    "certificate chain and its unencrypted key")
    cert_path = Path(cfg.get("server.tls_cert_file")).expanduser()
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    now = dt.datetime.now(dt.timezone.utc)
    not_after, not_before = cert.not_valid_after_utc, cert.not_valid_before_utc
    days = (not_after - now).total_seconds() / 86400
    subject = cert.subject.rfc4514_string() or "(no subject)"
    if now < not_before:
        return fail("tls", f"{subject} is not valid before {not_before:%Y-%m-%d %H:%M} UTC",
                    "check the system clock, or install a certificate that is valid now")
    if days < 0:
        return fail("tls", f"{subject} expired on {not_after:%Y-%m-%d} ({-days:.0f} days ago)",
                    "renew the certificate (certbot, acme.sh, win-acme); serve picks the new files up live")
    if days < TLS_WARN_DAYS:
        return fail("tls", f"{subject} expires on {not_after:%Y-%m-%d}, in {days:.1f} days",
                    "renew it before the event; serve picks the new files up live")
    return ok("tls", f"{subject}, valid until {not_after:%Y-%m-%d} ({days:.0f} days left)")


async def check_clock(db) -> Check:
    """The system clock against the database's: deadlines and TTLs compare times across processes."""
    before = dt.datetime.now(dt.timezone.utc)
    row = await db.fetchone("clock_database_now")
    after = dt.datetime.now(dt.timezone.utc)
    return clock_verdict(before + (after - before) / 2, row["now"])


def clock_verdict(local: dt.datetime, database: dt.datetime) -> Check:
    skew = (local - database).total_seconds()
    if local < CLOCK_FLOOR:
        return fail("clock", f"the system clock says {local:%Y-%m-%d %H:%M} UTC",
                    "set the date and time (and turn on automatic time / NTP)")
    if abs(skew) > CLOCK_TOLERANCE_SECONDS:
        return fail("clock", f"the system clock is {skew:+.1f} s off the database's",
                    "turn on NTP (automatic time) on this machine and the database server")
    return ok("clock", f"{local:%Y-%m-%d %H:%M:%S} UTC, {skew * 1000:+.0f} ms from the database's clock")


# ---------------------------------------------------------------- slots

async def check_slots(cfg, db) -> list[Check]:
    """Each enabled slot against the catalogue, and its templates' files on disk."""
    enabled = [s for s in await db.fetchall("slot_list") if s["enabled"]]
    if not enabled:
        return [fail("slots", "no slot is enabled: every booth POST would get 404",
                     "photoslot slot set slot-001 --provider gemini --operation image_edit --prompt \"…\"")]
    out = []
    for slot in enabled:
        name = f"slot {slot['id']}"
        what = f"{slot['provider_id']}/{slot['operation_id']}"
        errors = catalogue.validate(slot["provider_id"], slot["operation_id"], slot["settings_json"])
        if errors:
            out.append(fail(name, f"{what}: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                            f"photoslot slot set {slot['id']} … (see `photoslot providers`), or --disable"))
            continue
        try:
            bound = await templates.load_for_job(db, slot["settings_json"])
        except NotFound as exc:
            out.append(fail(name, f"{what}: {exc.message}", f"photoslot slot set {slot['id']} --template ROLE=FILE"))
            continue
        missing = [f"{role} ({row['file_path']})" for role, row in bound.items() if not Path(row["file_path"]).is_file()]
        if missing:
            out.append(fail(name, f"{what}: template file missing: {', '.join(missing)}",
                            f"photoslot slot set {slot['id']} --template ROLE=FILE (or restore the media folder)"))
            continue
        roles = f", templates: {', '.join(sorted(bound))}" if bound else ""
        out.append(ok(name, f"{what}{roles}"))
    return out
