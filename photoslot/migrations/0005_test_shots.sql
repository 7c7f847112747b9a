-- Test shots (an admin's rehearsal from the Slot page or POST /api/slots/{id}/test_shot) are
-- marked on their job and in the hourly rollups, so every run count, share and alert can leave
-- them out and count them apart: a rehearsal is not a guest's shot, yet it is real provider spend.
-- One rule for every reader: `is_test` is set once, when the request arrives (photoslot/server/ingest.py),
-- and copied by the counting trigger; nothing else decides what a test shot is.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS is_test boolean NOT NULL DEFAULT false;

ALTER TABLE ingest_rollups ADD COLUMN IF NOT EXISTS is_test boolean NOT NULL DEFAULT false;
ALTER TABLE ingest_rollups DROP CONSTRAINT IF EXISTS ingest_rollups_pkey;
ALTER TABLE ingest_rollups ADD PRIMARY KEY (hour, slot_id, provider_id, outcome, reason, status, reset_at, is_test);

ALTER TABLE ingest_times ADD COLUMN IF NOT EXISTS is_test boolean NOT NULL DEFAULT false;
ALTER TABLE ingest_times DROP CONSTRAINT IF EXISTS ingest_times_pkey;
ALTER TABLE ingest_times ADD PRIMARY KEY (hour, slot_id, provider_id, outcome, reset_at, ms, is_test);

-- As in 0003, with the job's is_test carried into both tables.
CREATE OR REPLACE FUNCTION photoslot_count_finalized_job() RETURNS trigger AS $$
DECLARE
    h timestamptz := date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    reset timestamptz := coalesce((SELECT last_reset_at FROM slots WHERE id = NEW.slot_id), '-infinity');
BEGIN
    INSERT INTO ingest_rollups AS r (hour, slot_id, provider_id, outcome, reason, status, reset_at, is_test,
                                     requests, provider_requests, provider_tokens)
    VALUES (h, NEW.slot_id, NEW.provider_id, NEW.status, coalesce(NEW.failure_reason, ''),
            coalesce(NEW.answer_status, 0), reset, NEW.is_test, 1, NEW.provider_requests,
            coalesce(NEW.provider_tokens, 0))
    ON CONFLICT (hour, slot_id, provider_id, outcome, reason, status, reset_at, is_test) DO UPDATE
    SET requests = r.requests + 1, provider_requests = r.provider_requests + EXCLUDED.provider_requests,
        provider_tokens = r.provider_tokens + EXCLUDED.provider_tokens;
    INSERT INTO ingest_times AS t (hour, slot_id, provider_id, outcome, reset_at, is_test, ms, n)
    VALUES (h, NEW.slot_id, NEW.provider_id, NEW.status, reset, NEW.is_test,
            greatest(0, round(extract(epoch FROM NEW.finalized_at - NEW.created_at) * 1000))::int, 1)
    ON CONFLICT (hour, slot_id, provider_id, outcome, reset_at, ms, is_test) DO UPDATE SET n = t.n + 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
