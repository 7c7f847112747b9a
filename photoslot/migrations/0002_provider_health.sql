-- Provider health, shared by every process (photoslot/health_rule.py has the rule,
-- photoslot/provider_health.py applies it). One row per provider that ever failed a call; a
-- provider without a row is up. Changes are made under the row's lock and announced with
-- NOTIFY photoslot_provider_health, so every process's in-process copy follows at once.
CREATE TABLE IF NOT EXISTS provider_health (
    provider_id      text PRIMARY KEY,
    state            text NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'down')),
    failures         integer NOT NULL DEFAULT 0,   -- consecutive failed calls
    last_problem     text,
    last_failure_at  timestamptz,
    down_since       timestamptz,
    retry_at         timestamptz,                  -- end of the cool-down
    probe_job        text,                         -- the job whose call is the probe
    probe_until      timestamptz,
    changed_at       timestamptz,                  -- last up/down transition
    updated_at       timestamptz NOT NULL
);
