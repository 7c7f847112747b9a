"""The one reset of photoslot's database state, shared by the test suite and the benchmark.

Every table that holds state is named here once; a table added by a migration belongs in
STATE_TABLES too, or its rows would leak from one test (or one bench run) into the next.
Slots are not deleted — the schema makes all 15 — but put back to unconfigured.
"""
from __future__ import annotations

import psycopg2

from photoslot import schema

STATE_TABLES = (
    "jobs", "audit_log", "settings",                              # the queue, the audit, live settings
    "login_attempts", "purge_requests",                           # administration
    "template_media", "media_objects", "provider_request_counts",  # providers: templates, links, quotas
    "alert_state", "provider_health", "ingest_rollups", "ingest_times",  # operations, statistics
    "recent_refusals", "ended_sessions",                          # the web admin: refusals seen, sign-outs
)
UNCONFIGURE_SLOTS = ("UPDATE slots SET name = '', provider_id = NULL, operation_id = NULL, "
                     "settings_json = '{}'::jsonb, enabled = false, version = 1, last_reset_at = NULL")


def reset_database(dsn: str) -> None:
    """A clean slate. Migrates the schema first (a fresh database is empty)."""
    conn = psycopg2.connect(dsn)
    try:
        schema.migrate(conn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(STATE_TABLES)} RESTART IDENTITY")
            cur.execute(UNCONFIGURE_SLOTS)
    finally:
        conn.close()
