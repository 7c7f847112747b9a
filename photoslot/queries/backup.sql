-- Backup and restore of a studio (photoslot/backup.py).
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().
-- List parameters travel as JSON arrays, like everywhere else.

-- name: backup_export_snapshot
-- Run first in a REPEATABLE READ transaction: pg_dump --snapshot dumps exactly what this
-- transaction sees, so the dump and the file lists read below describe the same moment.
SELECT pg_export_snapshot() AS snapshot, current_setting('server_version_num')::int AS server_version_num;

-- name: backup_template_files
SELECT id::text AS id, file_path FROM template_media ORDER BY id;

-- name: backup_result_files
SELECT id::text AS id, result_file_path AS file_path FROM jobs
WHERE result_file_path IS NOT NULL AND result_removed_at IS NULL ORDER BY id;

-- name: backup_counts
SELECT (SELECT count(*) FROM slots WHERE provider_id IS NOT NULL) AS configured_slots,
       (SELECT count(*) FROM slots WHERE enabled) AS enabled_slots,
       (SELECT count(*) FROM template_media) AS templates,
       (SELECT count(*) FROM jobs) AS jobs,
       (SELECT count(*) FROM audit_log) AS audit_entries,
       (SELECT count(*) FROM settings) AS settings;

-- name: restore_server_version
SELECT current_setting('server_version_num')::int AS server_version_num;

-- name: restore_user_tables
-- What makes a target database "not empty": any table of its own.
SELECT count(*) AS tables FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema');

-- name: restore_wipe
-- A restore into an empty database that failed half-way: the database is made empty again.
DROP SCHEMA public CASCADE;
CREATE SCHEMA public;

-- name: restore_other_sessions
-- Run on the maintenance database: sessions of other processes on the studio's database(s). A
-- database cannot be renamed while someone uses it, and a studio must not change under `serve`.
SELECT count(*) FROM pg_stat_activity
WHERE datname IN (SELECT jsonb_array_elements_text(%(names)s::jsonb)) AND pid <> pg_backend_pid();

-- name: restore_may_swap
-- Whether the current user may build a new database and rename the studio's (owner or superuser).
SELECT (r.rolsuper OR (r.rolcreatedb AND d.datdba = r.oid)) AS may
FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = %(name)s;

-- name: restore_move_template_paths
-- Files move with the media root: the part below the old root is kept, the root replaced.
UPDATE template_media SET file_path = %(new_root)s || substr(file_path, length(%(old_root)s) + 1)
WHERE left(file_path, length(%(old_root)s)) = %(old_root)s;

-- name: restore_move_job_paths
UPDATE jobs SET
    result_file_path = CASE WHEN left(result_file_path, length(%(old_root)s)) = %(old_root)s
                            THEN %(new_root)s || substr(result_file_path, length(%(old_root)s) + 1)
                            ELSE result_file_path END,
    upload_path = CASE WHEN left(upload_path, length(%(old_root)s)) = %(old_root)s
                       THEN %(new_root)s || substr(upload_path, length(%(old_root)s) + 1)
                       ELSE upload_path END
WHERE result_file_path IS NOT NULL OR upload_path IS NOT NULL;

-- name: restore_move_media_object_paths
UPDATE media_objects SET file_path = %(new_root)s || substr(file_path, length(%(old_root)s) + 1)
WHERE left(file_path, length(%(old_root)s)) = %(old_root)s;

-- name: restore_results_not_restored
-- Results whose files are not in the archive (taken without --with-results): marked removed, as
-- the sweeper marks an expired one, so no link points at a file that is not there.
UPDATE jobs SET result_removed_at = %(now)s
WHERE result_file_path IS NOT NULL AND result_removed_at IS NULL
  AND id::text NOT IN (SELECT jsonb_array_elements_text(%(restored)s::jsonb));
