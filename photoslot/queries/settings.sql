-- Live settings.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: settings_all
SELECT key, value, updated_at, updated_by FROM settings;

-- name: setting_upsert
INSERT INTO settings (key, value, updated_at, updated_by)
VALUES (%(key)s, %(value)s, %(now)s, %(actor)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at,
                                updated_by = EXCLUDED.updated_by;

-- name: setting_insert_if_missing
INSERT INTO settings (key, value, updated_at, updated_by)
VALUES (%(key)s, %(value)s, %(now)s, %(actor)s)
ON CONFLICT (key) DO NOTHING
RETURNING key;

-- name: setting_get
SELECT key, value, updated_at, updated_by FROM settings WHERE key = %(key)s;

-- name: settings_announce
-- A live setting every process keeps a copy of changed (public_address.py): they read it again.
SELECT pg_notify('photoslot_settings', %(key)s);

-- name: setting_replace_value
-- A value replaced only if it is still the one the caller saw (the ingest password's re-keying);
-- who set it and when stay what they were.
UPDATE settings SET value = %(value)s WHERE key = %(key)s AND value = %(old)s::jsonb
RETURNING key;

-- name: ingest_door_settings
-- What the ingest's password check keeps a copy of: the password's record, and the window (the
-- deadline of a form read before its password, until the admission reads it with the slot).
SELECT key, value FROM settings WHERE key IN ('ingest_password', 'sync_response_seconds');
