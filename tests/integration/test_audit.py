"""The audit log: every admin write over HTTP and from the CLI, with actor, time, action, target and
changed fields — never a secret."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.acceptance.procs import cli
from tests.conftest import FIXTURES
from tests.integration.adminapi import logged_in
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")

SECRETS = ("booth-pass-rotated", "gemini-key-abcdef123")


async def test_every_http_write_is_audited_without_secrets(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        api = await logged_in(s, "igor")
        await api.call("PUT", "/api/slots/slot-006", json={"provider_id": "gemini", "operation_id": "style_transfer",
                                                           "settings_json": {"prompt": "like this"}, "enabled": False})
        form = aiohttp.FormData()
        form.add_field("slot_id", "slot-006")
        form.add_field("setting_key", "style")
        form.add_field("file", (FIXTURES / "template_style.jpg").read_bytes(), filename="s.jpg")
        _, _, template = await api.call("POST", "/api/template-media/register", data=form)
        await api.call("POST", "/api/slots/slot-006/reset_stats", json={})
        await api.call("PUT", "/api/settings", json={"dslr_password": {"value": SECRETS[0]},
                                                     "provider_keys": {"gemini": {"value": SECRETS[1]}}})
        await api.call("POST", "/api/media/cache/purge", json={"scope": "full"})
        await api.call("DELETE", f"/api/template-media/{template['id']}",
                       params={"slot_id": "slot-006", "setting_key": "style"})
        _, _, audit = await api.call("GET", "/api/audit")
        entries = list(reversed(audit["data"]))
        actions = [(e["action"], e["target"]) for e in entries]
        for expected in (("slot.update", "slot-006"), ("template.add", template["id"]),
                         ("slot.reset_stats", "slot-006"), ("settings.update", "settings"), ("media.purge", "full")):
            assert expected in actions, (expected, actions)
        assert any(a.startswith("template.") and a != "template.add" for a, _ in actions[actions.index(
            ("media.purge", "full")):]), actions  # the unbind/removal after the purge
        assert all(e["actor"] == "admin:igor" and e["source"] == "http" for e in entries)
        assert entries[0]["action"] == "users.login" and entries[0]["target"] == "igor"  # the sign-in first
        first = next(e for e in entries if e["action"] == "slot.update")
        assert first["details"]["operation_id"] == "style_transfer" and first["at"].endswith("Z")
        text = json.dumps(audit)
        assert all(secret not in text for secret in SECRETS)


async def test_cli_writes_show_up_next_to_http_ones_with_the_os_user(make_cfg, pg_dsn, tmp_path):
    cfg = make_cfg()
    async with Studio(cfg, pg_dsn, workers=0) as s:
        api = await logged_in(s)
        await api.call("PUT", "/api/settings", json={"ingest": {"sync_response_timeout_sec": 4}})
        r = await asyncio.to_thread(cli, cfg.source, pg_dsn, "settings", "set", "--ingest-password", SECRETS[0])
        assert r.returncode == 0, r.stderr
        r = await asyncio.to_thread(cli, cfg.source, pg_dsn, "users", "reset", "igor")
        assert r.returncode == 0, r.stderr
        _, _, audit = await api.call("GET", "/api/audit")
        by_source = {(e["source"], e["action"]): e for e in audit["data"]}
        http = by_source[("http", "settings.update")]
        cli_pw = by_source[("cli", "settings.update")]
        reset = by_source[("cli", "users.reset")]
        assert http["actor"] == "admin:serg" and http["details"] == {"sync_response_seconds": 4,
                                                                     "was": {"sync_response_seconds": 3.0}}
        assert cli_pw["actor"].startswith("os:") and cli_pw["details"] == {"ingest_password": "<changed>"}
        assert reset["target"] == "igor" and reset["details"] == {"password": "<changed>", "sessions": "ended"}
        new_password = r.stdout.strip().rsplit(" ", 1)[-1]
        assert SECRETS[0] not in json.dumps(audit) and new_password not in json.dumps(audit)
