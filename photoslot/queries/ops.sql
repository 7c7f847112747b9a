-- Operations: the sweeper's clean-up, the values /metrics reads at scrape time, alert state.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().
-- Every sweeper statement takes its rows with FOR UPDATE SKIP LOCKED and is conditional, so two
-- processes sweeping at once split the work instead of doing it twice.

-- name: ops_results_expire
-- Results past their retention: mark the file removed (the row stays for stats) and hand the
-- path back for deletion. A crash between the UPDATE and the unlink leaves an orphan file, which
-- the orphan pass removes.
UPDATE jobs j
SET result_removed_at = %(now)s
FROM (SELECT id FROM jobs
      WHERE result_file_path IS NOT NULL AND result_removed_at IS NULL AND result_expires_at <= %(now)s
      ORDER BY result_expires_at
      LIMIT %(limit)s
      FOR UPDATE SKIP LOCKED) o
WHERE j.id = o.id AND j.result_removed_at IS NULL
RETURNING j.id, j.slot_id, j.result_file_path;

-- name: ops_referenced_job_files
-- Every file under uploads/ and results/ a job row still points to; anything else there is an orphan.
SELECT upload_path AS path FROM jobs WHERE upload_path IS NOT NULL
UNION ALL
SELECT result_file_path FROM jobs WHERE result_file_path IS NOT NULL AND result_removed_at IS NULL;

-- name: ops_prune_job_rows
-- Finished jobs older than the row retention whose result file is gone (or never existed).
DELETE FROM jobs j
USING (SELECT id FROM jobs
       WHERE is_finalized AND finalized_at < %(cutoff)s
         AND (result_file_path IS NULL OR result_removed_at IS NOT NULL)
       ORDER BY finalized_at
       LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED) o
WHERE j.id = o.id
RETURNING j.id;

-- ---------------------------------------------------------------- metrics (read at scrape time)

-- name: ops_jobs_by_state
SELECT status, coalesce(failure_reason, '') AS reason, count(*) AS n FROM jobs GROUP BY 1, 2;

-- name: ops_queue_depth
SELECT provider_id,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'processing') AS processing,
       coalesce(extract(epoch FROM %(now)s - min(created_at) FILTER (WHERE status = 'pending')), 0)
           AS oldest_pending_seconds
FROM jobs WHERE NOT is_finalized GROUP BY provider_id;

-- name: ops_window_outcomes
-- Booth jobs finalized inside the alert window, per provider and outcome, with provider effort.
-- Admins' test shots are left out: a rehearsal that times out is no guest kept waiting.
SELECT provider_id, status, coalesce(failure_reason, '') AS reason, count(*) AS n,
       coalesce(sum(provider_requests), 0) AS requests,
       coalesce(sum(greatest(provider_requests - 1, 0)), 0) AS retries,
       coalesce(sum(poll_count), 0) AS polls
FROM jobs
WHERE is_finalized AND NOT is_test AND finalized_at > %(since)s AND finalized_at <= %(now)s
GROUP BY 1, 2, 3;

-- name: ops_window_processing_seconds
-- Claim-to-finalize time of successful jobs in the window (covers workers on every host).
SELECT provider_id,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - started_at)) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - started_at)) AS p95,
       count(*) AS n
FROM jobs
WHERE status = 'succeeded' AND started_at IS NOT NULL AND finalized_at > %(since)s AND finalized_at <= %(now)s
GROUP BY provider_id;

-- name: ops_provider_recent_outcomes
-- The latest finalized jobs per provider inside the window, newest first ("failing repeatedly").
-- Cancellations and hang-ups say nothing about the provider, so they are left out.
SELECT provider_id, status, coalesce(failure_reason, '') AS reason
FROM (SELECT provider_id, status, failure_reason,
             row_number() OVER (PARTITION BY provider_id ORDER BY finalized_at DESC) AS rn
      FROM jobs
      WHERE is_finalized AND finalized_at > %(since)s AND status <> 'cancelled') r
WHERE rn <= %(n)s
ORDER BY provider_id, rn;

-- ---------------------------------------------------------------- alert state

-- name: ops_alert_states
SELECT * FROM alert_state ORDER BY name;

-- name: ops_alert_transition
-- Returns a row only when this call changed the alert's state (or created it already firing), so
-- when two processes evaluate at once exactly one of them announces the transition.
INSERT INTO alert_state AS a (name, active, severity, value, threshold, message, changed_at, checked_at)
VALUES (%(name)s, %(active)s, %(severity)s, %(value)s, %(threshold)s, %(message)s, %(now)s, %(now)s)
ON CONFLICT (name) DO UPDATE
SET active = EXCLUDED.active, severity = EXCLUDED.severity, value = EXCLUDED.value,
    threshold = EXCLUDED.threshold, message = EXCLUDED.message, changed_at = EXCLUDED.changed_at,
    checked_at = EXCLUDED.checked_at
WHERE a.active IS DISTINCT FROM EXCLUDED.active
RETURNING a.name, a.active, a.severity, a.value, a.threshold, a.message, a.changed_at, (xmax = 0) AS created;

-- name: ops_alert_touch
UPDATE alert_state SET value = %(value)s, threshold = %(threshold)s, checked_at = %(now)s
WHERE name = %(name)s;

-- ---------------------------------------------------------------- templates, purges

-- name: ops_referenced_template_files
-- Template files a template_media row points to (anything else under templates/ is an orphan).
SELECT file_path AS path FROM template_media;

-- name: ops_results_purge
-- A `full` cache purge: results finished up to the cutoff are deleted now (their links answer 410).
UPDATE jobs j
SET result_removed_at = %(now)s
FROM (SELECT id FROM jobs
      WHERE result_file_path IS NOT NULL AND result_removed_at IS NULL AND finalized_at <= %(cutoff)s
      LIMIT %(limit)s
      FOR UPDATE SKIP LOCKED) o
WHERE j.id = o.id AND j.result_removed_at IS NULL
RETURNING j.id, j.result_file_path;
