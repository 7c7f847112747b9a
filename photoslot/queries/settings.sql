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
