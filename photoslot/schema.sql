-- photoslot: the whole schema. Idempotent: applied at every start under an advisory lock.
-- A later change adds statements below (ADD COLUMN IF NOT EXISTS …) and bumps the version at the end.

CREATE TABLE IF NOT EXISTS schema_meta (
    id         integer PRIMARY KEY CHECK (id = 1),
    version    integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Live settings (T_sync_response, retention, ingest password hash …), one row per key.
CREATE TABLE IF NOT EXISTS settings (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL
);

CREATE TABLE IF NOT EXISTS slots (
    id            text PRIMARY KEY CHECK (id ~ '^slot-(00[1-9]|01[0-5])$'),
    name          text NOT NULL DEFAULT '',
    provider_id   text,
    operation_id  text,
    settings_json jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled       boolean NOT NULL DEFAULT false,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_reset_at timestamptz
);

INSERT INTO slots (id)
SELECT format('slot-%s', lpad(n::text, 3, '0')) FROM generate_series(1, 15) AS n
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS jobs (
    id                     uuid PRIMARY KEY,
    slot_id                text NOT NULL REFERENCES slots (id),
    status                 text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'processing', 'succeeded', 'timeout', 'failed', 'cancelled')),
    -- Derived, so it can never disagree with status.
    is_finalized           boolean GENERATED ALWAYS AS (status IN ('succeeded', 'timeout', 'failed', 'cancelled')) STORED,
    failure_reason         text,
    failure_detail         text,
    answer_status          integer,          -- HTTP status the ingest answers for this outcome
    -- Snapshot of the slot at creation: later slot edits never touch a queued job.
    provider_id            text NOT NULL,
    operation_id           text NOT NULL,
    slot_settings          jsonb NOT NULL,
    input_metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    upload_path            text,
    upload_mime            text,
    upload_size_bytes      bigint,
    provider_job_reference text,
    provider_response_id   text,
    provider_tokens        integer,
    provider_requests      integer NOT NULL DEFAULT 0,
    poll_count             integer NOT NULL DEFAULT 0,
    attempts               integer NOT NULL DEFAULT 0,
    worker_id              text,
    lease_expires_at       timestamptz,
    started_at             timestamptz,
    result_file_path       text,
    result_mime_type       text,
    result_size_bytes      bigint,
    result_checksum        text,
    result_expires_at      timestamptz,
    expires_at             timestamptz NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    finalized_at           timestamptz,
    CHECK (is_finalized = (finalized_at IS NOT NULL)),
    CHECK ((status = 'succeeded') = (failure_reason IS NULL) OR status IN ('pending', 'processing'))
);

-- The claim query's path: open jobs per provider, oldest first.
CREATE INDEX IF NOT EXISTS jobs_open_idx ON jobs (provider_id, created_at) WHERE NOT is_finalized;
CREATE INDEX IF NOT EXISTS jobs_slot_created_idx ON jobs (slot_id, created_at DESC);
CREATE INDEX IF NOT EXISTS jobs_created_idx ON jobs (created_at DESC);

-- Every admin write, from the CLI and the HTTP API alike. Never a secret value.
CREATE TABLE IF NOT EXISTS audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    source  text NOT NULL,          -- 'cli' | 'http'
    action  text NOT NULL,
    target  text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);


-- Wake-ups. A trigger, so every path that enqueues or finalizes (ingest, worker, sweeper, admin)
-- notifies without having to remember to:
--   photoslot_job_new  (payload: provider id) — work to claim, or a provider slot freed up;
--   photoslot_job_done (payload: job id)      — the waiting ingest can answer now.
CREATE OR REPLACE FUNCTION photoslot_jobs_notify() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('photoslot_job_new', NEW.provider_id);
    ELSIF NEW.is_finalized AND NOT OLD.is_finalized THEN
        PERFORM pg_notify('photoslot_job_done', NEW.id::text);
        IF OLD.status = 'processing' THEN
            PERFORM pg_notify('photoslot_job_new', NEW.provider_id);
        END IF;
    ELSIF NEW.status = 'pending' AND OLD.status = 'processing' THEN
        PERFORM pg_notify('photoslot_job_new', NEW.provider_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION photoslot_jobs_notify();

-- ==== providers: template media, public media links, provider request accounting ====

-- ==== administration: login throttling, stats resets ====

-- ==== operations: alerts state, purge requests ====

INSERT INTO schema_meta (id, version) VALUES (1, 1)
ON CONFLICT (id) DO UPDATE SET version = GREATEST(schema_meta.version, EXCLUDED.version);
