-- Schema migrations: the history table and the lock around applying them (photoslot/schema.py).
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: schema_tables
SELECT to_regclass('schema_migrations') IS NOT NULL AS has_history,
       to_regclass('schema_meta') IS NOT NULL AS has_meta;

-- name: schema_history_create
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,           -- sha256 of the file as applied
    how         text NOT NULL CHECK (how IN ('applied', 'adopted')),  -- adopted: made by the pre-migration schema.sql
    applied_at  timestamptz NOT NULL,
    duration_ms integer NOT NULL
);

-- name: schema_history
SELECT version, name, checksum, how, applied_at, duration_ms FROM schema_migrations ORDER BY version;

-- name: schema_meta_version
SELECT version FROM schema_meta WHERE id = 1;

-- name: schema_history_insert
INSERT INTO schema_migrations (version, name, checksum, how, applied_at, duration_ms)
VALUES (%(version)s, %(name)s, %(checksum)s, %(how)s, %(now)s, %(duration_ms)s);

-- name: schema_meta_set
INSERT INTO schema_meta (id, version, applied_at) VALUES (1, %(version)s, %(now)s)
ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, applied_at = EXCLUDED.applied_at;

-- name: schema_lock
-- One migrator at a time across every process and host; the same key the pre-migration schema
-- application used, so an old and a new photoslot starting together do not interleave either.
SELECT pg_advisory_lock(hashtext('photoslot-schema'));

-- name: schema_unlock
SELECT pg_advisory_unlock(hashtext('photoslot-schema'));

-- name: schema_lock_timeout
SET lock_timeout = '60s';

-- name: schema_lock_timeout_reset
RESET lock_timeout;
