-- Hourly figures of every ingest request, refused ones included (photoslot/rollups.py). Statistics
-- read these, not the job rows, so the sweeper pruning jobs after 30 days loses nothing; the rows
-- themselves are kept `stats.rollup_retention_days` (400).
--
-- A job is counted once, by the statement that finalizes it (queries/jobs.sql, a CTE); a request
-- refused before a job existed (401, 404, 413, 415, 422, 429, 503) is counted in memory and
-- written in batches by the process that answered it.
CREATE TABLE IF NOT EXISTS ingest_rollups (
    hour              timestamptz NOT NULL,     -- the request's arrival, truncated to the UTC hour
    slot_id           text NOT NULL,            -- as in the URL; an id that is no slot is 'invalid'
    provider_id       text NOT NULL DEFAULT '', -- the slot's provider ('' when the slot is not configured)
    outcome           text NOT NULL,            -- succeeded | failed | timeout | cancelled (the job's end) | refused (no job)
    reason            text NOT NULL DEFAULT '', -- failure_reason answered ('' on success)
    status            integer NOT NULL,         -- the HTTP status answered
    reset_at          timestamptz NOT NULL DEFAULT '-infinity',  -- the slot's last stats reset when counted
    requests          bigint NOT NULL DEFAULT 0,
    provider_requests bigint NOT NULL DEFAULT 0,
    provider_tokens   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, slot_id, provider_id, outcome, reason, status, reset_at)
);

CREATE INDEX IF NOT EXISTS ingest_rollups_slot_hour_idx ON ingest_rollups (slot_id, hour);

-- The ingest times of the jobs (arrival → end, in whole ms) as counts per hour and value, so p50/p95
-- stay exact without keeping job rows. Distinct values rarely repeat, so finalizations almost never
-- wait on each other's row here (a counter per hour would make every finalization queue on it).
CREATE TABLE IF NOT EXISTS ingest_times (
    hour        timestamptz NOT NULL,
    slot_id     text NOT NULL,
    provider_id text NOT NULL,
    outcome     text NOT NULL,
    reset_at    timestamptz NOT NULL DEFAULT '-infinity',
    ms          integer NOT NULL,
    n           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, slot_id, provider_id, outcome, reset_at, ms)
);

-- A job is counted in the same statement that finalizes it, whichever path that is (worker,
-- ingest, sweeper, admin cancel, a provider going down): a trigger, like the NOTIFY one, so no
-- path can forget it and no extra round trip is made.
CREATE OR REPLACE FUNCTION photoslot_count_finalized_job() RETURNS trigger AS $$
DECLARE
    h timestamptz := date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    reset timestamptz := coalesce((SELECT last_reset_at FROM slots WHERE id = NEW.slot_id), '-infinity');
BEGIN
    INSERT INTO ingest_rollups AS r (hour, slot_id, provider_id, outcome, reason, status, reset_at, requests,
                                     provider_requests, provider_tokens)
    VALUES (h, NEW.slot_id, NEW.provider_id, NEW.status, coalesce(NEW.failure_reason, ''),
            coalesce(NEW.answer_status, 0), reset, 1, NEW.provider_requests, coalesce(NEW.provider_tokens, 0))
    ON CONFLICT (hour, slot_id, provider_id, outcome, reason, status, reset_at) DO UPDATE
    SET requests = r.requests + 1, provider_requests = r.provider_requests + EXCLUDED.provider_requests,
        provider_tokens = r.provider_tokens + EXCLUDED.provider_tokens;
    INSERT INTO ingest_times AS t (hour, slot_id, provider_id, outcome, reset_at, ms, n)
    VALUES (h, NEW.slot_id, NEW.provider_id, NEW.status, reset,
            greatest(0, round(extract(epoch FROM NEW.finalized_at - NEW.created_at) * 1000))::int, 1)
    ON CONFLICT (hour, slot_id, provider_id, outcome, reset_at, ms) DO UPDATE SET n = t.n + 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS jobs_count_finalized ON jobs;
CREATE TRIGGER jobs_count_finalized AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IN ('pending', 'processing') AND NEW.status NOT IN ('pending', 'processing'))
    EXECUTE FUNCTION photoslot_count_finalized_job();
