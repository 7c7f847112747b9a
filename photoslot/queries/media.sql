-- Public media links (media_objects) for providers that fetch their inputs by URL.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: media_object_insert
INSERT INTO media_objects (id, job_id, kind, file_path, owns_file, mime, size_bytes, expires_at, created_at)
VALUES (%(id)s, %(job_id)s, %(kind)s, %(file_path)s, %(owns_file)s, %(mime)s, %(size_bytes)s,
        %(expires_at)s, %(now)s)
RETURNING *;

-- name: media_object_get
-- With the job's state: a link dies with its job's finalization, whoever finalized it.
SELECT m.*, coalesce(j.is_finalized, false) AS job_finalized
FROM media_objects m LEFT JOIN jobs j ON j.id = m.job_id
WHERE m.id = %(media_id)s;

-- name: media_job_deadline
SELECT expires_at, is_finalized FROM jobs WHERE id = %(job_id)s;

-- name: media_objects_expire_for_job
UPDATE media_objects SET expired_at = %(now)s
WHERE job_id = %(job_id)s AND expired_at IS NULL
RETURNING id, file_path, owns_file;

-- name: media_objects_expire_due
-- Sweeper: links past their TTL, or whose job is finalized (e.g. by a timing-out ingest).
UPDATE media_objects m SET expired_at = %(now)s
FROM (SELECT mo.id FROM media_objects mo LEFT JOIN jobs j ON j.id = mo.job_id
      WHERE mo.expired_at IS NULL AND (mo.expires_at <= %(now)s OR coalesce(j.is_finalized, false))
      FOR UPDATE OF mo SKIP LOCKED) due
WHERE m.id = due.id AND m.expired_at IS NULL
RETURNING m.id, m.file_path, m.owns_file;

-- name: media_object_expire
-- One link closed now (photoslot doctor --live's test photo, once Turbotext has it).
UPDATE media_objects SET expired_at = %(now)s WHERE id = %(media_id)s AND expired_at IS NULL
RETURNING id, file_path, owns_file;

-- name: media_objects_expire_all
UPDATE media_objects SET expired_at = %(now)s WHERE expired_at IS NULL
RETURNING id, file_path, owns_file;

-- name: media_objects_prune
-- Rows kept a while after expiry so their links answer 410, not 404; then dropped.
DELETE FROM media_objects WHERE expired_at IS NOT NULL AND expired_at < %(cutoff)s;

-- name: media_objects_open_paths
SELECT file_path FROM media_objects WHERE expired_at IS NULL AND owns_file;
