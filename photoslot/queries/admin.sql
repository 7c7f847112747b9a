-- Admin login throttling (failed logins per user and per client).
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: login_failures_recent
-- Per throttling key: failures inside the window and the nth newest of them (when it ages out,
-- the key drops below the limit — that is the Retry-After).
SELECT key, count(*) AS n,
       (array_agg(at ORDER BY at DESC))[%(nth)s] AS nth_newest
FROM login_attempts
WHERE key IN (%(user_key)s, %(client_key)s) AND at > %(since)s
GROUP BY key;

-- name: login_failure_insert
WITH pruned AS (DELETE FROM login_attempts WHERE at < %(prune_before)s)
INSERT INTO login_attempts (key, at) VALUES (%(user_key)s, %(now)s), (%(client_key)s, %(now)s);

-- name: login_failures_clear
DELETE FROM login_attempts WHERE key IN (%(user_key)s, %(client_key)s);
