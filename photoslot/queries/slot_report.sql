-- "Which booth is failing, and why" (photoslot/slot_report.py): per-slot figures over the hourly
-- rollups (every request, refused ones included; test shots apart), the last success and failure
-- of each slot, refusals by reason, and the failed jobs for the "Last failures" list. The window is
-- always passed in; like stats.sql it counts whole hours: [the hour of `from`, `to`).

-- name: report_by_slot
-- One row per slot (and one for requests to a slot id that does not exist, 'invalid', when there
-- were any), counted from each slot's last stats reset.
WITH r AS (
    SELECT r.slot_id,
           coalesce(sum(r.requests) FILTER (WHERE NOT r.is_test), 0) AS requests,
           coalesce(sum(r.requests) FILTER (WHERE NOT r.is_test AND r.status = 200), 0) AS answered_200,
           coalesce(sum(r.requests) FILTER (WHERE NOT r.is_test AND r.status = 504), 0) AS answered_504,
           coalesce(sum(r.requests) FILTER (WHERE NOT r.is_test AND r.outcome = 'refused' AND r.status <> 504), 0)
               AS refused,
           coalesce(sum(r.requests) FILTER (WHERE r.is_test), 0) AS test_shots,
           coalesce(sum(r.requests) FILTER (WHERE r.is_test AND r.outcome = 'succeeded'), 0) AS test_shots_succeeded
    FROM ingest_rollups r
    LEFT JOIN slots s ON s.id = r.slot_id
    WHERE r.hour >= date_trunc('hour', %(from)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      AND r.hour < %(to)s
      AND r.reset_at >= coalesce(s.last_reset_at, '-infinity')
    GROUP BY r.slot_id
), ids AS (
    SELECT id AS slot_id FROM slots
    UNION ALL
    SELECT 'invalid' WHERE EXISTS (SELECT 1 FROM r WHERE r.slot_id = 'invalid' AND r.requests > 0)
)
SELECT ids.slot_id, s.name, s.provider_id, s.operation_id, coalesce(s.enabled, false) AS enabled,
       coalesce(r.requests, 0) AS requests, coalesce(r.answered_200, 0) AS answered_200,
       coalesce(r.answered_504, 0) AS answered_504, coalesce(r.refused, 0) AS refused,
       coalesce(r.test_shots, 0) AS test_shots, coalesce(r.test_shots_succeeded, 0) AS test_shots_succeeded,
       ok.finalized_at AS last_success,
       bad.finalized_at AS last_failed_job_at, bad.answer_status AS last_failed_job_status,
       bad.failure_reason AS last_failed_job_reason,
       ref.last_at AS last_refused_at, ref.status AS last_refused_status, ref.reason AS last_refused_reason
FROM ids
LEFT JOIN slots s ON s.id = ids.slot_id
LEFT JOIN r ON r.slot_id = ids.slot_id
LEFT JOIN LATERAL (
    SELECT j.finalized_at FROM jobs j
    WHERE j.slot_id = ids.slot_id AND j.status = 'succeeded' AND NOT j.is_test AND j.created_at < %(to)s
    ORDER BY j.created_at DESC LIMIT 1) ok ON true
LEFT JOIN LATERAL (
    SELECT j.finalized_at, j.answer_status, j.failure_reason FROM jobs j
    WHERE j.slot_id = ids.slot_id AND j.is_finalized AND j.status <> 'succeeded' AND NOT j.is_test
      AND j.created_at < %(to)s
    ORDER BY j.created_at DESC LIMIT 1) bad ON true
LEFT JOIN LATERAL (
    SELECT f.last_at, f.status, f.reason FROM recent_refusals f
    WHERE f.slot_id = ids.slot_id AND NOT f.is_test AND f.first_at < %(to)s
    ORDER BY f.last_at DESC LIMIT 1) ref ON true
ORDER BY ids.slot_id = 'invalid', ids.slot_id;

-- name: report_refused_by_reason
-- Refused requests (no job was made) by reason and status, booths' and test shots' apart.
SELECT r.reason, r.status, r.is_test, sum(r.requests) AS requests
FROM ingest_rollups r
LEFT JOIN slots s ON s.id = r.slot_id
WHERE r.outcome = 'refused'
  AND (%(slot_id)s::text IS NULL OR r.slot_id = %(slot_id)s)
  AND r.hour >= date_trunc('hour', %(from)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
  AND r.hour < %(to)s
  AND r.reset_at >= coalesce(s.last_reset_at, '-infinity')
GROUP BY r.reason, r.status, r.is_test
ORDER BY r.is_test, sum(r.requests) DESC, r.reason;

-- name: report_failed_jobs
-- The newest jobs that did not end in a result, with what their booth was answered.
SELECT id, slot_id, created_at, finalized_at, answer_status, failure_reason, failure_detail, is_test
FROM jobs
WHERE is_finalized AND status <> 'succeeded'
  AND finalized_at >= %(from)s AND finalized_at < %(to)s
  AND (%(slot_id)s::text IS NULL OR slot_id = %(slot_id)s)
ORDER BY finalized_at DESC
LIMIT %(limit)s;

-- name: report_refusals
-- The recent refusals' record (photoslot/refusals.py) for the "Last failures" list.
SELECT slot_id, reason, status, is_test, first_at, last_at, requests, clients, detail
FROM recent_refusals
WHERE last_at >= %(from)s AND first_at < %(to)s
  AND (%(slot_id)s::text IS NULL OR slot_id = %(slot_id)s)
ORDER BY last_at DESC
LIMIT %(limit)s;
