-- The job queue: enqueue, claim, heartbeat, finalize, sweep.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: job_insert
INSERT INTO jobs (id, slot_id, provider_id, operation_id, slot_settings, input_metadata,
                  upload_path, upload_mime, upload_size_bytes, expires_at, is_test, created_at, updated_at)
VALUES (%(id)s, %(slot_id)s, %(provider_id)s, %(operation_id)s, %(slot_settings)s, %(input_metadata)s,
        %(upload_path)s, %(upload_mime)s, %(upload_size_bytes)s, %(expires_at)s, %(is_test)s, %(now)s, %(now)s);

-- name: job_get
SELECT * FROM jobs WHERE id = %(job_id)s;

-- name: job_list
SELECT * FROM jobs
WHERE (%(slot_id)s::text IS NULL OR slot_id = %(slot_id)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY created_at DESC
LIMIT %(limit)s;

-- name: job_list_since
-- `photoslot jobs --since`: job_list, only jobs created at or after created_from.
SELECT * FROM jobs
WHERE (%(slot_id)s::text IS NULL OR slot_id = %(slot_id)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND created_at >= %(created_from)s
ORDER BY created_at DESC
LIMIT %(limit)s;

-- name: job_claim
-- One round trip: photoslot_claim_job() (schema.sql) takes the per-provider advisory lock, counts
-- live leases against max_parallel and claims the oldest open job with SKIP LOCKED. The provider's
-- API key stored over the admin API ('provider_key.' || provider, secrets.PROVIDER_KEY_PREFIX) comes
-- along, sealed: the attempt needs it next, and it saves a round trip per job.
SELECT c.*, (SELECT value FROM settings WHERE key = 'provider_key.' || %(provider_id)s) AS provider_key_stored
FROM photoslot_claim_job(%(provider_id)s, %(worker_id)s, %(now)s, %(lease_expires_at)s, %(max_parallel)s) c;

-- name: job_heartbeat
UPDATE jobs SET lease_expires_at = %(lease_expires_at)s
WHERE id = %(job_id)s AND worker_id = %(worker_id)s AND status = 'processing'
RETURNING id;

-- name: job_release
-- A stopping worker hands its job back so another process can take it while the deadline allows.
-- The provider's probe that job held is handed back with it (and announced): otherwise a serve
-- restart in the middle of a probe keeps the provider down until the probe's lease runs out.
WITH released AS (
    UPDATE jobs SET status = 'pending', worker_id = NULL, lease_expires_at = NULL, updated_at = %(now)s
    WHERE id = %(job_id)s AND worker_id = %(worker_id)s AND status = 'processing'
    RETURNING id, provider_id
), probe AS (
    UPDATE provider_health h SET probe_job = NULL, probe_until = NULL, updated_at = %(now)s
    FROM released r
    WHERE h.provider_id = r.provider_id AND h.probe_job = r.id::text
    RETURNING h.provider_id
)
SELECT r.id, (SELECT pg_notify('photoslot_provider_health', p.provider_id) FROM probe p) AS probe_released
FROM released r;

-- name: job_record_provider
UPDATE jobs
SET provider_job_reference = coalesce(%(reference)s, provider_job_reference),
    provider_response_id = coalesce(%(response_id)s, provider_response_id),
    provider_tokens = coalesce(%(tokens)s, provider_tokens),
    provider_requests = provider_requests + %(requests)s,
    poll_count = poll_count + %(polls)s,
    provider_ms = coalesce(%(provider_ms)s, provider_ms),
    updated_at = %(now)s
WHERE id = %(job_id)s;

-- name: job_finalize_success
-- Conditional: whoever finalizes first wins; a late result updates nothing. The upload path is
-- cleared in the same statement and handed back (old_upload_path) for the winner to delete.
-- Retention is read from the live setting here, saving a round trip on the answer's path.
UPDATE jobs j
SET status = 'succeeded', failure_reason = NULL, failure_detail = NULL, answer_status = 200,
    result_file_path = %(result_file_path)s, result_mime_type = %(result_mime_type)s,
    result_size_bytes = %(result_size_bytes)s, result_checksum = %(result_checksum)s,
    result_expires_at = %(now)s + make_interval(secs => 3600 * coalesce(
        (SELECT (value #>> '{}')::float FROM settings WHERE key = 'result_retention_hours'),
        %(default_retention_hours)s)),
    provider_response_id = coalesce(%(response_id)s, j.provider_response_id),
    provider_tokens = coalesce(%(tokens)s, j.provider_tokens),
    provider_ms = coalesce(%(provider_ms)s, j.provider_ms),
    finalized_at = %(now)s, updated_at = %(now)s, lease_expires_at = NULL, upload_path = NULL
FROM (SELECT id, upload_path AS old_upload_path FROM jobs WHERE id = %(job_id)s FOR UPDATE) o
WHERE j.id = o.id AND NOT j.is_finalized
RETURNING j.*, o.old_upload_path;

-- name: job_finalize_failure
-- A timeout keeps what the worker noted about the provider meanwhile (job_note_problem): the
-- detail then says why there was no result ("…; the provider: HTTP 503 × 17 from gemini, last: …").
UPDATE jobs j
SET status = %(status)s, failure_reason = %(failure_reason)s,
    failure_detail = CASE WHEN %(failure_reason)s = 'timeout' AND j.failure_detail IS NOT NULL
                          THEN left(%(failure_detail)s || '; the provider: ' || j.failure_detail, 2000)
                          ELSE %(failure_detail)s END,
    answer_status = %(answer_status)s, finalized_at = %(now)s, updated_at = %(now)s,
    lease_expires_at = NULL, upload_path = NULL
FROM (SELECT id, upload_path AS old_upload_path FROM jobs WHERE id = %(job_id)s FOR UPDATE) o
WHERE j.id = o.id AND NOT j.is_finalized
RETURNING j.*, o.old_upload_path;

-- name: jobs_expire_abandoned
-- Sweeper: open jobs past their deadline (nobody is waiting any more, e.g. serve was killed).
UPDATE jobs j
SET status = 'timeout', failure_reason = 'timeout',
    failure_detail = 'deadline passed with no process answering (finalized by the sweeper)',
    answer_status = 504, finalized_at = %(now)s, updated_at = %(now)s, lease_expires_at = NULL,
    upload_path = NULL
FROM (SELECT id, upload_path AS old_upload_path FROM jobs
      WHERE NOT is_finalized AND expires_at <= %(cutoff)s FOR UPDATE SKIP LOCKED) o
WHERE j.id = o.id AND NOT j.is_finalized
RETURNING j.id, j.slot_id, j.provider_id, o.old_upload_path;

-- name: jobs_open_count_by_state
SELECT status, count(*) AS n FROM jobs WHERE NOT is_finalized GROUP BY status;

-- name: job_record_answer
UPDATE jobs SET answered_ms = %(answered_ms)s WHERE id = %(job_id)s;

-- name: jobs_finalized_among
-- The waiters' fallback poll: which of these waiting jobs are already finalized.
SELECT id FROM jobs
WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(%(ids)s::jsonb))::uuid[]) AND is_finalized;

-- name: admin_jobs_page
-- The admin jobs list: every filter optional; sort column and order are whitelisted in Python and
-- passed as flags, so no SQL is ever built from a request. `contract_status` is the admin API
-- contract's pending/processing (a finalized job keeps the last one it reached: jobs.contract_status);
-- `failure_reasons` (a JSON array) every stored reason a filter covers (jobs.failure_reasons_matching).
SELECT j.*
FROM jobs j
WHERE (%(slot_id)s::text IS NULL OR j.slot_id = %(slot_id)s)
  AND (%(status)s::text IS NULL OR j.status = %(status)s)
  AND (%(contract_status)s::text IS NULL OR %(contract_status)s = CASE
         WHEN j.status IN ('pending', 'processing') THEN j.status
         WHEN j.started_at IS NULL THEN 'pending' ELSE 'processing' END)
  AND (%(is_finalized)s::boolean IS NULL OR j.is_finalized = %(is_finalized)s)
  AND (%(failure_reasons)s::jsonb IS NULL
       OR j.failure_reason IN (SELECT jsonb_array_elements_text(%(failure_reasons)s::jsonb)))
  AND (%(is_test)s::boolean IS NULL OR j.is_test = %(is_test)s)
  AND (%(created_from)s::timestamptz IS NULL OR j.created_at >= %(created_from)s)
  AND (%(created_to)s::timestamptz IS NULL OR j.created_at < %(created_to)s)
ORDER BY
  CASE WHEN %(sort_by)s = 'created_at' AND %(descending)s THEN j.created_at END DESC,
  CASE WHEN %(sort_by)s = 'created_at' AND NOT %(descending)s THEN j.created_at END ASC,
  CASE WHEN %(sort_by)s = 'expires_at' AND %(descending)s THEN j.expires_at END DESC,
  CASE WHEN %(sort_by)s = 'expires_at' AND NOT %(descending)s THEN j.expires_at END ASC,
  j.id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: admin_jobs_count
SELECT count(*) AS total
FROM jobs j
WHERE (%(slot_id)s::text IS NULL OR j.slot_id = %(slot_id)s)
  AND (%(status)s::text IS NULL OR j.status = %(status)s)
  AND (%(contract_status)s::text IS NULL OR %(contract_status)s = CASE
         WHEN j.status IN ('pending', 'processing') THEN j.status
         WHEN j.started_at IS NULL THEN 'pending' ELSE 'processing' END)
  AND (%(is_finalized)s::boolean IS NULL OR j.is_finalized = %(is_finalized)s)
  AND (%(failure_reasons)s::jsonb IS NULL
       OR j.failure_reason IN (SELECT jsonb_array_elements_text(%(failure_reasons)s::jsonb)))
  AND (%(is_test)s::boolean IS NULL OR j.is_test = %(is_test)s)
  AND (%(created_from)s::timestamptz IS NULL OR j.created_at >= %(created_from)s)
  AND (%(created_to)s::timestamptz IS NULL OR j.created_at < %(created_to)s);

-- name: job_note_problem
-- While the job runs: what went wrong with the provider so far (kept if the job times out).
UPDATE jobs SET failure_detail = %(detail)s WHERE id = %(job_id)s AND NOT is_finalized;
