-- The 15 slots, and the one-round-trip context an ingest needs.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: slot_get
SELECT s.*,
       (SELECT max(j.finalized_at) FROM jobs j
         WHERE j.slot_id = s.id AND j.status = 'succeeded') AS last_result_at
FROM slots s WHERE s.id = %(slot_id)s;

-- name: slot_list
SELECT s.*,
       (SELECT max(j.finalized_at) FROM jobs j
         WHERE j.slot_id = s.id AND j.status = 'succeeded') AS last_result_at
FROM slots s ORDER BY s.id;

-- name: slot_update
-- Optimistic: the caller passes the version it read; a stale one updates nothing.
UPDATE slots
SET name = %(name)s, provider_id = %(provider_id)s, operation_id = %(operation_id)s,
    settings_json = %(settings_json)s, enabled = %(enabled)s,
    version = version + 1, updated_at = %(now)s
WHERE id = %(slot_id)s AND version = %(version)s
RETURNING *;

-- name: slot_reset
UPDATE slots
SET name = '', provider_id = NULL, operation_id = NULL, settings_json = '{}'::jsonb,
    enabled = false, version = version + 1, updated_at = %(now)s
WHERE id = %(slot_id)s
RETURNING *;

-- name: ingest_context
-- One round trip per shot: the slot, the live settings, and the queue depth for back-pressure.
SELECT s.*,
       (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM settings) AS live_settings,
       (SELECT count(*) FROM jobs WHERE NOT is_finalized AND status = 'pending') AS pending_jobs
FROM slots s WHERE s.id = %(slot_id)s;

-- name: ingest_admission
-- The ingest's one round trip before it reads a photo: ingest_context, plus the requests already
-- counted in the slot's provider's current minute and day (quotas.exhausted_among).
SELECT s.*,
       (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM settings) AS live_settings,
       (SELECT count(*) FROM jobs WHERE NOT is_finalized AND status = 'pending') AS pending_jobs,
       (SELECT coalesce(jsonb_object_agg(q.window_kind, q.requests), '{}'::jsonb) FROM provider_request_counts q
        WHERE q.provider_id = s.provider_id
          AND ((q.window_kind = 'minute' AND q.window_start = %(minute)s)
               OR (q.window_kind = 'day' AND q.window_start = %(day)s))) AS quota_used
FROM slots s WHERE s.id = %(slot_id)s;

-- name: slot_recent_results
SELECT id, finalized_at, result_mime_type, result_size_bytes, result_expires_at
FROM jobs
WHERE slot_id = %(slot_id)s AND status = 'succeeded'
ORDER BY finalized_at DESC
LIMIT %(limit)s;

-- name: slot_reset_stats
UPDATE slots SET last_reset_at = %(now)s WHERE id = %(slot_id)s RETURNING id, last_reset_at;

-- name: slot_recent_results_live
-- The admin view's recent_results: the last successes whose result is still downloadable (not
-- expired, not removed by a purge).
SELECT id, finalized_at, result_mime_type, result_size_bytes, result_expires_at
FROM jobs
WHERE slot_id = %(slot_id)s AND status = 'succeeded' AND result_expires_at > %(now)s AND result_removed_at IS NULL
ORDER BY finalized_at DESC
LIMIT %(limit)s;
