-- Provider health (photoslot/provider_health.py; the rule: photoslot/health_rule.py).

-- name: provider_health_all
SELECT * FROM provider_health ORDER BY provider_id;

-- name: provider_health_ensure
INSERT INTO provider_health (provider_id, updated_at) VALUES (%(provider_id)s, %(now)s)
ON CONFLICT (provider_id) DO NOTHING;

-- name: provider_health_lock
SELECT * FROM provider_health WHERE provider_id = %(provider_id)s FOR UPDATE;

-- name: provider_health_save
UPDATE provider_health
SET state = %(state)s, failures = %(failures)s, last_problem = %(last_problem)s,
    last_failure_at = %(last_failure_at)s, down_since = %(down_since)s, retry_at = %(retry_at)s,
    probe_job = %(probe_job)s, probe_until = %(probe_until)s, changed_at = %(changed_at)s,
    down_reason = %(reason)s, updated_at = %(now)s
WHERE provider_id = %(provider_id)s;

-- name: provider_quota_note
-- What the provider said is left on the account (Turbotext's limits.foto_limit), as it said it.
INSERT INTO provider_health (provider_id, quota_remaining, quota_remaining_at, updated_at)
VALUES (%(provider_id)s, %(remaining)s, %(now)s, %(now)s)
ON CONFLICT (provider_id) DO UPDATE
SET quota_remaining = excluded.quota_remaining, quota_remaining_at = excluded.quota_remaining_at;

-- name: provider_health_announce
SELECT pg_notify('photoslot_provider_health', %(provider_id)s);

-- name: jobs_end_provider_down
-- The provider went down: every open job for it ends now as provider_unavailable instead of
-- waiting out its window (its booth is answered 503 at once through the job-done NOTIFY). Rows a
-- worker is finalizing right now are skipped, not waited for: that worker ends them itself; so is
-- `keep_job`, the job whose own answer took the provider down with a reason (it fails with it).
UPDATE jobs j
SET status = 'failed', failure_reason = 'provider_unavailable', failure_detail = %(detail)s,
    answer_status = 503, finalized_at = %(now)s, updated_at = %(now)s, lease_expires_at = NULL,
    upload_path = NULL
FROM (SELECT id, upload_path AS old_upload_path FROM jobs
      WHERE NOT is_finalized AND provider_id = %(provider_id)s AND id IS DISTINCT FROM %(keep_job)s::uuid
      FOR UPDATE SKIP LOCKED) o
WHERE j.id = o.id AND NOT j.is_finalized
RETURNING j.id, j.slot_id, o.old_upload_path;

-- name: provider_probe_hand_back
-- The probe's job ended without an outcome for the provider (its call was cut off too late in its
-- window to count, it never got to send, the database was away): the probe is free for the next
-- job at once, announced, instead of keeping the provider down — and the shots admitted for the
-- probe waiting — until the probe's lease runs out.
WITH probe AS (
    UPDATE provider_health SET probe_job = NULL, probe_until = NULL, updated_at = %(now)s
    WHERE provider_id = %(provider_id)s AND probe_job = %(job_id)s
    RETURNING provider_id
)
SELECT (SELECT pg_notify('photoslot_provider_health', p.provider_id) FROM probe p) IS NOT NULL AS handed_back;
