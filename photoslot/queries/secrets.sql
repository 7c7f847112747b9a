-- Encrypted settings (secrets.py): provider keys are stored as {"encrypted": <Fernet token>}.
-- Writers of such values hold the shared lock; a key rotation and the start-up encryption of
-- plain-text values hold the exclusive one (see secrets.py).

-- name: secrets_lock
SELECT pg_advisory_xact_lock(hashtext('photoslot-secrets'));

-- name: secrets_lock_shared
SELECT pg_advisory_xact_lock_shared(hashtext('photoslot-secrets'));

-- name: secret_settings_for_update
SELECT key, value FROM settings WHERE starts_with(key, %(prefix)s) ORDER BY key FOR UPDATE;

-- name: secret_setting_reseal
-- Only the value: who set the key and when stays what the settings view shows.
UPDATE settings SET value = %(value)s WHERE key = %(key)s;
