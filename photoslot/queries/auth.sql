-- Admin sign-in: login throttling and session epochs (auth.py, users.py).
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- Throttling keys (login_attempts.key): 'pair:<address> <username>' and 'client:<address>'.
-- A try is reserved (one row per key) BEFORE the password is checked, inside a transaction holding
-- the address's advisory lock: parallel tries from one address are counted one after the other,
-- each seeing every earlier reservation. A failed try leaves its reservation as the failure; a
-- successful one clears the address's rows.

-- name: login_try_lock
SELECT pg_advisory_xact_lock(hashtext('photoslot-login:' || %(client_key)s));

-- name: login_try_state
-- Per key: the failures (and tries in flight) still remembered, and the newest of them.
SELECT key, count(*) AS n, max(at) AS newest
FROM login_attempts
WHERE key IN (%(pair_key)s, %(client_key)s) AND at > %(since)s
GROUP BY key;

-- name: login_try_reserve
WITH pruned AS (DELETE FROM login_attempts WHERE at <= %(since)s)
INSERT INTO login_attempts (key, at) VALUES (%(pair_key)s, %(now)s), (%(client_key)s, %(now)s);

-- name: login_try_succeeded
DELETE FROM login_attempts WHERE key IN (%(pair_key)s, %(client_key)s);

-- Session epochs: one settings row per admin ('session_epoch.<name>', {"epoch": n}). Every token
-- carries the epoch it was issued in; bumping it ends every earlier token in every process.

-- name: session_epoch_get
SELECT coalesce((SELECT (value->>'epoch')::bigint FROM settings WHERE key = %(key)s), 0) AS epoch;

-- name: session_epoch_bump
INSERT INTO settings (key, value, updated_at, updated_by)
VALUES (%(key)s, '{"epoch": 1}'::jsonb, %(now)s, %(actor)s)
ON CONFLICT (key) DO UPDATE
SET value = jsonb_build_object('epoch', coalesce((settings.value->>'epoch')::bigint, 0) + 1),
    updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
RETURNING (value->>'epoch')::bigint AS epoch;

-- Web admin sessions (photoslot/sessions.py): a token with a session id (`sid`) is also refused
-- once that one session was signed out from its browser.

-- name: session_state
SELECT coalesce((SELECT (value->>'epoch')::bigint FROM settings WHERE key = %(key)s), 0) AS epoch,
       EXISTS (SELECT 1 FROM ended_sessions WHERE sid = %(sid)s) AS ended;

-- name: session_end_one
INSERT INTO ended_sessions (sid, username, ended_at, forget_after)
VALUES (%(sid)s, %(username)s, %(now)s, %(forget_after)s)
ON CONFLICT (sid) DO NOTHING;

-- name: ended_sessions_prune
DELETE FROM ended_sessions WHERE forget_after < %(now)s;
