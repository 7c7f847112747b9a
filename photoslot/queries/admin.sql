-- Administration: jobs listing for the admin API, stats resets, purge requests.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: slot_reset_stats
UPDATE slots SET last_reset_at = %(now)s WHERE id = %(slot_id)s RETURNING id, last_reset_at;

-- name: admin_jobs_page
-- The admin jobs list: every filter optional; sort column and order are whitelisted in Python and
-- passed as flags, so no SQL is ever built from a request.
SELECT j.*
FROM jobs j
WHERE (%(slot_id)s::text IS NULL OR j.slot_id = %(slot_id)s)
  AND (%(status)s::text IS NULL OR j.status = %(status)s)
  AND (%(is_finalized)s::boolean IS NULL OR j.is_finalized = %(is_finalized)s)
  AND (%(failure_reason)s::text IS NULL OR j.failure_reason = %(failure_reason)s)
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
  AND (%(is_finalized)s::boolean IS NULL OR j.is_finalized = %(is_finalized)s)
  AND (%(failure_reason)s::text IS NULL OR j.failure_reason = %(failure_reason)s);

-- name: purge_request_insert
INSERT INTO purge_requests (id, scope, requested_by, requested_at, expires_cutoff)
VALUES (%(id)s, %(scope)s, %(actor)s, %(now)s, %(expires_cutoff)s)
RETURNING *;

-- name: purge_requests_pending
SELECT * FROM purge_requests WHERE done_at IS NULL ORDER BY requested_at;

-- name: purge_request_done
UPDATE purge_requests SET done_at = %(now)s, report = %(report)s
WHERE id = %(id)s AND done_at IS NULL
RETURNING id;

-- name: purge_request_get
SELECT * FROM purge_requests WHERE id = %(id)s;

-- name: audit_page
SELECT * FROM audit_log
WHERE (%(action)s::text IS NULL OR action = %(action)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: slot_recent_results_live
-- The admin view's recent_results: the last successes whose result is still downloadable.
SELECT id, finalized_at, result_mime_type, result_size_bytes, result_expires_at
FROM jobs
WHERE slot_id = %(slot_id)s AND status = 'succeeded' AND result_expires_at > %(now)s
ORDER BY finalized_at DESC
LIMIT %(limit)s;
