-- The web admin's Slots page (photoslot/overview.py): every slot's day in two statements, not two
-- per slot. The counts are those of stats.sql, over one UTC day from the slot's last reset on.

-- name: overview_today
SELECT s.id AS slot_id,
       count(j.id) AS ingest_count,
       count(j.id) FILTER (WHERE j.status = 'succeeded') AS success,
       count(j.id) FILTER (WHERE j.failure_reason = 'timeout') AS timeouts,
       count(j.id) FILTER (WHERE j.is_finalized AND j.status <> 'succeeded') AS errors
FROM slots s
LEFT JOIN jobs j ON j.slot_id = s.id AND NOT j.is_test
               AND j.created_at >= greatest(%(day)s::timestamptz, coalesce(s.last_reset_at, %(day)s::timestamptz))
               AND j.created_at < %(to)s
GROUP BY s.id;

-- name: overview_last_results
-- Each slot's newest success whose result is still downloadable.
SELECT DISTINCT ON (slot_id) slot_id, id, finalized_at, result_mime_type, result_size_bytes, result_expires_at
FROM jobs
WHERE status = 'succeeded' AND result_expires_at > %(now)s
ORDER BY slot_id, finalized_at DESC;
