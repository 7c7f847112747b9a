"""The compressed event day (bench/event_day.py) in two minutes: 15 booths, a realistic provider and
every fault once — a provider outage, a PostgreSQL restart, a kill -9 of `work`, a `serve` restart,
the media disk filled past its alert and freed, T_sync_response changed, results expiring under the
sweeper, an admin at the web pages, a password guesser and a trickling client — then SIGTERM to
every process. The figures it measures from what happened are asserted (docs/RELIABILITY.md,
"The event day")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

ROOT = Path(__file__).resolve().parents[2]
SPEED = 8  # twice the shots of the default 4 in two minutes (docs/RELIABILITY.md, "The event day")
GRACE = 10 / SPEED  # server.shutdown_grace_seconds as the day sets it (its timers run SPEED× faster)

FAULTS = ("kill -9 of work", "work started again", "PostgreSQL stopped (fast)", "PostgreSQL started again",
          "provider outage begins: every call answered 503", "provider outage ends",
          "media disk filled past the alert", "media disk freed", "T_sync_response changed",
          "serve restart: SIGTERM", "serve listening again", "a burst of 429 begins", "a group arrives",
          "SIGTERM to serve, work and emulate")


def test_a_two_minute_event_day_with_every_fault_keeps_the_promises(tmp_path):
    figures_file, details_file = tmp_path / "day.json", tmp_path / "details.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PHOTOSLOT_DSN", "PHOTOSLOT_CONFIG")}
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "event_day.py"), "--minutes", "2", "--speed", str(SPEED),
                          "--seed", "23", "--json", str(figures_file), "--details", str(details_file)],
                         capture_output=True, text=True, timeout=420, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(run.stdout[-2500:])
    figures = json.loads(figures_file.read_text())
    details = json.loads(details_file.read_text())
    assert list(figures) == ["requests", "answered_200_share_outside_outage", "answered_504_share_outside_outage",
                             "availability", "lost_jobs", "files_after_ttl", "rss_growth_mb", "fd_growth",
                             "db_connections_leaked", "stop_seconds", "errors_unexplained"]

    # every fault happened, once at least, and the admin's actions went through the web pages
    happened = {e["what"] for e in details["timeline"]}
    assert set(FAULTS) <= happened, set(FAULTS) - happened
    assert "filled_at" in details["disk"] and any(a["alert"] == "media_disk" and a["state"] == "firing"
                                                  for a in details["alerts"]), details["disk"]
    assert any(a["alert"] == "media_disk" and a["state"] == "resolved" for a in details["alerts"])
    assert details["jobs"]["results_removed_by_the_sweeper"] > 0  # results expired while booths shot
    windows = {w for w, _ in details["jobs"]["job_windows_s"]}
    assert windows == {48 / SPEED, 60 / SPEED}, windows  # jobs before and after the change kept their window
    actions = {a["action"]: a for a in details["admin"]}
    assert actions["sign_in"]["signed_in"] and actions["save_slot"]["saved"], details["admin"]
    assert actions["cancel_a_job"].get("cancelled"), details["admin"]
    assert any(a["action"] == "test_shot" and a.get("shot_status") for a in details["admin"])
    assert actions["statistics"]["status"] == 200
    assert details["guesser_answers"] and details["trickles"]

    # the figures
    assert figures["lost_jobs"] == 0, (details["lost_answers"], details["open_jobs_after"])
    assert figures["files_after_ttl"] == 0, details["ttl_violations"]
    assert figures["stop_seconds"] <= GRACE + 10, details["stops"]
    assert details["postgres_left_running"] == [] and details["postgresql_gone_after_sigterm_s"] is not None
    assert figures["answered_200_share_outside_outage"] >= 0.95, details["non_200_outside_outage_shots"]
    assert figures["availability"] >= 0.99
    assert figures["db_connections_leaked"] == 0
    assert figures["errors_unexplained"] == 0, details["errors_unexplained"]
