-- photoslot migration 0001: the baseline — the whole schema as it stood when migrations began.
-- NEVER EDIT THIS FILE: studios have it applied. A change is a new file, 0002_what_it_does.sql.
-- It is idempotent on purpose: a database made before migrations existed (schema_meta version 1,
-- no schema_migrations table) is brought to exactly this state by running it once more.

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

-- Added after the first release of the table (schema version 1 → kept idempotent):
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS provider_ms integer;   -- time spent in provider calls
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS answered_ms integer;   -- request arrival → answer sent (ingest side)

-- The claim query's path: open jobs per provider, oldest first.
CREATE INDEX IF NOT EXISTS jobs_open_idx ON jobs (provider_id, created_at) WHERE NOT is_finalized;
-- The claim's max_parallel count reads only the (few) running jobs, however long the backlog.
CREATE INDEX IF NOT EXISTS jobs_processing_idx ON jobs (provider_id, lease_expires_at) WHERE status = 'processing';
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

-- Claiming, in one round trip. Each statement of a plpgsql function takes a fresh snapshot, so
-- after the advisory lock (which serialises claimers of one provider across all processes) the
-- count of live leases sees every earlier claim: max_parallel holds exactly.
CREATE OR REPLACE FUNCTION photoslot_claim_job(p_provider text, p_worker text, p_now timestamptz,
                                               p_lease timestamptz, p_max integer)
RETURNS SETOF jobs AS $$
DECLARE
    running integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('photoslot-claim:' || p_provider));
    SELECT count(*) INTO running FROM jobs
    WHERE provider_id = p_provider AND status = 'processing' AND lease_expires_at > p_now;
    IF running >= p_max THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE jobs j
    SET status = 'processing', attempts = j.attempts + 1, worker_id = p_worker,
        lease_expires_at = p_lease, started_at = coalesce(j.started_at, p_now), updated_at = p_now
    WHERE j.id = (
        SELECT id FROM jobs
        WHERE provider_id = p_provider AND NOT is_finalized AND expires_at > p_now
          AND (status = 'pending' OR lease_expires_at <= p_now)
        ORDER BY created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING j.*;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION photoslot_jobs_notify();

-- ==== providers: template media, public media links, provider request accounting ====

-- Template images (style / face references) under <media_root>/templates/. Slots bind them by id
-- in settings_json.templates {role: template_id}; the catalogue validates the roles.
CREATE TABLE IF NOT EXISTS template_media (
    id          uuid PRIMARY KEY,
    file_path   text NOT NULL,
    mime        text NOT NULL,
    size_bytes  bigint NOT NULL,
    sha256      text NOT NULL,
    label       text,
    uploaded_by text NOT NULL,
    created_at  timestamptz NOT NULL
);

-- Public links for providers that fetch inputs by URL (Turbotext). The id is the unguessable
-- part of the URL. A row outlives its file: GET answers 410 (not 404) once it expired.
CREATE TABLE IF NOT EXISTS media_objects (
    id         uuid PRIMARY KEY,
    job_id     uuid,                     -- no FK: job rows are pruned, links must not block that
    kind       text NOT NULL,            -- 'photo' | 'template' | 'upload'
    file_path  text NOT NULL,
    owns_file  boolean NOT NULL,         -- false for a template's file: the link only borrows it
    mime       text NOT NULL,
    size_bytes bigint,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    expired_at timestamptz               -- set when closed early (job finalized) or swept
);
CREATE INDEX IF NOT EXISTS media_objects_job_idx ON media_objects (job_id) WHERE expired_at IS NULL;
CREATE INDEX IF NOT EXISTS media_objects_open_idx ON media_objects (expires_at) WHERE expired_at IS NULL;

-- Provider requests per fixed window (minute, UTC day): quotas are counted here so every process
-- shares one count. Old windows are pruned by the sweeper.
CREATE TABLE IF NOT EXISTS provider_request_counts (
    provider_id  text NOT NULL,
    window_kind  text NOT NULL CHECK (window_kind IN ('minute', 'day')),
    window_start timestamptz NOT NULL,
    requests     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (provider_id, window_kind, window_start)
);

-- ==== administration: login throttling, stats resets ====

-- Failed admin logins, keyed 'user:<name>' and 'client:<address>', so throttling holds across
-- every process that serves the API. Old rows are pruned on each failure.
CREATE TABLE IF NOT EXISTS login_attempts (
    id  bigserial PRIMARY KEY,
    key text NOT NULL,
    at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_key_at_idx ON login_attempts (key, at);

-- POST /api/media/cache/purge records a request here; the sweeper carries it out and marks it done.
CREATE TABLE IF NOT EXISTS purge_requests (
    id             uuid PRIMARY KEY,
    scope          text NOT NULL CHECK (scope IN ('full', 'media_objects')),
    requested_by   text NOT NULL,
    requested_at   timestamptz NOT NULL,
    expires_cutoff timestamptz NOT NULL,
    done_at        timestamptz,
    report         jsonb
);
CREATE INDEX IF NOT EXISTS purge_requests_pending_idx ON purge_requests (requested_at) WHERE done_at IS NULL;

-- ==== operations: alerts state, purge requests ====

-- One row per alert: whether it is firing. A transition (start/clear) is a conditional UPDATE, so
-- two processes evaluating at once announce it once.
CREATE TABLE IF NOT EXISTS alert_state (
    name       text PRIMARY KEY,      -- e.g. timeout_ratio, queue_depth, media_disk, provider_failing:gemini
    active     boolean NOT NULL DEFAULT false,
    severity   text NOT NULL DEFAULT 'warning',
    value      double precision,
    threshold  double precision,
    message    text,
    changed_at timestamptz NOT NULL,
    checked_at timestamptz NOT NULL
);

-- Set when the sweeper deleted the result file (retention over); the row stays for stats.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS result_removed_at timestamptz;
CREATE INDEX IF NOT EXISTS jobs_result_expiry_idx ON jobs (result_expires_at)
    WHERE result_file_path IS NOT NULL AND result_removed_at IS NULL;
CREATE INDEX IF NOT EXISTS jobs_finalized_at_idx ON jobs (finalized_at) WHERE is_finalized;

INSERT INTO schema_meta (id, version) VALUES (1, 1)
ON CONFLICT (id) DO UPDATE SET version = GREATEST(schema_meta.version, EXCLUDED.version);
