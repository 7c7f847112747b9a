-- The web admin's Slots page (photoslot/overview.py); its counts are slot_report.sql's.

-- name: overview_last_results
-- Each slot's newest success whose result is still downloadable (not expired, not purged).
SELECT DISTINCT ON (slot_id) slot_id, id, finalized_at, result_mime_type, result_size_bytes, result_expires_at
FROM jobs
WHERE status = 'succeeded' AND result_expires_at > %(now)s AND result_removed_at IS NULL
ORDER BY slot_id, finalized_at DESC;

-- name: checklist_facts
-- What the first-run checklist (photoslot/checklist.py) needs beyond the slots and settings.
SELECT EXISTS (SELECT 1 FROM settings WHERE key = 'ingest_password') AS password_set,
       EXISTS (SELECT 1 FROM ingest_rollups WHERE NOT is_test AND outcome <> 'refused' AND requests > 0) AS booth_shot,
       EXISTS (SELECT 1 FROM ingest_rollups WHERE is_test AND outcome = 'succeeded' AND requests > 0) AS test_shot_passed;
